"""cnnlens report against torchinfo's summary (a real forward pass), and report memory on the largest models.

Run from the repo root, with torchinfo importable for the comparison (a benchmark-only install, not a
cnnlens dependency; without it only cnnlens' own times and memory are measured):

    pip install --target /tmp/bench_site torchinfo
    OMP_NUM_THREADS=2 PYTHONPATH=/tmp/bench_site .venv/bin/python benchmarks/bench_report.py

Prints times measured in this run on this CPU and their ratios; targets: cnnlens/torchinfo time <= 0.5
for vgg16 from its name; peak resident memory of `cnnlens report vit_h_14` and
`cnnlens report regnet_y_128gf` < 1.5 GB.
"""

from __future__ import annotations

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


def main() -> None:
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}")
    try:
        import torchinfo
    except ImportError:
        torchinfo = None
        print("torchinfo is not importable (pip install --target /tmp/bench_site torchinfo; PYTHONPATH=/tmp/bench_site): cnnlens only")

    for name in ("vgg16", "resnet50"):
        x_size = (1, 3, 224, 224)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            real = torchvision.models.get_model(name, weights=None).eval()
        # 1. from a model name: cnnlens builds on meta; torchinfo needs a built model and a forward pass
        t_cnn_name = best_of(lambda: cnnlens.report(name, x_size))
        t_cnn_model = best_of(lambda: cnnlens.report(real, x_size))
        r = cnnlens.report(real, x_size)
        if torchinfo is None:
            print(f"{name}: from the name   cnnlens {t_cnn_name:.3f} s")
            print(f"{name}: built model     cnnlens {t_cnn_model:.3f} s")
            print(f"{name}: cnnlens saved for backward {r.totals.saved_for_backward_bytes / 1e6:.1f} MB, forward outputs {r.totals.activation_bytes / 1e6:.1f} MB")
            continue

        def torchinfo_from_name() -> None:
            model = torchvision.models.get_model(name, weights=None).eval()
            torchinfo.summary(model, input_size=x_size, verbose=0)

        t_ti_name = best_of(torchinfo_from_name, repeat=2)
        # 2. on an already built model (cnnlens runs it on meta stand-ins; torchinfo runs it for real)
        t_ti_model = best_of(lambda: torchinfo.summary(real, input_size=x_size, verbose=0))
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
