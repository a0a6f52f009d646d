"""cnnlens report against torchinfo's summary, and report memory on the largest models.

Run from the repo root, with torchinfo importable for the comparison (a benchmark-only install, not a
cnnlens dependency; without it only cnnlens' own times and memory are measured):

    .venv/bin/pip install torchinfo        # or: pip install --target /tmp/bench_site torchinfo; PYTHONPATH=/tmp/bench_site
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_report.py [--quick]

1. The sweep table: `cnnlens.report(model)` on an already built model against torchinfo's `summary` of the
   same model on the meta device and with torchinfo's real forward, nine architectures, best of 5 runs each,
   the three tools interleaved in one process (so that load from other processes hits all of them alike).
   Target: cnnlens / torchinfo-on-meta <= 1.5 for every model, with the report still giving receptive fields,
   saved-for-backward memory and FLOPs.
2. From the name and on a built model for vgg16 and resnet50 (torchinfo needs real weights: target <= 0.5 for
   vgg16 from its name).
3. Peak resident memory of `cnnlens report vit_h_14` and `cnnlens report regnet_y_128gf` (< 1.5 GB).

`--quick` runs the sweep table only.
"""

from __future__ import annotations

import copy
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch
import torchvision

import cnnlens
from cnnlens.receptive_field import ReceptiveField

SWEEP = ["resnet50", "resnet152", "densenet201", "efficientnet_b7", "convnext_large", "inception_v3",
         "mobilenet_v3_large", "vit_b_16", "swin_b"]  # fmt: skip


