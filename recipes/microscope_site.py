"""Recipe: a microscope site of a trained network and of its random-init twin, compared from their JSON.

    python recipes/microscope_site.py --out out/microscope \\
        --model squeezenet1_0 --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --data ../shared/data/photos

(`../shared/data` is the development data folder beside the checkout; any weights file of the model
and any folder of images work.) Builds two browsable sites -- `out/trained/index.html` and
`out/random/index.html` -- on the same images and layers, then reads the JSON beside their pages, as a
script would, to answer: per layer, how many units never fire on these images, how strong the best
patches are, and what share of units the gratings call simple, complex or unselective, trained against
random init. Writes `featvis_trained.png` (the site's feature visualizations, one row per layer),
`comparison.png` and `summary.json`. Run it again: only what is missing is computed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import cnnlens  # noqa: E402
from cnnlens.microscope import SiteSettings, build_site  # noqa: E402


def layer_numbers(site: Path, layer_page: str) -> dict:
    """What a layer page says, read from the JSON beside it."""
    data = json.loads((site / layer_page).with_suffix(".json").read_text())
    classes = [u["tuning"]["classification"] for u in data["units"] if u["tuning"]]
    tops = [c["top_activation"] for c in data["channels"] if c["top_activation"] is not None]
    return {
        "layer": data["layer"],
        "dead_share": data["n_dead"] / data["n_channels"],
        "median_top_activation": float(np.median(tops)) if tops else None,
        "simple": classes.count("simple") / len(classes) if classes else None,
        "complex": classes.count("complex") / len(classes) if classes else None,
        "unselective": classes.count("unselective") / len(classes) if classes else None,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--weights", default="../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--layers", nargs="+", default=None, help="default: four spread over the depth")
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--steps", type=int, default=128, help="feature-visualization steps")
    parser.add_argument("--featvis-size", type=int, default=None)
    parser.add_argument("--attribution", type=int, default=4)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("out/microscope"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    trained = cnnlens.create_model(args.model, args.weights)
    random_init = cnnlens.create_model(args.model, seed=0)
    common = {
        "layers": args.layers, "units": args.units, "limit": args.limit,
        "settings": SiteSettings(featvis_steps=args.steps, featvis_size=args.featvis_size, attribution=args.attribution),
    }  # fmt: skip
    sites = {
        "trained": build_site(trained, args.data, args.out / "trained", **common),
        "random init": build_site(random_init, args.data, args.out / "random", **common),
    }
    sites["trained"].save(args.out / "featvis_trained.png", overwrite=True)

    rows = {}
    for name, site in sites.items():
        index = json.loads((site.root / "index.json").read_text())
        rows[name] = [layer_numbers(site.root, layer["page"]) for layer in index["layers"]]
        print(f"{name}: {site.index} ({site.pages} pages)")

    layers = [r["layer"] for r in rows["trained"]]
    x = np.arange(len(layers))
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), layout="constrained")
    for offset, (name, values) in zip((-0.2, 0.2), rows.items()):
        axes[0].bar(x + offset, [r["dead_share"] for r in values], 0.4, label=name)
        axes[1].bar(x + offset, [r["median_top_activation"] or 0 for r in values], 0.4, label=name)
        axes[2].bar(x + offset, [r["complex"] or 0 for r in values], 0.4, label=name)
    for ax, title in zip(axes, ("share of units that never fire on the images", "median best activation", "share of complex cells (gratings)")):
        ax.set_xticks(x, layers, fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"{args.model}: trained against random init, from the sites' JSON ({sites['trained'].n_images} images)")
    fig.savefig(args.out / "comparison.png", dpi=90)
    plt.close(fig)

    summary = {"model": args.model, "images": sites["trained"].n_images, "layers": layers, **{name: values for name, values in rows.items()},
               "sites": {name: str(site.index) for name, site in sites.items()},
               "stages_seconds": {name: {k: v["seconds"] for k, v in site.stages.items()} for name, site in sites.items()},
               "layers_mined_now": {name: site.stages["mining"]["computed"] for name, site in sites.items()}}  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


if __name__ == "__main__":
    main()
