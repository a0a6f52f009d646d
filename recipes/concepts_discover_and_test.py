"""Recipe: the concepts a layer uses, where they are in a photo, which classes they feed -- and a
human concept tested against random ones.

    python recipes/concepts_discover_and_test.py --out out/concepts \\
        --model squeezenet1_0 --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --data ../shared/data/imagenet_samples --layer features.9 --image ../shared/data/photos/chelsea.png \\
        --class-image ../shared/data/imagenet_samples/n02391049_zebra.JPEG --target zebra

(`../shared/data` is the development data folder beside the checkout; any weights, folder and photos
work.) Three questions, answered with the public API:

1. Which directions of the layer's activation space does the network use on these images? NMF of
   its activations (CRAFT): the concepts with their top patches, feature visualizations, importance
   and the classes each raises -> `concepts.png`, `concepts.json`; the reconstruction error for
   several numbers of concepts -> `summary.json` (`error_by_n`).
2. Where is each concept in a photo? -> `heatmaps.png`.
3. Does a human concept ("striped", black-and-white gratings) raise the class? TCAV against random
   concepts, with the directional derivatives taken on random crops of one photo of the class ->
   `tcav.png`, `summary.json` (`tcav`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import torch

import cnnlens
from cnnlens.concepts import ConceptSettings, discover, heatmaps, nmf, tcav


def class_crops(path: Path, n: int, size: int, seed: int) -> torch.Tensor:
    """``n`` random square crops (half to all of the photo's shorter side, mirrored at random) of one
    photo, resized to ``size``: images of the class when the folder has one photo of it."""
    image = cnnlens.load_image(path)
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        top, left, h, w = _params(image, g)
        piece = torch.nn.functional.interpolate(image[None, :, top : top + h, left : left + w], size=(size, size), mode="bilinear", antialias=True)[0]
        out.append(piece.flip(-1) if torch.rand(1, generator=g).item() < 0.5 else piece)
    return torch.stack(out).clamp(0, 1)


def _params(image: torch.Tensor, g: torch.Generator) -> tuple[int, int, int, int]:
    _, H, W = image.shape
    side = int(min(H, W) * (0.5 + 0.5 * torch.rand(1, generator=g).item()))
    top = int(torch.randint(0, H - side + 1, (1,), generator=g))
    left = int(torch.randint(0, W - side + 1, (1,), generator=g))
    return top, left, side, side


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--weights", default="../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/imagenet_samples"))
    parser.add_argument("--layer", default="features.9")
    parser.add_argument("--concepts", type=int, default=8)
    parser.add_argument("--limit", type=int, default=None, help="images of --data used")
    parser.add_argument("--image", type=Path, default=Path("../shared/data/photos/chelsea.png"))
    parser.add_argument("--class-image", type=Path, default=Path("../shared/data/imagenet_samples/n02391049_zebra.JPEG"))
    parser.add_argument("--target", default="zebra")
    parser.add_argument("--steps", type=int, default=256, help="feature visualization steps")
    parser.add_argument("--size", type=int, default=None, help="input side (default: the weights' crop)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/concepts"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = cnnlens.create_model(args.model, args.weights)
    info = cnnlens.model_info(model)
    side = args.size or int(info.preprocessing.crop_size)

    # 1. the concepts, and how the reconstruction error falls with their number
    settings = ConceptSettings(size=args.size, visualize=args.steps > 0, steps=max(1, args.steps))
    found = discover(model, args.data, layer=args.layer, n=args.concepts, limit=args.limit, seed=args.seed, settings=settings)
    found.save(args.out / "concepts.png", overwrite=True)
    found.save(args.out / "concepts.json", overwrite=True)
    small = discover(model, args.data, layer=args.layer, n=1, k=1, limit=args.limit, seed=args.seed,
                     settings=ConceptSettings(size=args.size, importance=False), progress=False)  # fmt: skip
    error_by_n = {1: small.relative_error, args.concepts: found.relative_error}

    # 2. where each concept is in a photo
    heatmaps(model, found, args.image).save(args.out / "heatmaps.png", overwrite=True)

    # 3. a human concept against random ones
    cats = list(info.categories or [])
    target = cats.index(args.target) if args.target in cats else int(args.target)
    images = class_crops(args.class_image, 50, side, args.seed)
    test = tcav(model, "striped", args.data, layer=args.layer, target=target, images=images, size=args.size, seed=args.seed, progress=False)
    test.save(args.out / "tcav.png", overwrite=True)

    summary = {
        "model": info.label,
        "layer": args.layer,
        "n_images": found.n_images,
        "n_rows": found.n_rows,
        "error_by_n": error_by_n,
        "concepts": [
            {"concept": i, "importance": None if found.importance is None else found.importance[i],
             "classes": [{"class": cats[k] if k < len(cats) else k, "share": s} for k, s in found.classes.get(i, [])[:3]],
             "top_channels": [c for c, _ in found.top_channels(i, 5)]}
            for i in range(found.n)
        ],  # fmt: skip
        "tcav": test.to_dict(),
        "nmf_check": _nmf_check(),
    }
    (args.out / "summary.json").write_text(json.dumps(cnnlens.results.jsonable(summary), indent=1) + "\n")
    print(found.to_text())
    print(test.to_text())
    return summary


def _nmf_check() -> float:
    """The NMF solver on a known non-negative factorisation: the relative error it reaches (about 0)."""
    g = torch.Generator().manual_seed(0)
    W, H = torch.rand(200, 3, generator=g), torch.rand(3, 20, generator=g)
    return nmf(W @ H, 3).relative_error


if __name__ == "__main__":
    main()
