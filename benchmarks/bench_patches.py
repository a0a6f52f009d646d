"""Mining maximal patches against the floor: a plain batched forward pass over the same images that
stops at the same layer.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_patches.py [--images 256] [--data DIR] [--rounds 7]

Both runs read, resize and centre-crop the same image files with the same loader and batch size.
Baseline: ``cnnlens.forward_until(model, x, layer)``, a plain ``torch.no_grad`` forward that ends at the
mined layer (the rest of the network is skipped, as the mining skips it). Mining runs the model as far
as --layer, keeps the running top-k per channel, and afterwards cuts the crops (re-reading only the
winning images) and computes the receptive field on the meta device. Ratios are paired medians over
--rounds interleaved rounds (mining time / baseline time in the same round). Targets: mining /
baseline <= 1.1, and peak memory independent of the number of images (measured in fresh processes
for growing N).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from peak_memory import peak_growth, reset_peak

import cnnlens
from cnnlens.folders import iter_batches, select_images
from cnnlens.units import PatchSettings, top_patches

from paired import interleave, paired, spread

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WEIGHTS = DATA / "imagenet" / "squeezenet1_0_imagenet_deepcompression.pth"


def load(model_name: str) -> torch.nn.Module:
    return cnnlens.create_model(model_name, WEIGHTS if WEIGHTS.is_file() and model_name == "squeezenet1_0" else None, seed=0)


def baseline(model: torch.nn.Module, paths: list[Path], prep: cnnlens.Preprocessing, batch_size: int, layer: str | None = None) -> float:
    """Seconds of a plain no-grad forward over the images, ending at ``layer`` (None: the whole model)."""
    start = time.perf_counter()
    with torch.no_grad():
        for _, x in iter_batches(paths, prep, batch_size=batch_size):
            if layer is None:
                model(prep.normalize(x))
            else:
                cnnlens.forward_until(model, prep.normalize(x), layer)
    return time.perf_counter() - start


def mine(model: torch.nn.Module, paths: list[Path], prep: cnnlens.Preprocessing, batch_size: int, layer: str, k: int) -> float:
    start = time.perf_counter()
    top_patches(model, layer, paths, n_channels=8, k=k, preprocessing=prep, progress=False, settings=PatchSettings(batch_size=batch_size))
    return time.perf_counter() - start


def child(args: argparse.Namespace) -> None:
    """Run one job in this fresh process; print the growth of its peak resident memory (MB) over the
    resident memory once torch, the model and the file list are loaded (the peak is reset there)."""
    model = load(args.model)
    prep = cnnlens.model_info(model).preprocessing
    paths = list(select_images(args.data, args.images).values())
    baseline(model, paths[:2], prep, 2)  # warm up the allocator and lazy imports in both jobs alike
    before = reset_peak()
    if args.child == "mine":
        mine(model, paths, prep, args.batch_size, args.layer, args.top)
    else:
        baseline(model, paths, prep, args.batch_size, args.layer)
    print(peak_growth(before))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--layers", nargs="+", default=["features.12", "features.7"])
    parser.add_argument("--layer", default="features.12")
    parser.add_argument("--data", type=Path, default=DATA / "imagenet_samples")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--top", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[64, 256, 1000])
    parser.add_argument("--child", choices=["mine", "baseline"], default=None)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, CPU cores {os.cpu_count()}, "
          f"model {args.model} ({'trained' if WEIGHTS.is_file() else 'random init'}), batch {args.batch_size}")  # fmt: skip
    model = load(args.model)
    prep = cnnlens.model_info(model).preprocessing
    paths = list(select_images(args.data, args.images).values())
    print(f"{len(paths)} images from {args.data}, resized to {prep.resize_size} and cropped to {prep.crop_size}")
    print(f"baseline: a plain no-grad forward ending at the mined layer; paired medians over {args.rounds} interleaved rounds")
    for layer in args.layers if args.rounds > 0 else []:
        times = interleave({
            "baseline": lambda: baseline(model, paths, prep, args.batch_size, layer),  # noqa: B023
            "mining": lambda: mine(model, paths, prep, args.batch_size, layer, args.top),  # noqa: B023
        }, args.rounds)  # fmt: skip
        print(f"layer {layer:12s} baseline forward to it {min(times['baseline']):7.2f} s  mining top-{args.top} + crops "
              f"{min(times['mining']):7.2f} s  paired mining / baseline {paired(times, 'mining', 'baseline'):.3f} "
              f"(range {spread(times, 'mining', 'baseline')}; target <= 1.1)", flush=True)  # fmt: skip

    print("growth of peak resident memory during the job, fresh process per run (MB), by number of images:")
    script = [sys.executable, __file__, "--model", args.model, "--layer", args.layer, "--data", str(args.data), "--batch-size", str(args.batch_size)]
    for n in args.memory_sizes:
        row = []
        for job in ("baseline", "mine"):
            out = subprocess.run([*script, "--child", job, "--images", str(n)], capture_output=True, text=True, check=True)
            row.append(float(out.stdout.strip().splitlines()[-1]))
        print(f"  N={n:5d}  baseline {row[0]:7.1f} MB   mining {row[1]:7.1f} MB   (mining - baseline {row[1] - row[0]:+.1f} MB)")


if __name__ == "__main__":
    main()
