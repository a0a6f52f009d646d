"""``cnnlens style`` (Gatys neural style transfer) and ``cnnlens invert`` (image from activations)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import CnnlensError
from ._options import device_option, output_option, parse_float, resolve_device, seed_option, weights_option

_ALT = (
    "--model squeezenet1_0 --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth"
)


def _load(model: str, weights: str, device: str) -> Any:
    from ..models import load_model, preprocessing

    try:
        net = load_model(model, weights, device=resolve_device(device))
    except CnnlensError as exc:
        if "not cached" in str(exc) or "could not be downloaded" in str(exc):
            raise CnnlensError(f"{exc}; or choose a backbone whose weights you have, e.g. {_ALT}") from None
        raise
    return net, preprocessing(model, weights)


def _progress(steps: int, keys: tuple[str, ...]) -> Any:
    from tqdm import tqdm

    bar = tqdm(total=steps, file=sys.stderr, unit="it", dynamic_ncols=True, disable=None, leave=False)

    def callback(step: Any) -> None:
        bar.set_postfix({k: f"{step.losses[k]:.4g}" for k in keys if k in step.losses}, refresh=False)
        bar.update(1)

    return bar, callback


def _floats(text: str | None, name: str) -> list[float] | None:
    if text is None:
        return None
    return [parse_float(t.strip(), name) for t in text.split(",") if t.strip()]


def _summary(history: list[dict[str, float]], extra: dict[str, Any]) -> dict[str, Any]:
    totals = [h["total"] for h in history]
    monotone = all(b <= a * (1 + 1e-6) for a, b in zip(totals, totals[1:]))
    return {**extra, "steps": len(history) - 1, "total_never_rose": monotone, "initial": history[0], "final": history[-1]}


@click.command("style")
@click.argument("content", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("styles", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--style-blend", default=None, help="one weight per style image, e.g. 0.7,0.3 (default equal)")
@click.option("--model", "-m", default="vgg19", show_default=True, help="torchvision backbone (vgg19, squeezenet1_0, mobilenet_v2 have defaults)")
@weights_option("DEFAULT")
@click.option("--content-layer", default=None, help="content layer (default per backbone; VGG aliases like relu4_2 work)")
@click.option("--style-layer", "style_layers", multiple=True, help="style layer, repeat for several (default per backbone)")
@click.option("--content-weight", default=None, help="weight of the content loss (default per backbone)")
@click.option("--style-weight", default=None, help="weight of the style loss (default per backbone)")
@click.option("--tv-weight", default=None, help="weight of the total-variation loss (default per backbone)")
@click.option("--steps", type=click.IntRange(min=0), default=300, show_default=True, help="optimizer iterations")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True)
@click.option("--lr", default=None, help="step size (L-BFGS default 1, Adam default 0.02)")
@click.option("--size", type=click.IntRange(min=16), default=256, show_default=True, help="shorter side of the content (and style) images in pixels")
@click.option("--init", type=click.Choice(["content", "noise"]), default="content", show_default=True)
@click.option("--preserve-color", is_flag=True, help="keep the content's colours (YIQ chroma), take only luminance from the style")
@seed_option
@device_option
@click.option("--json", "as_json", is_flag=True, help="print the initial and final losses as JSON")
@output_option("output PNG (default CONTENT-STYLE-MODEL.png)")
def style_command(
    content: Path, styles: tuple[Path, ...], style_blend: str | None, model: str, weights: str,
    content_layer: str | None, style_layers: tuple[str, ...], content_weight: str | None, style_weight: str | None,
    tv_weight: str | None, steps: int, optimizer: str, lr: str | None, size: int, init: str, preserve_color: bool,
    seed: int, device: str, as_json: bool, output: Path | None, overwrite: bool,
) -> None:
    """Render CONTENT in the style of one or more STYLE images (Gatys et al. 2016).

    The image is optimized in [0, 1] pixels with the backbone's normalization inside; the network
    runs only up to the deepest loss layer. Gram matrices are divided by H*W, so weights do not
    depend on --size (docs/style.md). VGG19's ImageNet weights must be cached (or given with
    --weights); offline, use squeezenet1_0 or mobilenet_v2 with the weights in ../shared/data.

    \b
    Examples:
      cnnlens style photo.jpg starry_night.jpg -o styled.png
      cnnlens style ../shared/data/photos/chelsea.png ../shared/data/style/starry_night.jpg \\
          --model squeezenet1_0 --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth
      cnnlens style photo.jpg a.jpg b.jpg --style-blend 0.7,0.3 --preserve-color --steps 200
    """
    import torch

    from ..images import check_writable, load_image, save_image
    from ..models import check_model_name
    from ..style import BACKBONES, stylize

    check_model_name(model)
    if model not in BACKBONES and (content_layer is None or not style_layers):
        raise CnnlensError(f"no default style layers for {model!r}; pass --content-layer and --style-layer (`cnnlens layers {model}`)")
    if output is None:
        output = Path(f"{content.stem}-{'+'.join(s.stem for s in styles)}-{model}.png")
    check_writable(output, overwrite)
    content_img = load_image(content, size)
    style_imgs = [load_image(s, size) for s in styles]
    net, pre = _load(model, weights, device)
    bar, callback = _progress(steps, ("content", "style", "total"))
    try:
        result = stylize(
            net, content_img, style_imgs, backbone=model, content_layer=content_layer,
            style_layers=list(style_layers) or None, style_blend=_floats(style_blend, "--style-blend"),
            content_weight=parse_float(content_weight, "--content-weight") if content_weight else None,
            style_weight=parse_float(style_weight, "--style-weight") if style_weight else None,
            tv_weight=parse_float(tv_weight, "--tv-weight") if tv_weight else None,
            steps=steps, optimizer=optimizer, lr=parse_float(lr, "--lr") if lr else None, init=init,
            preserve_color=preserve_color, generator=torch.Generator().manual_seed(seed),
            mean=pre.mean, std=pre.std, callback=callback,
        )
    finally:
        bar.close()
    save_image(result.image, output, overwrite=overwrite)
    click.echo(f"wrote {output}", err=True)
    if as_json:
        extra = {"output": str(output), "model": model, "content_layer": result.content_layer,
                 "style_layers": result.style_layers, **result.weights, "evaluations": result.evaluations,
                 "seconds": round(result.seconds, 3), "style_reduction": result.style_reduction}
        click.echo(json.dumps(_summary(result.history, extra), indent=2))


@click.command("invert")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--model", "-m", required=True, help="torchvision model name")
@click.option("--layer", "-l", required=True, help="layer whose activations are inverted (`cnnlens layers MODEL`)")
@weights_option("DEFAULT")
@click.option("--steps", type=click.IntRange(min=0), default=200, show_default=True, help="optimizer iterations")
@click.option("--tv-weight", default="2", show_default=True, help="weight of the TV^beta prior (pixels in [0, 1])")
@click.option("--beta", default="2", show_default=True, help="TV exponent: 2 smooth, 1 edge preserving")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True)
@click.option("--size", type=click.IntRange(min=16), default=224, show_default=True, help="shorter side of IMAGE in pixels")
@click.option("--init", type=click.Choice(["noise", "gray"]), default="noise", show_default=True)
@seed_option
@device_option
@click.option("--json", "as_json", is_flag=True, help="print the initial and final losses as JSON")
@output_option("output PNG (default IMAGE-MODEL-LAYER-invert.png)")
def invert_command(
    image: Path, model: str, layer: str, weights: str, steps: int, tv_weight: str, beta: str, optimizer: str,
    size: int, init: str, seed: int, device: str, as_json: bool, output: Path | None, overwrite: bool,
) -> None:
    """Reconstruct IMAGE from the activations of one layer (Mahendran & Vedaldi 2015).

    Minimizes |phi(x) - phi(IMAGE)|^2 / |phi(IMAGE)|^2 + tv_weight * TV^beta(x) over the pixels x,
    from noise. Shallow layers give the photo back; deep ones keep only what the network needs.

    \b
    Examples:
      cnnlens invert ../shared/data/photos/chelsea.png --model squeezenet1_0 --layer features.7 \\
          --weights ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth
      cnnlens invert photo.jpg --model vgg19 --layer relu3_1 --steps 300 -o relu3_1.png
    """
    import torch

    from ..images import check_writable, load_image, save_image
    from ..models import check_model_name
    from ..style import invert

    check_model_name(model)
    if output is None:
        output = Path(f"{image.stem}-{model}-{layer}-invert.png")
    check_writable(output, overwrite)
    img = load_image(image, size)
    net, pre = _load(model, weights, device)
    bar, callback = _progress(steps, ("reconstruction", "tv", "total"))
    try:
        result = invert(
            net, img, layer, backbone=model, steps=steps, tv_weight=parse_float(tv_weight, "--tv-weight"),
            beta=parse_float(beta, "--beta"), optimizer=optimizer, init=init,
            generator=torch.Generator().manual_seed(seed), mean=pre.mean, std=pre.std, callback=callback,
        )
    finally:
        bar.close()
    save_image(result.image, output, overwrite=overwrite)
    click.echo(f"wrote {output}", err=True)
    if as_json:
        extra = {"output": str(output), "model": model, "layer": result.layer, "evaluations": result.evaluations,
                 "seconds": round(result.seconds, 3)}
        click.echo(json.dumps(_summary(result.history, extra), indent=2))
