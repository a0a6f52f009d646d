"""Sharing a folder among processes: N processes x 1 thread against 1 process x N threads, same images.

    .venv/bin/python benchmarks/bench_distributed.py [--images 256] [--procs 2] [--rounds 7] [--data DIR] [--device cpu|cuda]

For `cnnlens patches` and `cnnlens robustness` on the same images (the trained squeezenet1_0 of the
development data folder when present, else a random init), each command runs as a user runs it, in
fresh processes, and the wall time is measured from outside:

- one process with N intra-op threads (``OMP_NUM_THREADS=N``);
- N processes with one thread each under ``torchrun --nproc-per-node N -m cnnlens`` (gloo on
  127.0.0.1); on CUDA, N processes on N devices against one process on one device;
- as a reference, one process with one thread.

Every configuration also does 16 images, so that the fixed cost (starting Python, torch and the
process group) and the cost per image can be told apart. Baseline: the first configuration (one
process with N threads). Rounds interleave the configurations; the ratio printed is the paired median
over --rounds rounds (default 7) of baseline time / N-process time in the same round, so > 1 means the
N processes are faster; best times are printed beside it. The outputs (-o .json) are compared byte for byte. The merge cost is measured twice: inside the torchrun run (gather + merge, the line rank 0 prints at
the end) and as `merge()` of two shard files in one process (read, merge, finish).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from paired import ratios

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WEIGHTS = DATA / "imagenet" / "squeezenet1_0_imagenet_deepcompression.pth"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return wall, result.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--small", type=int, default=16, help="images of the run that measures the fixed cost")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds; ratios are paired medians")
    parser.add_argument("--data", type=Path, default=DATA / "imagenet_samples")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--commands", nargs="+", default=["patches", "robustness"])
    args = parser.parse_args()

    weights = ["-w", str(WEIGHTS)] if WEIGHTS.is_file() else ["-w", "none"]
    commands = {
        "patches": ["patches", "squeezenet1_0", *weights, "--data", str(args.data), "-u", "features.12", "-k", "9", "-b", str(args.batch_size)],
        "robustness": ["robustness", "squeezenet1_0", *weights, "--data", str(args.data), "--eps", "0,1/255,4/255", "--attack", "fgsm",
                       "-b", str(args.batch_size)],  # fmt: skip
    }
    base_env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    base_env.update({"GLOO_SOCKET_IFNAME": "lo", "MPLBACKEND": "Agg"})
    n = args.procs
    if args.device == "cpu":
        configs = {f"1 process x {n} threads": (1, n), f"{n} processes x 1 thread": (n, 1), "1 process x 1 thread": (1, 1)}
    else:
        configs = {"1 process x 1 GPU": (1, 1), f"{n} processes x 1 GPU": (n, 1)}
    print(f"{os.cpu_count()} CPU cores, device {args.device}, model squeezenet1_0 ({'trained' if WEIGHTS.is_file() else 'random init'}), "
          f"batch {args.batch_size}, {args.rounds} interleaved rounds; load average {os.getloadavg()[0]:.1f} at the start")  # fmt: skip
    print(f"baseline: {next(iter(configs))}; ratios are paired medians of baseline time / torchrun time over {args.rounds} interleaved rounds")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.commands:
            command = commands[name]
            best: dict[tuple[str, int], float] = {}
            rounds: dict[tuple[str, int], list[float]] = {}
            merges: list[str] = []
            outputs: dict[tuple[str, int], bytes] = {}
            for _ in range(args.rounds):
                for size in (args.small, args.images):
                    for label, (procs, threads) in configs.items():
                        out = work / f"{name}-{size}-{procs}x{threads}.json"
                        out.unlink(missing_ok=True)
                        tail = [*command, "--limit", str(size), "--device", args.device, "-o", str(out)]
                        env = {**base_env, "OMP_NUM_THREADS": str(threads)}
                        if procs == 1:
                            wall, err = timed([sys.executable, "-m", "cnnlens", *tail], env, work)
                        else:
                            wall, err = timed([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs), "--master-addr",
                                               "127.0.0.1", "--master-port", str(free_port()), "-m", "cnnlens", *tail], env, work)  # fmt: skip
                            merges += [line for line in err.splitlines() if "gathered and merged" in line and size == args.images]
                        best[label, size] = min(best.get((label, size), math.inf), wall)
                        rounds.setdefault((label, size), []).append(wall)
                        outputs[label, size] = out.read_bytes()
            print(f"\n{name}: {args.images} images (wall time from outside, best of {args.rounds} rounds; cost per further image from the {args.small}-image run)")
            reference = next(iter(configs))
            for label in configs:
                small, full = best[label, args.small], best[label, args.images]
                per = (full - small) / (args.images - args.small)
                same = all(outputs[label, size] == outputs[reference, size] for size in (args.small, args.images))
                print(f"  {label:26s} {full:7.1f} s ({small:5.1f} s for {args.small} images), {1000 * per:6.1f} ms per further image; "
                      f"output identical to {reference}: {same}")  # fmt: skip
            a, b = list(configs)[:2]
            ratio = ratios(rounds[a, args.images], rounds[b, args.images])[0]
            per_a = (best[a, args.images] - best[a, args.small]) / (args.images - args.small)
            per_b = (best[b, args.images] - best[b, args.small]) / (args.images - args.small)
            print(f"  {b} against {a}: {ratio:.2f}x faster in wall time (paired median), {per_a / per_b:.2f}x in cost per image (best runs)")
            if merges:
                print(f"  torchrun: {min(merges, key=lambda line: float(line.split(' in ')[-1].split()[0]))}")
            # the job-array route: two shard files, then merge() in a fresh process
            parts = [work / f"{name}-part-{i}.json" for i in range(2)]
            for i, part in enumerate(parts):
                part.unlink(missing_ok=True)
                timed([sys.executable, "-m", "cnnlens", *command, "--limit", str(args.images), "--device", args.device, "--shard", f"{i}/2",
                       "-o", str(part)], {**base_env, "OMP_NUM_THREADS": "1"}, work)  # fmt: skip
            code = ("import sys, time; from cnnlens.distributed import merge; t = time.perf_counter(); r = merge(sys.argv[1:]); "
                    "t = time.perf_counter() - t; print(f'{t * 1000:.1f}'); sys.stdout.write(r.to_json())")  # fmt: skip
            out = subprocess.run([sys.executable, "-c", code, *map(str, parts)], env=base_env, cwd=work, capture_output=True, text=True, check=True)
            took, _, merged = out.stdout.partition("\n")
            same = json.loads(merged) == json.loads(outputs[reference, args.images])
            sizes = " + ".join(f"{p.stat().st_size / 1024:.0f} KiB" for p in parts)
            print(f"  job array: 2 shard files ({sizes}) merged by merge() in {took} ms (read, merge, finish); "
                  f"equal to the one-process result: {same}")  # fmt: skip


if __name__ == "__main__":
    main()