def best_of(fn, repeat: int = 3) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_rss_mb(args: list[str]) -> tuple[float, float]:
    """Peak resident memory (MB) and wall time of a command, via GNU time."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *args], capture_output=True, text=True, check=True)
    wall = time.perf_counter() - start
    return int(proc.stderr.strip().splitlines()[-1]) / 1024, wall


def build(name: str) -> torch.nn.Module:
    kwargs = {"init_weights": False} if name in ("googlenet", "inception_v3") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torchvision.models.get_model(name, weights=None, **kwargs).eval()


def sweep(torchinfo, repeat: int = 5) -> list[float]:  # noqa: ANN001
    """The table of the issue: seconds per report, best of ``repeat``, interleaved; returns the ratios to
    torchinfo on meta. Wall time, and CPU time of this process (both meta passes are single-threaded Python,
    so CPU time is what they cost even when other processes share the cores; torchinfo's real forward uses
    every thread, so its CPU time is not comparable and only its wall time is shown)."""
    print(f"\nreport of a built model, best of {repeat} (interleaved), {torch.get_num_threads()} threads")
    if torchinfo:
        print("| model | cnnlens s | torchinfo meta s | torchinfo real s | cnnlens / meta | cnnlens / real | CPU s: cnnlens | CPU s: torchinfo meta | CPU ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
    else:
        print("| model | cnnlens s | receptive field of the last feature map | saved for backward | GFLOPs |")
        print("|---|---|---|---|---|")
    ratios = []
    for name in SWEEP:
        real = build(name)
        size = (1, 3, 299, 299) if name == "inception_v3" else (1, 3, 224, 224)
        r = cnnlens.report(real, size)  # warm-up, and the report is complete:
        assert r.totals.saved_for_backward_bytes and r.totals.flops
        assert any(isinstance(row.receptive_field, ReceptiveField) for row in r.layers)
        if torchinfo is None:
            t = best_of(lambda: cnnlens.report(real, size), repeat)  # noqa: B023
            last = [row for row in r.layers if isinstance(row.receptive_field, ReceptiveField)][-1]
            print(f"| {name} | {t:.3f} | {last.name}: {max(last.receptive_field.size)} px | {r.totals.saved_for_backward_bytes / 1e6:.1f} MB | {r.totals.flops / 1e9:.1f} |")
            continue
        meta = copy.deepcopy(real).to("meta")
        torchinfo.summary(meta, input_size=size, device="meta", verbose=0)
        torchinfo.summary(real, input_size=size, verbose=0)
        wall: dict[str, list[float]] = {"cnnlens": [], "meta": [], "real": []}
        cpu: dict[str, list[float]] = {"cnnlens": [], "meta": [], "real": []}
        calls = {
            "cnnlens": lambda: cnnlens.report(real, size),  # noqa: B023
            "meta": lambda: torchinfo.summary(meta, input_size=size, device="meta", verbose=0),  # noqa: B023
            "real": lambda: torchinfo.summary(real, input_size=size, verbose=0),  # noqa: B023
        }
        for _ in range(repeat):
            for key, call in calls.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                call()
                wall[key].append(time.perf_counter() - start)
                cpu[key].append(time.process_time() - start_cpu)
        c, m, rl = (min(wall[k]) for k in ("cnnlens", "meta", "real"))
        cc, cm = min(cpu["cnnlens"]), min(cpu["meta"])
        ratios.append(c / m)
        print(f"| {name} | {c:.3f} | {m:.3f} | {rl:.3f} | {c / m:.2f} | {c / rl:.2f} | {cc:.3f} | {cm:.3f} | {cc / cm:.2f} |", flush=True)
    if ratios:
        print(f"largest cnnlens / torchinfo-on-meta (wall): {max(ratios):.2f} (target <= 1.5)")
    return ratios


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}")
    try:
        import torchinfo
    except ImportError:
        torchinfo = None
        print("torchinfo is not importable (pip install torchinfo into the venv, or --target /tmp/bench_site and PYTHONPATH): cnnlens only")
    sweep(torchinfo)
    if "--quick" in sys.argv:
        return

    for name in ("vgg16", "resnet50"):
        x_size = (1, 3, 224, 224)
        real = build(name)
        # 1. from a model name: cnnlens builds on meta; torchinfo needs a built model and a forward pass
        t_cnn_name = best_of(lambda: cnnlens.report(name, x_size))  # noqa: B023
        t_cnn_model = best_of(lambda: cnnlens.report(real, x_size))  # noqa: B023
        r = cnnlens.report(real, x_size)
        if torchinfo is None:
            print(f"{name}: from the name   cnnlens {t_cnn_name:.3f} s")
            print(f"{name}: built model     cnnlens {t_cnn_model:.3f} s")
            print(f"{name}: cnnlens saved for backward {r.totals.saved_for_backward_bytes / 1e6:.1f} MB, forward outputs {r.totals.activation_bytes / 1e6:.1f} MB")
            continue

        def torchinfo_from_name() -> None:
            torchinfo.summary(build(name), input_size=x_size, verbose=0)  # noqa: B023

        t_ti_name = best_of(torchinfo_from_name, repeat=2)
        # 2. on an already built model (cnnlens runs it on meta stand-ins; torchinfo runs it for real)
        t_ti_model = best_of(lambda: torchinfo.summary(real, input_size=x_size, verbose=0))  # noqa: B023
        print(f"{name}: from the name   cnnlens {t_cnn_name:.3f} s  torchinfo {t_ti_name:.3f} s  ratio {t_cnn_name / t_ti_name:.2f}")
        print(f"{name}: built model     cnnlens {t_cnn_model:.3f} s  torchinfo {t_ti_model:.3f} s  ratio {t_cnn_model / t_ti_model:.2f}")
        # the two memory figures next to each other
        stats = torchinfo.summary(real, input_size=x_size, verbose=0)
        print(
            f"{name}: torchinfo forward/backward pass size {stats.total_output_bytes / 1e6:.1f} MB; cnnlens saved for backward "
            f"{r.totals.saved_for_backward_bytes / 1e6:.1f} MB, forward outputs {r.totals.activation_bytes / 1e6:.1f} MB"
        )

    cli = shutil.which("cnnlens") or str(Path(sys.executable).with_name("cnnlens"))
    for name in ("vit_h_14", "regnet_y_128gf"):
        rss, wall = peak_rss_mb([cli, "report", name, "--json"])
        print(f"cnnlens report {name}: peak RSS {rss:.0f} MB ({rss / 1536:.2f} of the 1.5 GB budget), {wall:.1f} s")
    base, _ = peak_rss_mb([sys.executable, "-c", "import torch, torchvision"])
    print(f"(baseline: importing torch + torchvision alone peaks at {base:.0f} MB)")
    print(f"this process peaked at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
