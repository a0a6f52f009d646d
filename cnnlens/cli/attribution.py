"""``cnnlens attribute``: attribution maps with faithfulness curves and sanity checks."""

from __future__ import annotations

from pathlib import Path

import click

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
    parse_float,
    safe_name,
    seed_option,
    weights_option,
)

METHOD_HELP = (
    "gradcam, gradcam++, guided-gradcam, occlusion, saliency, integrated-gradients, smoothgrad "
    "(or guided-backprop, lrp); repeat or comma-separate  [default: the first seven]"
)


@click.command("attribute")
@model_argument
@click.argument("images", metavar="IMAGE|DIR", type=click.Path(path_type=Path))
@click.option("--method", "method", multiple=True, metavar="METHOD", help=METHOD_HELP)
@click.option("--target", "-t", default="top", show_default=True, help="class to explain: top (each image's predicted class), an index, a class name or logits:CLASS")
@click.option("--layer", "-l", default=None, help="layer of Grad-CAM and its variants  [default: the last layer with a spatial output]")
@click.option("--size", type=click.IntRange(min=1, max=8192), default=None, help="resize and centre-crop images to this side (default: the weights' crop)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="use N images spread evenly over the sorted folder")
@click.option("--faithfulness", is_flag=True, help="deletion and insertion curves (Petsiuk et al. 2018) against random maps")
@click.option("--faithfulness-steps", type=click.IntRange(min=1, max=100_000), default=16, show_default=True, help="steps of each curve")
@click.option("--sanity", is_flag=True, help="cascading model-randomization test (Adebayo et al. 2018) of every method")
@click.option("--sanity-blocks", type=click.IntRange(min=1), default=None, help="re-initialise at most N blocks from the top (default: all)")
@click.option("--ig-steps", type=click.IntRange(min=1, max=10_000), default=32, show_default=True, help="integration steps of integrated gradients")
@click.option("--ig-baseline", type=click.Choice(["mean", "black"]), default="mean", show_default=True, help="start of integrated gradients' path: the normalization mean or black")
@click.option("--smoothgrad-samples", type=click.IntRange(min=1, max=10_000), default=25, show_default=True, help="noisy copies of SmoothGrad")
@click.option("--smoothgrad-noise", default="0.15", show_default=True, help="SmoothGrad's noise (standard deviation, pixel units)")
@click.option("--occlusion-window", type=click.IntRange(min=1), default=None, help="side of occlusion's square in pixels (default: 1/8 of the image)")
@click.option("--occlusion-stride", type=click.IntRange(min=1), default=None, help="step of occlusion's square (default: half the window)")
@click.option("--composite", default="epsilon-plus-flat", show_default=True, help="LRP's rules (with --method lrp): epsilon-plus-flat, epsilon-plus, epsilon-gamma-box, epsilon-alpha2-beta1, epsilon-alpha2-beta1-flat, epsilon")
@click.option("--figures", "figures", type=click.Path(path_type=Path, file_okay=False), default=None,
    help="folder for one figure per image and index.json  [default for a DIR: MODEL-DIR-attribution/ unless --json]",
)
@weights_option
@seed_option
@device_option
@batch_size_option(16)
@json_option
@output_option("the figure (.png, .pdf, .svg ...) or .json; default for an IMAGE: MODEL-IMAGE-attribution.png unless --json")
def attribute_command(
    model: str,
    images: Path,
    method: tuple[str, ...],
    target: str,
    layer: str | None,
    size: int | None,
    limit: int | None,
    faithfulness: bool,
    faithfulness_steps: int,
    sanity: bool,
    sanity_blocks: int | None,
    ig_steps: int,
    ig_baseline: str,
    smoothgrad_samples: int,
    smoothgrad_noise: str,
    occlusion_window: int | None,
    occlusion_stride: int | None,
    composite: str,
    figures: Path | None,
    weights: str | None,
    seed: int,
    device: str,
    batch_size: int,
    as_json: bool,
    output: Path | None,
    overwrite: bool,
) -> None:
    """Where in IMAGE (or every image of DIR) MODEL found the evidence for a class.

    Draws the image with each method's map over it, with the class and its probability: Grad-CAM
    and Grad-CAM++ at a spatial layer (tokens of vision transformers are reshaped to their grid),
    guided Grad-CAM (cnnlens' guided backprop, right on functional ReLUs), occlusion, saliency,
    integrated gradients and SmoothGrad. --faithfulness adds deletion and insertion curves and their
    areas, beside random maps of the same grain; --sanity re-initialises the model's blocks from the
    top and reports how each method's maps decorrelate. --method lrp adds layer-wise relevance
    propagation (--composite picks its rules; `cnnlens relevance` splits it by channels). On a DIR, --figures gets one figure per
    image and index.json (the numbers of every image), computed in batches with progress; -o is
    then the overview figure. --json prints the numbers.

    \b
    Examples:
      cnnlens attribute mobilenet_v2 -w mobilenet_v2.pth cat.png -o cat-maps.png
      cnnlens attribute mobilenet_v2 -w mobilenet_v2.pth cat.png --method gradcam --method integrated-gradients --faithfulness
      cnnlens attribute resnet18 photos/ --target tabby --figures maps/ --json > maps.json
      cnnlens attribute mobilenet_v2 -w mobilenet_v2.pth photos/ --method gradcam,guided-backprop --sanity -o sanity.png
      cnnlens attribute vit_b_16 -w none --seed 0 cat.png --method gradcam
      cnnlens attribute resnet50 cat.png --method lrp,gradcam,integrated-gradients --faithfulness
    """
    from ..attribution import DEFAULT_METHODS, AttributionSettings, attribute, check_methods, figure_names
    from ..attribution.maps import INDEX_NAME
    from ..errors import CnnlensError
    from ..folders import select_images
    from ..images import load_image
    from ..outputs import RESULT_SUFFIXES

    methods = check_methods([m.strip() for spec in method for m in spec.split(",") if m.strip()] if method else list(DEFAULT_METHODS), "method")
    noise = parse_float(smoothgrad_noise, "smoothgrad_noise", low=0.0, high=10.0)
    if "lrp" in methods:
        from ..relevance.rules import composite as check_composite

        check_composite(composite)
    if not images.exists():
        raise CnnlensError(f"IMAGE|DIR {images}: no such file or folder")
    folder = images.is_dir()
    names = list(select_images(images, limit))
    if not folder:
        load_image(images)  # an unreadable image fails here, before any work
    if output is None and not as_json and not folder:
        output = Path(f"{model_stem(model)}-{safe_name(images.stem)}-attribution.png")
    if figures is None and not as_json and folder:
        figures = Path(f"{model_stem(model)}-{safe_name(images.name)}-attribution")
    outputs = [("-o/--output", output, RESULT_SUFFIXES)]
    if figures is not None:
        if figures.exists() and not figures.is_dir():
            raise CnnlensError(f"--figures {figures} is a file; give a folder")
        outputs += [("--figures", figures / name, (".png",)) for name in figure_names(names)]
        outputs.append(("--figures", figures / INDEX_NAME, (".json",)))
    check_outputs(outputs, overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    settings = AttributionSettings(
        ig_steps=ig_steps, ig_baseline=ig_baseline, smoothgrad_samples=smoothgrad_samples, smoothgrad_noise=noise,
        occlusion_window=occlusion_window, occlusion_stride=occlusion_stride, faithfulness_steps=faithfulness_steps,
        sanity_blocks=sanity_blocks, batch_size=batch_size, lrp_composite=composite,
    )
    checks = [name for name, wanted in (("faithfulness", faithfulness), ("sanity", sanity)) if wanted]
    result = attribute(net, images, methods, target, layer, settings=settings, checks=checks, size=size, limit=limit, seed=seed, progress=True)
    if figures is not None:
        index = result.save_figures(figures, overwrite=overwrite)
        click.echo(f"wrote {len(names)} figure{'s' if len(names) != 1 else ''} and {index}", err=True)
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
