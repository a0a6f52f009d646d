"""The microscope's pass over the data against the floor: one plain batched forward pass.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_microscope.py [--images 1000] [--rounds 7] [--separate] [--site DIR]

Same images, same loader, same batch size. Baseline: a plain ``torch.no_grad`` forward of the whole
model on every batch (the deepest layer a site mines by default is ``classifier.1``, the last layer
with weights, so the baseline does the work the mining pass does). "One pass" mines the top-k of EVERY
channel of the four layers a site shows (the layers of `cnnlens microscope squeezenet1_0`, or
--layers) in one streaming pass, exactly as the site build does; with --separate, "separate passes"
mines the same layers one at a time (what four `cnnlens patches` runs cost). Rounds interleave the
contenders; the ratio printed is the paired median over --rounds rounds (default 7) of one pass /
baseline in the same round, with its range. Target: <= 1.2; aim <= 1.05.

--site DIR also builds the whole site (4 layers x 16 units, all stages) and prints the seconds of
each stage: the build time of a site on these images.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import cnnlens
from cnnlens.microscope import SiteSettings, build_site, site_layers
from cnnlens.folders import iter_batches, select_images
from cnnlens.units import PatchSettings, top_patches, top_patches_layers

from paired import interleave, paired, spread

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WEIGHTS = DATA / "imagenet" / "squeezenet1_0_imagenet_deepcompression.pth"


def baseline(model: torch.nn.Module, paths: list[Path], prep: cnnlens.Preprocessing, batch_size: int) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for _, x in iter_batches(paths, prep, batch_size=batch_size):
            model(prep.normalize(x))
    return time.perf_counter() - start


def one_pass(model: torch.nn.Module, paths: list[Path], layers: list[str], batch_size: int, k: int) -> float:
    start = time.perf_counter()
    top_patches_layers(model, layers, paths, k=k, n_channels=100000, progress=False, settings=PatchSettings(batch_size=batch_size, crops=False))
    return time.perf_counter() - start


def separate(model: torch.nn.Module, paths: list[Path], layers: list[str], batch_size: int, k: int) -> float:
    start = time.perf_counter()
    for layer in layers:
        top_patches(model, layer, paths, k=k, n_channels=100000, progress=False, settings=PatchSettings(batch_size=batch_size, crops=False))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "imagenet_samples")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--layers", default=None, help="comma-separated (default: the site's four)")
    parser.add_argument("--separate", action="store_true", help="also time the layers mined one at a time (four passes)")
    parser.add_argument("--site", type=Path, default=None, help="also build the whole site there and time its stages")
    args = parser.parse_args()

    model = cnnlens.create_model("squeezenet1_0", WEIGHTS if WEIGHTS.is_file() else None, seed=0)
    prep = cnnlens.model_info(model).preprocessing
    paths = list(select_images(args.data, args.images).values())
    layers = args.layers.split(",") if args.layers else site_layers(model)
    print(f"squeezenet1_0 ({cnnlens.model_info(model).weights_label}), {len(paths)} images, batch {args.batch_size}, "
          f"layers {', '.join(layers)}, torch threads {torch.get_num_threads()}")  # fmt: skip
    fns = {"baseline": lambda: baseline(model, paths, prep, args.batch_size), "one pass": lambda: one_pass(model, paths, layers, args.batch_size, args.k)}
    if args.separate:
        fns["separate passes"] = lambda: separate(model, paths, layers, args.batch_size, args.k)
    one_pass(model, paths[: args.batch_size], layers, args.batch_size, args.k)  # warm-up (the file cache too, below)
    runs = interleave(fns, args.rounds)
    print(f"baseline: a plain no-grad forward of the whole model; {args.rounds} interleaved rounds")
    for name, seconds in runs.items():
        print(f"{name:16s} best {min(seconds):8.2f} s   paired / baseline {paired(runs, name, 'baseline'):.3f} (range {spread(runs, name, 'baseline')})")
    print(f"one pass / baseline, paired median = {paired(runs, 'one pass', 'baseline'):.3f} (target <= 1.2, aim <= 1.05)")
    if args.separate:
        print(f"separate passes / one pass, paired median = {paired(runs, 'separate passes', 'one pass'):.2f}")

    if args.site is not None:
        start = time.perf_counter()
        site = build_site(model, args.data, args.site, layers=layers, units=16, k=args.k, limit=args.images, settings=SiteSettings(batch_size=args.batch_size))
        total = time.perf_counter() - start
        print(f"site: {site.pages} pages in {total:.0f} s ({total / 60:.1f} min); open {site.index}")
        print(json.dumps({name: stage["seconds"] for name, stage in site.stages.items()}))


if __name__ == "__main__":
    main()
