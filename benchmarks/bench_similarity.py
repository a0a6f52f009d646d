"""CKA similarity against the floor: the forward passes it needs, on the same images.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_similarity.py [--images 128] [--rounds 7]

Baseline: read, resize and centre-crop the same image files with the same loader and batch size,
and run each model as far as the deepest layer compared (the whole model when ``logits`` is one of
them) -- the work any CKA over these layers must do. ``cnnlens.similarity`` adds the hooks, a Gram
matrix per layer and batch, and the HSIC sums. Rows: the trained squeezenet1_0 against itself (ten
layers, one forward per batch) and against its random initialisation (two forwards per batch).
Ratios are paired medians over interleaved rounds (similarity time / baseline time of the same
round). Target: <= 1.2. Memory: the growth of peak resident memory in a fresh process per run, for
growing numbers of images (target: flat in N).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from peak_memory import peak_growth, reset_peak

import cnnlens
from cnnlens.folders import iter_batches, select_images
from cnnlens.hooks import forward_until

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WEIGHTS = DATA / "imagenet" / "squeezenet1_0_imagenet_deepcompression.pth"


def load() -> tuple[torch.nn.Module, torch.nn.Module]:
    trained = cnnlens.create_model("squeezenet1_0", WEIGHTS if WEIGHTS.is_file() else None, seed=0)
    return trained, cnnlens.random_init_like(trained, 1)


def baseline(models: list[torch.nn.Module], layers: list[str], paths: list[Path], batch_size: int) -> float:
    prep = cnnlens.model_info(models[0]).preprocessing
    start = time.perf_counter()
    with torch.no_grad():
        for _, x in iter_batches(paths, prep, batch_size=batch_size):
            for model in models:
                x_in = prep.normalize(x)
                if "logits" in layers:
                    model(x_in)
                else:
                    forward_until(model, x_in, layers[-1:])
    return time.perf_counter() - start


def run_similarity(models: list[torch.nn.Module], layers: list[str], paths: list[Path], batch_size: int) -> float:
    start = time.perf_counter()
    cnnlens.similarity(models[0], paths, layers_a=layers, model_b=models[1] if len(models) > 1 else None,
                       debiased=True, batch_size=batch_size, progress=False)  # fmt: skip
    return time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    """One job in this fresh process: the growth of its peak resident memory (MB) once loaded."""
    trained, _ = load()
    layers = cnnlens.default_layers(trained, "representations")
    paths = list(select_images(args.data, args.images).values())
    baseline([trained], layers, paths[:2], 2)  # warm up alike
    before = reset_peak()
    if args.child == "similarity":
        run_similarity([trained], layers, paths, args.batch_size)
    else:
        baseline([trained], layers, paths, args.batch_size)
    print(peak_growth(before))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DATA / "imagenet_samples")
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[64, 256, 512])
    parser.add_argument("--child", choices=["similarity", "baseline"], default=None)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    trained, random = load()
    layers = cnnlens.default_layers(trained, "representations")
    paths = list(select_images(args.data, args.images).values())
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}; squeezenet1_0 "
          f"({'trained' if WEIGHTS.is_file() else 'random init'}), {len(paths)} images, batch {args.batch_size}, "
          f"{len(layers)} layers ({layers[0]} .. {layers[-1]}), debiased linear CKA")  # fmt: skip
    print("baseline: the same loader and the forward passes up to the deepest layer (the whole model for logits)")
    baseline([trained], layers, paths[: args.batch_size], args.batch_size)  # warm-up
    for label, models in (("one model, its layers against each other", [trained]), ("trained against random init", [trained, random])):
        ratios, t_base, t_sim = [], [], []
        for _ in range(args.rounds):  # interleaved: the CPU is shared
            b = baseline(models, layers, paths, args.batch_size)
            s = run_similarity(models, layers, paths, args.batch_size)
            ratios.append(s / b)
            t_base.append(b)
            t_sim.append(s)
        print(f"{label:42s} baseline {statistics.median(t_base):6.2f} s  similarity {statistics.median(t_sim):6.2f} s  "
              f"paired median ratio {statistics.median(ratios):.3f} over {args.rounds} rounds (target <= 1.2)")  # fmt: skip

    print("growth of peak resident memory during the job, fresh process per run (MB), by number of images:")
    script = [sys.executable, __file__, "--data", str(args.data), "--batch-size", str(args.batch_size)]
    for n in args.memory_sizes:
        row = []
        for job in ("baseline", "similarity"):
            out = subprocess.run([*script, "--child", job, "--images", str(n)], capture_output=True, text=True, check=True)
            row.append(float(out.stdout.strip().splitlines()[-1]))
        print(f"  N={n:5d}  baseline {row[0]:7.1f} MB   similarity {row[1]:7.1f} MB   (similarity - baseline {row[1] - row[0]:+.1f} MB)")


if __name__ == "__main__":
    main()
