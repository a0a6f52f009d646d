"""The microscope's pass over the data against the floor: one plain batched forward pass.

    OMP_NUM_THREADS=2 nice -n 10 .venv/bin/python benchmarks/bench_microscope.py [--images 1000] [--repeats 3] [--separate] [--site DIR]

Same images, same loader, same batch size. The baseline runs the whole model on every batch;
"one pass" mines the top-k of EVERY channel of the four layers a site shows (the layers of
`cnnlens microscope squeezenet1_0`, or --layers) in one streaming pass, exactly as the site build
does; with --separate, "separate passes" mines the same layers one at a time (what four
`cnnlens patches` runs cost). Runs alternate; the best of each is kept, and the ratio of each
one-pass run to the baseline run just before it is printed too. Target: one pass / baseline <= 1.2.

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
    parser.add_argument("--repeats", type=int, default=3)
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
    runs: dict[str, list[float]] = {"baseline": [], "one pass": [], **({"separate passes": []} if args.separate else {})}
    one_pass(model, paths[: args.batch_size], layers, args.batch_size, args.k)  # warm-up
    for _ in range(args.repeats):
        runs["baseline"].append(baseline(model, paths, prep, args.batch_size))
        runs["one pass"].append(one_pass(model, paths, layers, args.batch_size, args.k))
        if args.separate:
            runs["separate passes"].append(separate(model, paths, layers, args.batch_size, args.k))
    best = {name: min(times) for name, times in runs.items()}
    for name, seconds in best.items():
        print(f"{name:16s} {seconds:8.2f} s   {seconds / best['baseline']:.2f}x baseline")
    print(f"one pass / baseline = {best['one pass'] / best['baseline']:.2f} (target <= 1.2)")
    paired = sorted(one / base for one, base in zip(runs["one pass"], runs["baseline"]))
    print(f"paired (one pass / the baseline run just before it): median {paired[len(paired) // 2]:.2f}, all {', '.join(f'{p:.2f}' for p in paired)}")
    if args.separate:
        print(f"separate passes / one pass = {best['separate passes'] / best['one pass']:.2f}")

    if args.site is not None:
        start = time.perf_counter()
        site = build_site(model, args.data, args.site, layers=layers, units=16, k=args.k, limit=args.images, settings=SiteSettings(batch_size=args.batch_size))
        total = time.perf_counter() - start
        print(f"site: {site.pages} pages in {total:.0f} s ({total / 60:.1f} min); open {site.index}")
        print(json.dumps({name: stage["seconds"] for name, stage in site.stages.items()}))


if __name__ == "__main__":
    main()
