"""Recipe: where does a trained CNN look, are its attribution maps faithful, and do they depend on what it learned?

    python recipes/attribution_imagenet.py --out out/attribution \\
        --model mobilenet_v2 --weights ../shared/data/imagenet/mobilenet_v2_imagenet_dequantized.pth \\
        --data ../shared/data/imagenet_samples --limit 100 --sanity-limit 20

(`../shared/data` is the development data folder beside the checkout; any folder of photos and any
weights file of the model work.) Three questions, answered with the public API:

1. Where in each image does the model find its top class? Every method's map over the first images
   -> `maps.png`.
2. Are the maps faithful? Deletion and insertion curves (Petsiuk et al. 2018) of Grad-CAM,
   integrated gradients, LRP over --limit images, against random maps of their grain -> `faithfulness.png`
   and the areas in `summary.json`.
3. Do the maps depend on what the model learned? The cascading model-randomization test (Adebayo et
   al. 2018) of Grad-CAM, guided backprop and saliency on --sanity-limit images -> `sanity.png` and the
   correlation curves in `summary.json`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402

import cnnlens  # noqa: E402
from cnnlens.attribution import DEFAULT_METHODS, AttributionSettings, attribute, deletion_insertion, randomization_test  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="mobilenet_v2")
    parser.add_argument("--weights", default="../shared/data/imagenet/mobilenet_v2_imagenet_dequantized.pth")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imagenet_samples"))
    parser.add_argument("--limit", type=int, default=100, help="images of the faithfulness curves")
    parser.add_argument("--sanity-limit", type=int, default=20, help="images of the randomization test")
    parser.add_argument("--show", type=int, default=4, help="images drawn with every method")
    parser.add_argument("--size", type=int, default=None, help="input side (default: the weights' crop size)")
    parser.add_argument("--ig-steps", type=int, default=32)
    parser.add_argument("--steps", type=int, default=16, help="steps of the deletion and insertion curves")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/attribution"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = cnnlens.create_model(args.model, args.weights, seed=args.seed)
    common = {"size": args.size, "settings": AttributionSettings(ig_steps=args.ig_steps), "seed": args.seed}

    # 1. every method on a few images
    shown = attribute(model, args.data, DEFAULT_METHODS, limit=args.show, **{**common, "settings": AttributionSettings(ig_steps=args.ig_steps, smoothgrad_samples=16)})
    shown.save(args.out / "maps.png", overwrite=True, max_images=args.show)

    # 2. faithfulness of Grad-CAM, integrated gradients and LRP over --limit images
    maps = attribute(model, args.data, ["gradcam", "integrated-gradients", "lrp"], limit=args.limit, **common)
    faith = deletion_insertion(model, maps, steps=args.steps, seed=args.seed)
    faith.save(args.out / "faithfulness.png", overwrite=True)

    # 3. the randomization test on --sanity-limit of those images
    subset = attribute(model, args.data, ["gradcam", "guided-backprop", "saliency"], limit=args.sanity_limit, **common)
    sanity = randomization_test(model, subset, seed=args.seed)
    sanity.save(args.out / "sanity.png", overwrite=True)

    f = faith.to_dict()["curves"]
    summary = {
        **cnnlens.model_info(model).to_dict(),
        "layer": maps.layer,
        "images": len(maps.image_names),
        "top1_of_targets": [float(p) for p in maps.target_probability[: args.show]],
        "faithfulness": {
            curve: {m: {"mean_auc": v["mean_auc"], **({"better_than_random": v["better_than_random"]} if "better_than_random" in v else {})} for m, v in per.items()}
            for curve, per in f.items()
        },
        "sanity_images": len(subset.image_names),
        "sanity_blocks": ["(trained)", *sanity.blocks],
        "sanity_mean_correlation": {m: [round(float(v), 4) for v in sanity.mean_curve(m)] for m in sanity.methods},
        "ig_completeness_error_mean_abs": float(maps.ig_delta.abs().mean()) if maps.ig_delta is not None else None,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    torch.set_num_threads(max(1, torch.get_num_threads()))
    print(json.dumps(main(), indent=2))
