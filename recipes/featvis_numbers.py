"""Feature visualization, measured: class probabilities, channel activation vs photos, high frequencies.

For one ImageNet model this script

1. optimizes one image per class (Lucid defaults) and prints each class's softmax probability
   on the starting noise and on the result;
2. optimizes one image per channel of a layer (one batch) and divides each channel's mean
   activation by its mean over the photos in ``--photos`` (the 1,000 ImageNet samples);
3. optimizes the same channels twice until every one reaches the same activation, once with the
   Fourier + decorrelation + transforms recipe and once with plain pixels, and prints the fraction
   of spectral power above 0.25 cycles/pixel of both.

Everything goes to ``--out`` (``numbers.json``, three PNG grids and the labelled class figure).
With the trained weights and photos of the development data folder (``../shared/data`` beside the
checkout):

    python recipes/featvis_numbers.py --model squeezenet1_0 \\
        --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --photos ../shared/data/imagenet_samples --out out/featvis_squeezenet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import cnnlens
from cnnlens.featvis import Recipe, activations, high_frequency_energy, image_grid
from cnnlens.featvis import param as P
from cnnlens.folders import list_images
from cnnlens.images import save_image


def photo_channel_means(model, files: list[Path], layer: str, batch: int = 50) -> torch.Tensor:  # type: ignore[no-untyped-def]
    """Mean activation of every channel of ``layer`` over the photos (resize + centre crop as the weights say)."""
    prep = cnnlens.model_info(model).preprocessing
    total, count = None, 0
    for start in range(0, len(files), batch):
        x = cnnlens.as_pixels(files[start : start + batch], prep, fit="crop")
        with torch.no_grad():
            a = activations(model, x, [layer])[layer].mean((2, 3)).sum(0)
        total = a if total is None else total + a
        count += len(x)
    assert total is not None
    return total / count


def start_probabilities(model, size: int, classes: list[int], seed: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Softmax probability of each class on the noise image render starts from (same seed, same draw)."""
    channels = cnnlens.model_info(model).preprocessing.channels
    start = P.image(size, batch=len(classes), channels=channels, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        p = torch.softmax(activations(model, start(), ["logits"])["logits"], 1)
    return [round(float(p[i, k]), 4) for i, k in enumerate(classes)]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="squeezenet1_0")
    parser.add_argument("--weights", default="none")
    parser.add_argument("--layer", default="features.9")
    parser.add_argument("--channels", default="5,20,50", help="comma-separated channel indices")
    parser.add_argument("--classes", default="130,949,1,417", help="comma-separated class indices or names")
    parser.add_argument("--photos", default="../shared/data/imagenet_samples", help="folder of photos for the channel means")
    parser.add_argument("--max-photos", type=int, default=None)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--target", type=float, default=None, help="activation for the frequency comparison (default: 8x the photo mean)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="out/featvis_numbers")
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model = cnnlens.create_model(args.model, args.weights, seed=args.seed)
    channels = [int(c) for c in args.channels.split(",")]
    units = [f"{args.layer}:{c}" for c in channels]
    kw = dict(size=args.size, steps=args.steps, progress=True)
    numbers: dict = {**cnnlens.model_info(model).to_dict(), "size": args.size, "steps": args.steps}

    # 1. classes: one image each, one batch; the result holds each class's probability on its image
    result = cnnlens.render(model, [f"logits:{k}" for k in args.classes.split(",")], seed=args.seed, **kw)
    indices = [u.channel for u in result.units]
    p0 = start_probabilities(model, args.size, indices, args.seed)
    numbers["classes"] = [
        {"class": k, "class_name": name, "p_start": a, "p_end": round(b, 4)}
        for k, name, a, b in zip(indices, result.class_names, p0, result.probabilities)
    ]
    result.save_image(out / "classes.png", overwrite=True)
    result.save(out / "classes_figure.png", overwrite=True)

    # 2. channels against the photos
    files = list_images(args.photos)[: args.max_photos]
    means = photo_channel_means(model, files, args.layer)
    result = cnnlens.render(model, units, seed=args.seed, **kw)
    numbers["photos"] = len(files)
    numbers["channels"] = [
        {"layer": args.layer, "channel": c, "visualization": round(float(v), 3), "photo_mean": round(float(means[c]), 3),
         "ratio": round(float(v / means[c]), 2)}
        for c, v in zip(channels, result.values)
    ]
    result.save_image(out / "channels.png", overwrite=True)

    # 3. high-frequency energy at the same activation
    target = args.target if args.target is not None else 8 * float(means[channels].max())
    runs = {
        "fourier+decorrelation+transforms": cnnlens.render(model, units, seed=args.seed, until=target, **kw),
        "pixels": cnnlens.render(model, units, seed=args.seed, until=target, recipe=Recipe(fft=False, decorrelate=False, transforms=[]), **kw),
    }
    numbers["frequency"] = {"target": round(target, 3), "cutoff_cycles_per_pixel": 0.25}
    for name, r in runs.items():
        numbers["frequency"][name] = {
            "steps": len(r.history),
            "activation": [round(float(v), 2) for v in r.values],
            "high_frequency_energy": [round(float(e), 4) for e in high_frequency_energy(r.images)],
        }
    save_image(image_grid(torch.cat([r.images for r in runs.values()]), ncols=len(channels)), out / "fourier_vs_pixels.png", overwrite=True)

    (out / "numbers.json").write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers, indent=2))
    return numbers


if __name__ == "__main__":
    main()
