"""Recipe: what do the units of a trained CNN respond to? Filters, maximal patches, deconvnet.

    python recipes/units_filters_patches_deconv.py --out out/units \\
        --model squeezenet1_0 --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --data ../shared/data/imagenet_samples --layer features.7 --limit 300

(`../shared/data` is the development data folder beside the checkout; any folder of photos and any
weights file of the model work.) Four questions, answered with the public API:

1. Are the first-layer filters Gabor-like, and is that learned? The Gabor R^2 of every first-layer
   filter of the trained model against the same architecture at random init -> `gabor_r2.png`,
   `filters.png`.
2. Which image regions drive units of --layer most? One streaming pass, top-k per channel, crops by
   the exact receptive field, each beside its deconvnet projection -> `zeiler_fergus.png`,
   `patches.json` (the index that redraws the figure).
3. Does each crop hold everything its unit sees? Every crop is run alone and the unit read again ->
   `summary.json` (largest relative error), together with the Gabor numbers.
4. How do deconvnet, guided backprop and the gradient differ for the strongest of those units, on its
   whole image? -> `deconv.png` and the relative differences in `summary.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import cnnlens  # noqa: E402
import cnnlens.units as units  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--weights", default="../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imagenet_samples"))
    parser.add_argument("--layer", default="features.7")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--top", type=int, default=6)
    parser.add_argument("--channels", type=int, default=6)
    parser.add_argument("--size", type=int, default=None, help="input side (default: the weights' crop size)")
    parser.add_argument("--method", default="deconvnet", choices=units.METHODS)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random-init model")
    parser.add_argument("--out", type=Path, default=Path("out/units"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    trained = cnnlens.create_model(args.model, args.weights)
    random_init = cnnlens.create_model(args.model, None, seed=args.seed)

    # 1. first-layer filters: trained against random init
    f_trained, f_random = cnnlens.conv_filters(trained), cnnlens.conv_filters(random_init)
    f_trained.save(args.out / "filters.png", overwrite=True)
    r2_t = np.array([f.gabor_r2 for f in f_trained.filters if f.gabor_r2 is not None])
    r2_r = np.array([f.gabor_r2 for f in f_random.filters if f.gabor_r2 is not None])
    fig, ax = plt.subplots(figsize=(6, 3.8))
    bins = np.linspace(0, 1, 26)
    ax.hist(r2_r, bins=bins, alpha=0.6, label=f"random init (mean {r2_r.mean():.2f})")
    ax.hist(r2_t, bins=bins, alpha=0.6, label=f"trained (mean {r2_t.mean():.2f})")
    ax.set_xlabel("Gabor fit R\u00b2 of a first-layer filter")
    ax.set_ylabel("filters")
    ax.set_title(f"{args.model} {f_trained.layer}: learned filters are Gabor-like")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / "gabor_r2.png", dpi=110)
    plt.close(fig)

    # 2. maximal patches with deconvnet projections (Zeiler & Fergus)
    result = cnnlens.top_patches(trained, args.layer, args.data, n_channels=args.channels, k=args.top, limit=args.limit, size=args.size, settings=units.PatchSettings(method=args.method))
    result.save(args.out / "zeiler_fergus.png", overwrite=True)
    result.save(args.out / "patches.json", overwrite=True)

    # 3. every crop alone gives its activation back
    recorded = torch.tensor([p.activation for p in result.all_patches()])
    replayed = units.replay(trained, result)
    err = float(((replayed - recorded).abs() / recorded.abs().clamp_min(1e-6)).max())

    # 4. the three projections of the strongest unit found, on its whole image
    best = max(result.all_patches(), key=lambda p: p.activation)
    where = f"{result.layer}:{best.channel}@{best.position[0]},{best.position[1]}"
    projection = cnnlens.project(trained, best.image, where, size=args.size)
    projection.save(args.out / "deconv.png", overwrite=True)

    summary = {
        "model": args.model,
        "first_layer": f_trained.layer,
        "mean_gabor_r2_trained": float(r2_t.mean()),
        "mean_gabor_r2_random_init": float(r2_r.mean()),
        "colour_filters_trained": f_trained.n_color,
        "layer": result.layer,
        "receptive_field": result.receptive_field.to_dict(),
        "images": result.n_images,
        "channels": result.channels,
        "replay_max_relative_error": err,
        "strongest_unit": str(projection.unit),
        "strongest_activation": projection.activation,
        "relative_difference_from_gradient": projection.relative_difference,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
