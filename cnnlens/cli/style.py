"""``cnnlens style`` (Gatys neural style transfer) and ``cnnlens invert`` (an image from one layer's activations)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import CnnlensError
from ..outputs import IMAGE_SAVE_SUFFIXES, RESULT_SUFFIXES
from ._options import (
    check_outputs,
    device_option,
    finish,
    image_option,
    json_option,
    model_option,
    model_stem,
    output_option,
    safe_name,
    seed_option,
    weights_option,
)

ALTERNATIVE = "--model squeezenet1_0 --weights squeezenet1_0.pth"


def _open(model: str, weights: str | None, device: str, seed: int) -> Any:
    """``open_model``, with a hint when the default weights are not on this machine."""
    from ._options import open_model

    try:
        return open_model(model, weights, device=device, seed=seed)
    except CnnlensError as exc:
        if ("not cached" in str(exc) or "could not be downloaded" in str(exc)) and not ALTERNATIVE.startswith(f"--model {model} "):
            raise CnnlensError(f"{exc}; or use a model whose weights you have as a file, e.g. {ALTERNATIVE}", param=exc.param) from None
        raise


def _size(model: str, size: int | None) -> None:
    """Refuse a size below the model's minimum (or absurdly large) before anything is loaded."""
    from ..registry import get_entry
    from ..style import check_size

    check_size(size, get_entry(model).preprocessing)


@click.command("style")
@click.argument("content", type=click.Path(path_type=Path, dir_okay=False))
@click.argument("styles", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@model_option("vgg19")
@weights_option
@click.option("--content-layer", default=None, help="content layer (default from the registry; VGG aliases like relu4_2 work)")
@click.option("--style-layer", "style_layers", multiple=True, help="style layer, repeat for several (default from the registry)")
@click.option("--style-blend", default=None, help="one weight per style image, e.g. 0.7,0.3 (default equal)")
@click.option("--content-weight", type=float, default=None, help="weight of the content loss (default per model)")
@click.option("--style-weight", type=float, default=None, help="weight of the style loss (default per model)")
@click.option("--tv-weight", type=float, default=None, help="weight of the total-variation loss (default per model)")
@click.option("--steps", type=int, default=300, show_default=True, help="optimizer iterations")
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True)
@click.option("--lr", type=float, default=None, help="step size (L-BFGS default 1, Adam default 0.02)")
@click.option("--size", type=int, default=256, show_default=True, help="shorter side of the content (and style) images in pixels")
@click.option("--init", type=click.Choice(["content", "noise", "color-matched"]), default="content", show_default=True, help="start from the content, from noise (drawn with --seed), or from the content recoloured to the style's colour statistics (faster to a low loss, keeps more of the photo)")
@click.option("--preserve-color", is_flag=True, help="keep the content's colours (YIQ chroma), take only luminance from the result")
@output_option("the figure (content, styles, result), or .json for the numbers (default: CONTENT-STYLE-MODEL.png unless --image or --json)")
@image_option("the stylized image alone, full size (default: beside the figure, *-image.png)")
@json_option
@seed_option
@device_option
def style_command(
    content: Path, styles: tuple[Path, ...], model: str, weights: str | None, content_layer: str | None,
    style_layers: tuple[str, ...], style_blend: str | None, content_weight: float | None, style_weight: float | None,
    tv_weight: float | None, steps: int, optimizer: str, lr: float | None, size: int, init: str, preserve_color: bool,
    output: Path | None, overwrite: bool, image_path: Path | None, as_json: bool, seed: int, device: str,
) -> None:
    """Render CONTENT in the style of one or more STYLE images (Gatys et al. 2016).

    The image is optimized in [0, 1] pixels with the model's normalization inside; the network runs
    only up to the deepest loss layer. Gram matrices are divided by H*W, so weights do not depend on
    --size. Layers and weights default per model (vgg19, vgg16, squeezenet1_0, mobilenet_v2), and
    by a rule for any other CNN. VGG19's ImageNet weights must be in torch's cache; otherwise give
    a model and a weights file you have.

    \b
    Examples:
      cnnlens style photo.jpg starry_night.jpg -o styled.png
      cnnlens style chelsea.png starry_night.jpg -m squeezenet1_0 -w squeezenet1_0.pth --image cat.png
      cnnlens style photo.jpg a.jpg b.jpg -m mobilenet_v2 -w mobilenet_v2.pth --style-blend 0.7,0.3 --preserve-color
      cnnlens style photo.jpg a.jpg -m resnet18 -w none --seed 0 --size 64 --steps 20 --json
    """

    from ..style import StyleSettings, check_style_settings, stylize
    from ._options import parse_floats

    blend = parse_floats(style_blend, "style_blend", low=0.0)
    check_style_settings(
        content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight, style_blend=blend,
        steps=steps, lr=lr, styles=len(styles),
    )
    _size(model, size)
    stem = f"{safe_name(content.stem)}-{'+'.join(safe_name(s.stem) for s in styles)}-{model_stem(model)}"
    if output is None and image_path is None and not as_json:
        output = Path(f"{stem}.png")
    if image_path is None and output is not None and output.suffix.lower() != ".json":
        image_path = output.with_name(output.stem + "-image.png")
    check_outputs([("--output", output, RESULT_SUFFIXES), ("--image", image_path, IMAGE_SAVE_SUFFIXES)], overwrite)
    net = _open(model, weights, device, seed)
    settings = StyleSettings(
        content_layer=content_layer, style_layers=list(style_layers) or None, style_blend=blend, content_weight=content_weight,
        style_weight=style_weight, tv_weight=tv_weight, optimizer=optimizer, lr=lr, init=init, preserve_color=preserve_color,
    )
    result = stylize(net, content, list(styles), settings=settings, size=size, steps=steps, seed=seed, progress=True)
    finish(result, as_json=as_json, output=output, overwrite=overwrite, image=image_path)


