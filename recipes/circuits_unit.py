"""Recipe: the circuit of one unit. What builds a fire9 unit of squeezenet1_0, what uses it, and
whether the weights and the images agree.

    python recipes/circuits_unit.py --out out/circuits \\
        --model squeezenet1_0 --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --data ../shared/data/photos --unit features.12:0

(`../shared/data` is the development data folder beside the checkout; any weights file of the model
and any folder of photos work.) Three questions, answered with the public API:

1. Which channels of the stage before build the unit? Expanded weights (nonlinearities set aside)
   and contributions on the unit's own top images (from `cnnlens.top_patches`) -> `inputs.png`.
2. Do the two agree? The overlap of the ten strongest inputs by each, and their rank correlation
   over all input channels -> `summary.json`.
3. What uses the unit? The classes whose logits rise most with it -> `outputs.png`; and the circuit
   two levels deep -> `circuit.png`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import torch

import cnnlens
from cnnlens.circuits import circuit, inputs, outputs


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's correlation of two vectors (ranks by a stable sort)."""
    ra = torch.argsort(torch.argsort(a, stable=True)).double()
    rb = torch.argsort(torch.argsort(b, stable=True)).double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--weights", default="../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/photos"))
    parser.add_argument("--unit", default="features.12:0")
    parser.add_argument("--top", type=int, default=4, help="the unit's top images the contributions are measured on")
    parser.add_argument("--out", type=Path, default=Path("out/circuits"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = cnnlens.create_model(args.model, args.weights)
    found = cnnlens.top_patches(model, args.unit, args.data, k=args.top, progress=False)
    channel = int(args.unit.rsplit(":", 1)[1])
    top_images = list(dict.fromkeys(p.image for p in found.patches[channel]))

    built = inputs(model, args.unit, images=top_images)
    built.save(args.out / "inputs.png", overwrite=True)
    used = outputs(model, args.unit)
    used.save(args.out / "outputs.png", overwrite=True)
    tree = circuit(model, args.unit, depth=2, k=3)
    tree.save(args.out / "circuit.png", overwrite=True)

    by_weight, by_contribution = built.top(10), built.top(10, by="contribution")
    summary = {
        "model": cnnlens.model_info(model).label,
        "unit": built.unit,
        "source": built.other,
        "top_images": [str(p) for p in top_images],
        "strongest_by_weight": [built.label(i) for i in by_weight],
        "strongest_by_contribution": [built.label(i) for i in by_contribution],
        "overlap_of_top10": len(set(by_weight) & set(by_contribution)),
        "rank_correlation": rank_correlation(built.weights, built.contributions),
        "classes_using_it": [used.label(i) for i in used.top(5)],
        "circuit": tree.to_dict()["edges"],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(built.to_text(), used.to_text(), tree.to_text(), sep="\n\n")
    return summary


if __name__ == "__main__":
    main()
