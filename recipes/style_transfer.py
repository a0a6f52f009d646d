"""Recipe: Gatys style transfer and Mahendran-Vedaldi inversions on one backbone, with loss curves.

For each style image: the stylized content (and its colour-preserving variant); for each of the
model's inversion layers (shallow to deep, ``cnnlens.default_layers(model, "invert")``): the
inversion beside the photo, with how much of the photo it keeps (the correlation of pixels and of
activations). Writes PNGs, ``losses.json`` and ``loss_curves.png`` (total / content / style per
L-BFGS iteration, log scale) into ``--out``.

The defaults read the ImageNet-trained squeezenet1_0 and the photos and paintings of the development
data folder (``../shared/data`` beside the checkout); give your own with ``--weights``, ``--content``
and ``--style``:

    python recipes/style_transfer.py --model squeezenet1_0 \\
        --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --content ../shared/data/photos/chelsea.png --style ../shared/data/style/starry_night.jpg --out out/style
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


import cnnlens
from cnnlens.style import StyleSettings, invert, stylize

DATA = Path("../shared/data")


def plot_curves(histories: dict[str, list[dict[str, float]]]):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), layout="constrained")
    axes = fig.subplots(1, 3)
    for name, history in histories.items():
        for ax, key in zip(axes, ("total", "content", "style")):
            ax.plot([h[key] for h in history], label=name)
            ax.set_title(key)
            ax.set_yscale("symlog" if key == "content" else "log")
            ax.set_xlabel("L-BFGS iteration")
    axes[0].legend(fontsize=7)
    return fig


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="squeezenet1_0", help="any name of `cnnlens models`")
    p.add_argument("--weights", default=str(DATA / "imagenet/squeezenet1_0_imagenet_deepcompression.pth"), help="DEFAULT, none or a file")
    p.add_argument("--content", type=Path, default=DATA / "photos/chelsea.png")
    p.add_argument("--style", type=Path, nargs="+", default=[DATA / "style/starry_night.jpg"])
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--invert-steps", type=int, default=None, help="default: invert's own (300 Adam steps)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("out/style"))
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    model = cnnlens.create_model(args.model, args.weights, seed=args.seed)
    numbers: dict = {**cnnlens.model_info(model).to_dict(), "size": args.size, "styles": {}, "inversions": {}}
    histories = {}
    for style_path in args.style:
        for keep in (False, True):
            result = stylize(model, args.content, style_path, size=args.size, steps=args.steps, settings=StyleSettings(preserve_color=keep))
            name = f"{style_path.stem}{'-colors' if keep else ''}"
            result.save_image(args.out / f"{name}.png", overwrite=True)
            numbers["styles"][name] = {
                "initial": result.history[0], "final": result.history[-1], "style_reduction": result.style_reduction,
                "total_never_rose": result.total_never_rose, "seconds": result.seconds,
            }
            if not keep:
                histories[style_path.stem] = result.history
    for layer in cnnlens.default_layers(model, "invert"):
        rec = invert(model, args.content, layer, size=args.size, steps=args.invert_steps, seed=args.seed)
        rec.save(args.out / f"invert-{layer}.png", overwrite=True)  # the photo beside its inversion
        numbers["inversions"][layer] = {
            "reconstruction": rec.reconstruction, "pixel_correlation": rec.pixel_correlation,
            "feature_correlation": rec.feature_correlation, "seconds": rec.seconds,
        }
    plot_curves(histories).savefig(args.out / "loss_curves.png", dpi=100)
    (args.out / "losses.json").write_text(json.dumps(numbers, indent=2))
    return numbers


if __name__ == "__main__":
    main()
