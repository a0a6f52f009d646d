"""Recipe: Hubel & Wiesel in silico. Orientation tuning, simple and complex cells, invariance by depth.

    python recipes/tuning_v1_hierarchy.py --out out/tuning \\
        --model squeezenet1_0 --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --data ../shared/data/photos

(`../shared/data` is the development data folder beside the checkout; any weights file of the model
and any folder of photos work.) Four questions, answered with the public API:

1. Is the first layer tuned like V1, and is that learned? Orientation selectivity (OSI = 1 - circular
   variance) and F1/F0 of every first-layer unit, trained against the same architecture at random
   initialisation -> `conv1_tuning.png`, `conv1_trained_vs_random.png`.
2. Do gratings and the filter weights agree? For the first-layer filters that a Gabor fits well
   (`cnnlens.conv_filters`, R^2 >= --r2, an oriented fit), the share whose preferred grating
   orientation lies within 15 degrees of the Gabor fit's orientation -> `summary.json`.
3. How do simple and complex cells change over depth? Shares per layer, trained and random init ->
   `hierarchy.png`, `hierarchy.txt`.
4. Does invariance to translation, rotation, scale, brightness and contrast grow with depth, and
   is that learned? -> `invariance.png`, `invariance.txt`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

import cnnlens  # noqa: E402
import cnnlens.tuning as tuning  # noqa: E402


def angle_difference(a: float, b: float) -> float:
    """The difference of two orientations in degrees, in [0, 90]."""
    d = abs(a - b) % 180.0
    return min(d, 180.0 - d)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--weights", default="../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--layers", nargs="+", default=None, help="layers of the hierarchy and invariance (default: five spread over the depth)")
    parser.add_argument("--size", type=int, default=None, help="input side (default: the weights' crop size)")
    parser.add_argument("--orientations", type=int, default=16)
    parser.add_argument("--frequencies", type=int, default=12)
    parser.add_argument("--phases", type=int, default=8)
    parser.add_argument("--limit", type=int, default=32, help="images for the invariance")
    parser.add_argument("--r2", type=float, default=0.8, help="Gabor R^2 above which a filter counts as Gabor-like")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-init model")
    parser.add_argument("--out", type=Path, default=Path("out/tuning"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    gratings = tuning.Gratings(orientations=args.orientations, frequencies=args.frequencies, phases=args.phases)
    grid = dict(gratings=gratings, size=args.size, progress=False)

    trained = cnnlens.create_model(args.model, args.weights)
    random_init = cnnlens.create_model(args.model, None, seed=args.seed)

    # 1. the first layer, trained against random init
    first = cnnlens.default_layers(trained, "first_conv")[0]
    t_trained = tuning.tuning_curves(trained, first, **grid)
    t_random = tuning.tuning_curves(random_init, first, contrasts=None, **grid)
    t_trained.save(args.out / "conv1_tuning.png", overwrite=True)
    fig = tuning.plot_osi_comparison([t_trained, t_random])
    fig.savefig(args.out / "conv1_trained_vs_random.png", dpi=100)

    # 2. gratings against the Gabor fit of the filters (same orientation convention)
    filters = cnnlens.conv_filters(trained, first)
    pairs = [
        (f.orientation_deg, u.preferred_orientation_deg)
        for f, u in zip(filters.filters, t_trained.units)
        if f.gabor_r2 is not None and f.gabor_r2 >= args.r2 and f.frequency is not None and f.frequency >= 0.08
    ]
    within = [angle_difference(a, b) <= 15.0 for a, b in pairs]

    # 3. simple and complex cells over depth
    depth = tuning.hierarchy(trained, args.layers, baseline=random_init, **grid)
    depth.save(args.out / "hierarchy.png", overwrite=True)
    (args.out / "hierarchy.txt").write_text(depth.to_text() + "\n")

    # 4. invariance over depth, trained and random init
    inv = tuning.invariance(trained, args.data, args.layers, baseline=random_init, limit=args.limit, size=args.size, progress=False)
    inv.save(args.out / "invariance.png", overwrite=True)
    (args.out / "invariance.txt").write_text(inv.to_text() + "\n")

    s_trained, s_random = t_trained.summary(), t_random.summary()
    summary = {
        "model": args.model,
        "first_layer": first,
        "median_osi_trained": s_trained["median_osi"],
        "median_osi_random_init": s_random["median_osi"],
        "median_modulation_ratio_trained": s_trained["median_modulation_ratio"],
        "classes_trained": s_trained["counts"],
        "gabor_like_filters": len(pairs),
        "share_within_15_deg_of_gabor_fit": float(np.mean(within)) if within else None,
        "hierarchy": [r.to_dict() for r in depth.rows],
        "hierarchy_random_init": [r.to_dict() for r in depth.baseline_rows or []],
        "translation_invariance": inv.score("translation"),
        "translation_invariance_random_init": inv.score("translation", baseline=True),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if not k.startswith("hierarchy")}, indent=2))
    print(depth.to_text())
    print(inv.to_text())
    return summary


if __name__ == "__main__":
    main()
