"""Recipe: which channels carry a decision, where they look, and which images they matter for.

    python recipes/relevance_concepts.py --out out/relevance \\
        --model squeezenet1_0 --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --image ../shared/data/photos/chelsea.png --data ../shared/data/imagenet_samples --layer features.12

(`../shared/data` is the development data folder beside the checkout; any weights file of the model,
photo and folder of images work.) Four questions, answered with the public API:

1. Where in the photo is the evidence for the top class? The LRP heatmap, checked to hold the logit
   less what the biases and stabilisers absorbed -> `summary.json` (`conservation`).
2. Which channels of the layer carry the decision, and where does each find its evidence? Concept
   relevance: the channels ranked by their share, and their conditional heatmaps -> `channels.png`;
   the heatmaps of all channels add up to the full heatmap (`sum_error`).
3. For which images does each of these channels matter most? Relevance maximization over --data
   (one streaming pass), beside activation maximization -> `by_relevance.png`, `by_activation.png`.
4. Which classes do they serve? The classes each channel's relevance goes to most -> `summary.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import torch

import cnnlens
from cnnlens.attribution import channel_heatmaps, concept_relevance
from cnnlens.relevance import propagate
from cnnlens.units import PatchSettings, top_patches


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--weights", default="../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth")
    parser.add_argument("--image", type=Path, default=Path("../shared/data/photos/chelsea.png"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imagenet_samples"))
    parser.add_argument("--layer", default="features.12")
    parser.add_argument("--channels", type=int, default=4, help="channels shown")
    parser.add_argument("--limit", type=int, default=200, help="images of --data mined")
    parser.add_argument("--size", type=int, default=None, help="input side (default: the weights' crop)")
    parser.add_argument("--out", type=Path, default=Path("out/relevance"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = cnnlens.create_model(args.model, args.weights)
    prep = cnnlens.model_info(model).preprocessing.with_size(args.size)

    # 1-2. the heatmap, the channels that carry it, and their conditional heatmaps
    r = concept_relevance(model, args.image, args.layer, k=args.channels, size=args.size)
    r.save(args.out / "channels.png", overwrite=True)
    pixels = r.image[None]
    full = propagate(model, pixels, [r.target], layers=[args.layer], preprocessing=prep)
    absorbed = sum(rec.bias_term + rec.stabilizer_term for rec in full.records)
    n = len(r.relevance)
    every = channel_heatmaps(model, pixels, args.layer, list(range(n)), r.target, batch_size=32, preprocessing=prep)
    sum_error = float((every.sum(0) - full.relevance[0]).abs().max() / full.relevance.abs().max())

    # 3-4. the images each channel matters for, by relevance and by activation
    units = [f"{args.layer}:{c}" for c in r.channels]
    by_relevance = top_patches(model, units, args.data, k=6, limit=args.limit, size=args.size, settings=PatchSettings(by="relevance"), progress=False)
    by_activation = top_patches(model, units, args.data, k=6, limit=args.limit, size=args.size, progress=False)
    by_relevance.save(args.out / "by_relevance.png", overwrite=True)
    by_activation.save(args.out / "by_activation.png", overwrite=True)

    summary = {
        **cnnlens.model_info(model).to_dict(),
        "image": str(args.image),
        "target": r.target_name,
        "probability": r.probability,
        "conservation": {"logit": r.explained, "absorbed_by_bias_and_stabilisers": absorbed, "pixels": r.input_total},
        "layer": args.layer,
        "channels": [{"channel": c, "relevance": v, "share": s} for c, v, s in r.top(args.channels)],
        "sum_error": sum_error,
        "images_mined": by_relevance.n_images,
        "classes_served": {
            c: [{"class": by_relevance.class_names.get(k, str(k)), "share": round(s, 4)} for k, s in by_relevance.classes.get(c, [])] for c in r.channels
        },
        "shared_top_images": {
            c: len({p.image for p in by_relevance.patches[c]} & {p.image for p in by_activation.patches[c]}) for c in r.channels
        },
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(json.dumps(main(), indent=2))
