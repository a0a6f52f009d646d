"""``cnnlens relevance``: which channels of a layer carry a decision (concept relevance, LRP)."""

from __future__ import annotations

from pathlib import Path

import click

from ..outputs import RESULT_SUFFIXES
from ._options import (
    batch_size_option,
    check_outputs,
    device_option,
    finish,
    json_option,
    model_argument,
    model_stem,
    open_model,
    output_option,
    safe_name,
    seed_option,
    unit_option,
    weights_option,
)

COMPOSITE_HELP = "LRP rules: epsilon-plus-flat, epsilon-plus, epsilon-gamma-box, epsilon-alpha2-beta1, epsilon-alpha2-beta1-flat, epsilon"


@click.command("relevance")
@model_argument
@click.argument("image", metavar="IMAGE", type=click.Path(path_type=Path))
@unit_option("--unit", "-u", "unit", required=True, help="LAYER (its most relevant channels) or LAYER:CHANNEL (repeat or comma-separate for several)", multiple=True)
@click.option("--target", "-t", default="top", show_default=True, help="class to explain: top, an index, a class name or logits:CLASS")
@click.option("--top", "-k", "top", type=click.IntRange(1, 64), default=6, show_default=True, help="channels shown when -u is a whole layer")
@click.option("--composite", default="epsilon-plus-flat", show_default=True, help=COMPOSITE_HELP)
@click.option("--size", type=click.IntRange(min=1, max=8192), default=None, help="resize and centre-crop the image to this side (default: the weights' crop)")
@weights_option
@seed_option
@device_option
@batch_size_option(16)
@json_option
@output_option("figure (.png, .pdf, .svg ...) or .json; default MODEL-IMAGE-relevance-LAYER.png unless --json")
def relevance_command(
    model: str, image: Path, unit: tuple[str, ...], target: str, top: int, composite: str, size: int | None, weights: str | None,
    seed: int, device: str, batch_size: int, as_json: bool, output: Path | None, overwrite: bool,
) -> None:
    """Concept relevance (Achtibat et al. 2023): which channels of a layer carry MODEL's decision on
    IMAGE, with their share of the relevance, and where in the image each found its evidence.

    LRP (Bach et al. 2015) runs with the composite's rules applied per call, so ResNets, DenseNets,
    GoogLeNet and MobileNets need no adapters; the heatmap conditioned on a channel masks the
    relevance of that channel's output on every path that reads it, and the conditional heatmaps of
    all channels of a layer add up to the full heatmap. Prints the channels ranked by relevance
    (--json: all of them); draws the image, the full heatmap (red for the class, blue against) and
    one heatmap per channel shown.

    \b
    Examples:
      cnnlens relevance mobilenet_v2 -w mobilenet_v2.pth cat.png -u features.16
      cnnlens relevance squeezenet1_0 -w squeezenet.pth cat.png -u features.12:5,features.12:9 -t tabby
      cnnlens relevance resnet50 photo.jpg -u layer4 --composite epsilon-gamma-box --json
    """
    from ..errors import CnnlensError
    from ..images import load_image
    from ..attribution import concept_relevance
    from ..relevance.rules import composite as check_composite

    units = [u.strip() for spec in unit for u in spec.split(",") if u.strip()]
    if not units:
        raise CnnlensError("--unit is empty; give LAYER or LAYER:CHANNEL such as features.12:5")
    check_composite(composite)
    if not image.exists() or image.is_dir():
        raise CnnlensError(f"IMAGE {image}: no such file" + ("; give one image, not a folder" if image.is_dir() else ""))
    load_image(image)  # an unreadable image fails here, before any work
    if output is None and not as_json:
        output = Path(f"{model_stem(model)}-{safe_name(image.stem)}-relevance-{safe_name(units[0].split(':')[0])}.png")
    check_outputs([("--output", output, RESULT_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    result = concept_relevance(net, image, units if len(units) > 1 else units[0], target=target, k=top, composite=composite, size=size, batch_size=batch_size)
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
