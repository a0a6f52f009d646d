"""cnnlens report against torchinfo's summary, and report memory on the largest models.

Run from the repo root, with torchinfo importable for the comparison (a benchmark-only install, not a
cnnlens dependency; without it only cnnlens' own times and memory are measured):

    .venv/bin/pip install torchinfo        # or: pip install --target /tmp/bench_site torchinfo; PYTHONPATH=/tmp/bench_site
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_report.py [--quick] [--rounds 7]

Baseline: torchinfo 1.8's ``summary(model, input_size, device="meta")`` of the same architecture on the
meta device (one forward pass with hooks; no weights, no real tensors), which is the like-for-like peer
of cnnlens' two meta-device passes. Every ratio is a paired median: each round runs the contenders in
turn, the ratio is cnnlens time / torchinfo time within a round, and the median over --rounds rounds
(default 7) is printed with the range; < 1 means cnnlens is faster.

1. The sweep table: ``cnnlens.report(model)`` on an already built model against torchinfo on a meta copy
   of it (and, for reference only, torchinfo with its real forward on the built model), twelve
   architectures, swin_t at 224, 448 and 896 px. Target: cnnlens / torchinfo-on-meta <= 1.0, with the
   report still giving receptive fields, saved-for-backward memory and FLOPs.
2. From the name: ``cnnlens.report("vgg16")`` (built on meta inside) against torchinfo on a model built
   on the meta device from the same name (``with torch.device("meta"): get_model(name)``): the same work
   on both sides, no weights.
3. Peak resident memory of ``cnnlens report vit_h_14`` and ``cnnlens report regnet_y_128gf`` (< 1.5 GB).

``--quick`` runs the sweep table only.
"""

from __future__ import annotations

import argparse
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

from paired import interleave, paired, spread

SWEEP = [("resnet50", 224), ("resnet152", 224), ("densenet201", 224), ("efficientnet_b7", 224), ("convnext_large", 224),
         ("inception_v3", 299), ("mobilenet_v3_large", 224), ("vit_b_16", 224), ("swin_b", 224), ("swin_t", 224),
         ("swin_t", 448), ("swin_t", 896), ("vgg16", 224), ("resnet18", 224)]  # fmt: skip


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


def sweep(torchinfo, rounds: int) -> list[float]:  # noqa: ANN001
    """The sweep table: paired medians of cnnlens time / torchinfo-on-meta time; returns those ratios."""
    print(f"\nreport of a built model, {rounds} interleaved rounds, {torch.get_num_threads()} threads; "
          "paired = median over rounds of cnnlens time / torchinfo-on-meta time")  # fmt: skip
    if torchinfo:
        print("| model | px | cnnlens ms | torchinfo meta ms | torchinfo real ms | paired cnnlens / meta | range |")
        print("|---|---|---|---|---|---|---|")
    else:
        print("| model | px | cnnlens ms | receptive field of the last feature map | saved for backward | GFLOPs |")
        print("|---|---|---|---|---|---|")
    ratios = []
    for name, px in SWEEP:
        real = build(name)
        size = (1, 3, px, px)
        r = cnnlens.report(real, size)  # warm-up, and the report is complete:
        assert r.totals.saved_for_backward_bytes and r.totals.flops
        assert any(isinstance(row.receptive_field, ReceptiveField) for row in r.layers)
        if torchinfo is None:
            t = min(interleave({"cnnlens": lambda: cnnlens.report(real, size)}, rounds)["cnnlens"])  # noqa: B023
            last = [row for row in r.layers if isinstance(row.receptive_field, ReceptiveField)][-1]
            print(f"| {name} | {px} | {1000 * t:.1f} | {last.name}: {max(last.receptive_field.size)} px | {r.totals.saved_for_backward_bytes / 1e6:.1f} MB | {r.totals.flops / 1e9:.1f} |")
            continue
        meta = copy.deepcopy(real).to("meta")
        times = interleave({
            "cnnlens": lambda: cnnlens.report(real, size),  # noqa: B023
            "meta": lambda: torchinfo.summary(meta, input_size=size, device="meta", verbose=0),  # noqa: B023
        }, rounds)  # fmt: skip
        real_forward = min(interleave({"real": lambda: torchinfo.summary(real, input_size=size, verbose=0)}, 2)["real"])  # noqa: B023
        ratio = paired(times, "cnnlens", "meta")
        ratios.append(ratio)
        print(f"| {name} | {px} | {1000 * min(times['cnnlens']):.1f} | {1000 * min(times['meta']):.1f} | {1000 * real_forward:.0f} | "
              f"{ratio:.2f} | {spread(times, 'cnnlens', 'meta')} |", flush=True)  # fmt: skip
    if ratios:
        print(f"largest paired cnnlens / torchinfo-on-meta: {max(ratios):.2f} (target <= 1.0)")
    return ratios


