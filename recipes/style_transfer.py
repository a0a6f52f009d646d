"""Recipe: Gatys style transfer and Mahendran-Vedaldi inversions on one backbone, with loss curves.

For each style image: the stylized content (and its colour-preserving variant); for each of the
backbone's inversion layers (shallow to deep): the reconstruction. Writes PNGs, ``losses.json`` and
``loss_curves.png`` (total / content / style per L-BFGS iteration, log scale) into ``--out``.

    python recipes/style_transfer.py --model squeezenet1_0 \\
        --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
        --content ../shared/data/photos/chelsea.png --style ../shared/data/style/starry_night.jpg --out out/style
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import cnnlens
from cnnlens.style import BACKBONES, invert, stylize


def plot_curves(histories: dict[str, list[dict[str, float]]]):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), constrained_layout=True)
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
    p.add_argument("--model", default="squeezenet1_0", choices=sorted(BACKBONES))
    p.add_argument("--weights", default="../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth")
    p.add_argument("--content", type=Path, default=Path("../shared/data/photos/chelsea.png"))
    p.add_argument("--style", type=Path, nargs="+", default=[Path("../shared/data/style/starry_night.jpg")])
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--invert-steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("out/style"))
    args = p.parse_args(argv)

    args.out.mkdir(parents=True, exist_ok=True)
    model = cnnlens.create_model(args.model, args.weights)
    pre = cnnlens.preprocessing(args.model, args.weights)
    content = cnnlens.load_image(args.content, args.size)
    numbers: dict = {"model": args.model, "size": args.size, "styles": {}, "inversions": {}}
    histories = {}
    for style_path in args.style:
        style = cnnlens.load_image(style_path, args.size)
        for keep in (False, True):
            result = stylize(model, content, style, backbone=args.model, steps=args.steps, preserve_color=keep,
                             mean=pre.mean, std=pre.std)
            name = f"{style_path.stem}{'-colors' if keep else ''}"
            cnnlens.save_image(result.image, args.out / f"{name}.png", overwrite=True)
            numbers["styles"][name] = {"initial": result.history[0], "final": result.history[-1],
                                       "style_reduction": result.style_reduction, "seconds": result.seconds}
            if not keep:
                histories[style_path.stem] = result.history
    for layer in BACKBONES[args.model].invert_layers:
        rec = invert(model, content, layer, backbone=args.model, steps=args.invert_steps, mean=pre.mean, std=pre.std,
                     generator=torch.Generator().manual_seed(args.seed))
        cnnlens.save_image(rec.image, args.out / f"invert-{layer}.png", overwrite=True)
        mse = float(((rec.image - content) ** 2).mean())
        numbers["inversions"][layer] = {"reconstruction": rec.history[-1]["reconstruction"], "pixel_mse": mse}
    plot_curves(histories).savefig(args.out / "loss_curves.png", dpi=100)
    (args.out / "losses.json").write_text(json.dumps(numbers, indent=2))
    return numbers


if __name__ == "__main__":
    main()