@click.command("invert")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@model_option()
@click.option("--layer", "-l", default=None, help="layer whose activations are inverted (default: the model's middle inversion layer; `cnnlens layers MODEL`)")
@weights_option
@click.option("--steps", type=int, default=None, help="optimizer iterations  [default: 300 adam, 200 lbfgs]")
@click.option("--tv-weight", type=float, default=None, help="weight of the TV^beta prior for pixels in [0, 1]  [default: adam 3 x the layer's stride, lbfgs 2]")
@click.option("--beta", type=float, default=2.0, show_default=True, help="TV exponent: 2 smooth, 1 edge preserving")
@click.option("--optimizer", type=click.Choice(["adam", "lbfgs"]), default="adam", show_default=True)
@click.option("--lr", type=float, default=None, help="step size (Adam default 0.05 with a cosine decay, L-BFGS 1)")
@click.option("--jitter", type=int, default=None, help="random shift of the image at each Adam step, in pixels  [default: adam the layer's stride // 8, lbfgs 0]")
@click.option("--size", type=int, default=224, show_default=True, help="shorter side of IMAGE in pixels")
@click.option("--init", type=click.Choice(["noise", "gray"]), default="noise", show_default=True, help="start image (noise drawn with --seed)")
@output_option("the figure (original beside the inversion), or .json for the numbers (default: IMAGE-MODEL-LAYER-invert.png unless --image or --json)")
@image_option("the inversion alone, full size")
@json_option
@seed_option
@device_option
def invert_command(
    image: Path, model: str, layer: str | None, weights: str | None, steps: int | None, tv_weight: float | None, beta: float,
    optimizer: str, lr: float | None, jitter: int | None, size: int, init: str, output: Path | None, overwrite: bool,
    image_path: Path | None, as_json: bool, seed: int, device: str,
) -> None:
    """Reconstruct IMAGE from the activations of one layer (Mahendran & Vedaldi 2015).

    Minimizes |phi(x) - phi(IMAGE)|^2 / |phi(IMAGE)|^2 + tv_weight * TV^beta(x) over the pixels x,
    from noise, with Adam and a random jitter of the image at every step (Mahendran & Vedaldi 2016);
    the prior and the jitter grow with the layer's stride.
    Shallow layers give the photo back; deep ones keep parts and layout, not exact colour or texture.
    The figure shows the original beside the inversion; --json also gives the correlation of the
    inversion with the original, in pixels and in the layer's activations.

    \b
    Examples:
      cnnlens invert chelsea.png -m squeezenet1_0 -w squeezenet1_0.pth -l features.12 -o deep.png
      cnnlens invert photo.jpg -m vgg19 -l relu3_1 --steps 500 --image relu3_1.png
      cnnlens invert digit.png -m mnist-cnn -w mnist_cnn.pt --size 28 --json
    """

    from ..style import InvertSettings, check_invert_settings, invert

    check_invert_settings(steps=steps, tv_weight=tv_weight, beta=beta, lr=lr, jitter=jitter, optimizer=optimizer)
    _size(model, size)
    if output is None and image_path is None and not as_json:
        from ..registry import known_layers

        table = known_layers(model).get("invert") or ("default",)
        output = Path(f"{safe_name(image.stem)}-{model_stem(model)}-{safe_name(layer or table[len(table) // 2])}-invert.png")
    check_outputs([("--output", output, RESULT_SUFFIXES), ("--image", image_path, IMAGE_SAVE_SUFFIXES)], overwrite)
    net = _open(model, weights, device, seed)
    settings = InvertSettings(tv_weight=tv_weight, beta=beta, optimizer=optimizer, lr=lr, jitter=jitter, init=init)
    result = invert(net, image, layer, settings=settings, size=size, steps=steps, seed=seed, progress=True)
    finish(result, as_json=as_json, output=output, overwrite=overwrite, image=image_path)