def from_the_name(torchinfo, names: list[str], rounds: int) -> None:  # noqa: ANN001
    """cnnlens.report(name) against torchinfo on the same architecture built on the meta device."""
    print(f"\nfrom the name (both build the architecture on the meta device), {rounds} interleaved rounds")
    print("| model | cnnlens ms | torchinfo meta ms | paired cnnlens / torchinfo | range |")
    print("|---|---|---|---|---|")
    for name in names:
        size = (1, 3, 224, 224)

        def theirs() -> None:
            with torch.device("meta"):
                model = build(name)  # noqa: B023
            torchinfo.summary(model, input_size=size, device="meta", verbose=0)  # noqa: B023

        times = interleave({"cnnlens": lambda: cnnlens.report(name, size), "torchinfo": theirs}, rounds)  # noqa: B023
        print(f"| {name} | {1000 * min(times['cnnlens']):.1f} | {1000 * min(times['torchinfo']):.1f} | "
              f"{paired(times, 'cnnlens', 'torchinfo'):.2f} | {spread(times, 'cnnlens', 'torchinfo')} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the sweep table only")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--models", default=None, help="comma-separated subset of the sweep's models")
    args = parser.parse_args()
    global SWEEP
    if args.models:
        SWEEP = [(n, px) for n, px in SWEEP if n in args.models.split(",")]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}")
    try:
        import torchinfo

        print(f"baseline: torchinfo {torchinfo.__version__} summary(..., device='meta')")
    except ImportError:
        torchinfo = None
        print("torchinfo is not importable (pip install torchinfo into the venv, or --target /tmp/bench_site and PYTHONPATH): cnnlens only")
    sweep(torchinfo, args.rounds)
    if args.quick:
        return
    if torchinfo is not None:
        from_the_name(torchinfo, ["vgg16", "resnet50", "swin_t"], args.rounds)
        for name in ("vgg16", "resnet50"):
            stats = torchinfo.summary(build(name), input_size=(1, 3, 224, 224), verbose=0)
            r = cnnlens.report(name, (1, 3, 224, 224))
            print(f"{name}: torchinfo forward/backward pass size {stats.total_output_bytes / 1e6:.1f} MB; cnnlens saved for backward "
                  f"{r.totals.saved_for_backward_bytes / 1e6:.1f} MB, forward outputs {r.totals.activation_bytes / 1e6:.1f} MB")  # fmt: skip

    cli = shutil.which("cnnlens") or str(Path(sys.executable).with_name("cnnlens"))
    for name in ("vit_h_14", "regnet_y_128gf"):
        rss, wall = peak_rss_mb([cli, "report", name, "--json"])
        print(f"report {name} (the CLI, --json): peak RSS {rss:.0f} MB ({rss / 1536:.2f} of the 1.5 GB budget), {wall:.1f} s")
    base, _ = peak_rss_mb([sys.executable, "-c", "import torch, torchvision"])
    print(f"(baseline: importing torch + torchvision alone peaks at {base:.0f} MB)")
    print(f"this process peaked at {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
