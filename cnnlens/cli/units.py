"""``cnnlens filters``, ``cnnlens patches`` and ``cnnlens deconv``: what units respond to."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CnnlensError
from ..outputs import RESULT_SUFFIXES
from ._options import (
    UNIT_HELP,
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
from .sharding import finish_run, forget, plan_run, run_options

METHODS = ("deconvnet", "guided", "gradient")
METHOD_CHOICE = click.Choice(METHODS)



@click.command("filters")
@model_argument
@click.option("--layer", "-l", default=None, help="a Conv2d layer (default: the first convolution)")
@weights_option
@seed_option
@device_option
@click.option("--max-filters", type=click.IntRange(min=1), default=None, help="first layer: only the N strongest filters (default all); deeper layers: rows (default 16)")
@click.option("--max-inputs", type=click.IntRange(min=1), default=16, show_default=True, help="deeper layers: input channels shown as columns")
@json_option
@output_option("figure (.png, .pdf, .svg ...) or .json; default MODEL-LAYER-filters.png unless --json")
def filters_command(
    model: str, layer: str | None, weights: str | None, seed: int, device: str, max_filters: int | None, max_inputs: int,
    as_json: bool, output: Path | None, overwrite: bool,
) -> None:
    """Plot the filters of a conv layer of MODEL and fit each with a Gabor.

    The first layer is shown in pixel space (weights divided by the input normalization's std, or
    by 0.5 under googlenet/inception_v3 transform_input), each filter contrast-normalized with 0 at
    grey. Deeper layers: the strongest filters by norm as rows, their input channels as grayscale
    columns. --json prints per filter the Gabor fit's orientation (degrees of the wave vector from
    the x axis, 0 = vertical stripes), frequency (cycles/pixel), R^2, separability (share of energy
    in the first singular value) and whether it is a colour filter.

    \b
    Examples:
      cnnlens filters squeezenet1_0 -w squeezenet1_0_imagenet_deepcompression.pth -o conv1.png
      cnnlens filters alexnet --json | jq '.mean_gabor_r2'
      cnnlens filters vgg16 -w none --seed 1 --layer features.2 --max-filters 8 -o vgg16-features.2.png
      cnnlens filters lenet5 -w none
    """
    from ..registry import build_empty
    from ..units.filters import conv_filters, first_conv

    if output is None and not as_json:
        name = layer or first_conv(build_empty(model))
        output = Path(f"{model_stem(model)}-{safe_name(name)}-filters.png")
    check_outputs([("-o/--output", output, RESULT_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    result = conv_filters(net, layer)
    if output is not None and output.suffix.lower() != ".json":
        result.save(output, overwrite=overwrite, max_filters=max_filters, max_inputs=max_inputs)
        click.echo(f"wrote {output}", err=True)
        output = None
    finish(result, as_json=as_json, output=output, overwrite=overwrite)


@click.command("patches")
@model_argument
@click.option("--data", type=click.Path(path_type=Path), default=None, help="folder of images (flat or class subfolders), or one image")
@unit_option("--unit", "-u", "unit", multiple=True, help="LAYER (its strongest channels) or LAYER:CHANNEL; repeat for several channels of one layer  [default: the last spatial layer]")
@click.option("--top", "-k", "top", type=click.IntRange(min=1), default=9, show_default=True, help="patches per channel")
@click.option("--num-channels", type=click.IntRange(min=1), default=8, show_default=True, help="channels shown when -u names a whole layer")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="use N images spread evenly over the sorted folder")
@click.option("--size", type=click.IntRange(min=1), default=None, help="resize and centre-crop images to this side (default: the weights' crop)")
@click.option("--min-inside", type=click.FloatRange(0, 1), default=0.5, show_default=True, help="least share of a unit's receptive field inside the image (0: every position; 1: wholly inside)")
@click.option("--workers", type=click.IntRange(min=0, max=256), default=0, show_default=True, help="threads that read images ahead of the model")
@click.option("--deconv", is_flag=True, help="put each patch beside its projection (the Zeiler & Fergus figure)")
@click.option("--method", type=METHOD_CHOICE, default="deconvnet", show_default=True, help="projection rule for --deconv")
@click.option("--by", "by", type=click.Choice(["activation", "relevance"]), default="activation", show_default=True, help="rank a unit's images by its activation, or by its LRP relevance for a class (relevance maximization)")
@click.option("--target", "-t", default=None, help="with --by relevance: the class explained (index, name or logits:CLASS)  [default: each image's top class]")
@click.option("--from-index", type=click.Path(path_type=Path), default=None, help="redraw from a JSON index (made by --json or -o FILE.json) instead of mining")
@weights_option
@seed_option
@device_option
@batch_size_option(32)
@run_options
@json_option
@output_option("figure (.png, .pdf, .svg ...) or the index as .json (with --shard: the share's partial state); default MODEL-LAYER-patches.png unless --json")
def patches_command(
    model: str,
    data: Path | None,
    unit: tuple[str, ...],
    top: int,
    num_channels: int,
    limit: int | None,
    size: int | None,
    min_inside: float,
    workers: int,
    deconv: bool,
    method: str,
    by: str,
    target: str | None,
    from_index: Path | None,
    weights: str | None,
    seed: int,
    device: str,
    batch_size: int,
    shard: str | None,
    checkpoint: Path | None,
    checkpoint_every: float,
    as_json: bool,
    output: Path | None,
    overwrite: bool,
) -> None:
    """Find the dataset patches that excite channels of a layer of MODEL most (one streaming pass).

    Every image is resized and centre-cropped like the model's weights expect; a unit is the
    maximum of a channel over positions, and a running top-k per channel keeps the strongest units,
    so memory does not depend on the number of images. Each patch is the exact receptive-field box
    of its position (from `cnnlens report`), padded with the normalization mean (grey) where it
    leaves the image. Border units: a position counts only when at least --min-inside of its
    receptive field lies inside the image (or, if none does, the positions with the largest share),
    so crops show image content. One row per channel; --deconv adds each patch's projection.
    --json prints the index (image, position, box, activation per patch); -o FILE.json saves it
    and --from-index redraws the figure from it. --by relevance ranks by the unit's LRP relevance
    for each image's top class (or --target) instead of its activation (relevance maximization,
    Achtibat et al. 2023), and lists the classes each channel's relevance goes to most.

    Large folders: run it under `torchrun --nproc-per-node N -m cnnlens patches ...` (every
    process mines its share; the result is the same, byte for byte), or as a job array with
    --shard I/N -o part-I.json and `cnnlens merge part-*.json`. A run keeps its partial state
    beside -o and continues from it when started again.

    \b
    Examples:
      cnnlens patches squeezenet1_0 -w squeezenet.pth --data imagenet_samples/ -u features.10 -o patches.png --json > patches.json
      cnnlens patches alexnet --data photos/ -u features.8:7 -u features.8:42 --deconv
      cnnlens patches squeezenet1_0 -w squeezenet.pth --data imagenet_samples/ -u features.12 --by relevance
      cnnlens patches alexnet --from-index patches.json -o again.png
      cnnlens patches mnist-cnn -w none --data digits/ -u conv2 --size 28 -k 4
      torchrun --nproc-per-node 4 -m cnnlens patches resnet50 --data train/ -u layer3 -o layer3.json
      cnnlens patches resnet50 --data train/ -u layer3 --shard 3/8 -o part-3.json
    """
    import json

    from ..distributed import Sharding
    from ..units.patch_results import load_index
    from ..units.patches import PatchSettings, top_patches

    index = None
    for option, path in (("--data", data), ("--from-index", from_index)):
        if path is not None and not path.exists():
            raise CnnlensError(f"{option} {path}: no such file or folder")
    if target is not None and by != "relevance":
        raise CnnlensError("--target is the class relevance is computed for: add --by relevance, or drop --target")
    if from_index is not None:
        if data is not None or unit:
            raise CnnlensError("--from-index redraws a mined index: drop --data and -u")
        if shard is not None or checkpoint is not None:
            raise CnnlensError("--from-index redraws a mined index: drop --shard and --checkpoint")
        try:
            index = json.loads(from_index.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CnnlensError(f"--from-index: cannot read {from_index}: {exc}".splitlines()[0]) from None
        if not isinstance(index, dict) or "layer" not in index:
            raise CnnlensError(f"--from-index: {from_index} is not a cnnlens patches index")
        from ..registry import get_entry

        made_with = index.get("model")
        if made_with is not None and made_with != get_entry(model).name:
            raise CnnlensError(f"--from-index: {from_index} was made with {made_with}, not {model}")
        what = str(index["layer"])
    elif data is None:
        raise CnnlensError("patches needs --data DIR (a folder of images) or --from-index FILE")
    else:
        what = unit[0].split(":")[0] if unit else data.stem
    if output is None and not as_json and shard is None:
        output = Path(f"{model_stem(model)}-{safe_name(what)}-patches.png")
    if shard is not None and deconv:
        raise CnnlensError("--deconv needs the merged result: merge the shares, then `cnnlens patches MODEL --from-index merged.json --deconv`")
    parts, saving = (None, None) if index is not None else plan_run(
        output=output, shard=shard, checkpoint=checkpoint, every=checkpoint_every, overwrite=overwrite, as_json=as_json
    )
    if parts is None:
        check_outputs([("-o/--output", output, RESULT_SUFFIXES)], overwrite)
    if index is not None:
        projections = deconv or index.get("deconv_method") is not None
        net = open_model(model, weights, device=device, seed=seed) if projections else None
        result = load_index(index, model=net, method=method if deconv else None)
    else:
        net = open_model(model, weights, device=device, seed=seed)
        class_index = None
        if target is not None:
            from ..attribution import resolve_targets

            (class_index,) = resolve_targets(target, net)
        settings = PatchSettings(batch_size=batch_size, workers=workers, min_inside=min_inside, method=method if deconv else None, by=by, target=class_index)
        result = top_patches(
            net, list(unit) or None, data, k=top, n_channels=num_channels, limit=limit, size=size, settings=settings,
            progress=True, sharding=Sharding(shard=parts, checkpoint=saving),
        )
        if finish_run(result, shard=parts, checkpoint=saving):
            return
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
    forget(saving)


@click.command("deconv")
@model_argument
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@unit_option("--unit", "-u", "unit", default=None, help=f"{UNIT_HELP}; a missing channel or position is the strongest  [default: the strongest unit of the last spatial layer]")
@click.option("--method", "methods", type=METHOD_CHOICE, multiple=True, help="deconvnet, guided, gradient; repeat to choose  [default: all three]")
@click.option("--size", type=click.IntRange(min=1), default=None, help="resize and centre-crop the image to this side (default: the weights' crop)")
@weights_option
@seed_option
@device_option
@json_option
@output_option("figure (.png, .pdf, .svg ...) or .json; default MODEL-IMAGE-deconv.png unless --json")
def deconv_command(
    model: str,
    image: Path,
    unit: str | None,
    methods: tuple[str, ...],
    size: int | None,
    weights: str | None,
    seed: int,
    device: str,
    as_json: bool,
    output: Path | None,
    overwrite: bool,
) -> None:
    """Project one unit of IMAGE in MODEL back to pixels: deconvnet, guided backprop, gradient.

    deconvnet (Zeiler & Fergus) passes only positive gradients through every ReLU-family
    nonlinearity (ReLU, ReLU6), guided backprop also masks by the forward pass, gradient is the
    plain gradient. Built on captum's Deconvolution, GuidedBackprop and Saliency, made right for
    functional ReLUs (googlenet, inception_v3, densenet) and ReLU6 (mobilenet_v2) by a scoped torch
    function mode; the model is left as it was. The figure and --json give the unit, its
    activation, its receptive-field box and each method's relative difference from the gradient;
    a dead unit, or a model without ReLU-family nonlinearity (where the methods equal the
    gradient), is reported on stderr, in the figure and in the JSON.

    \b
    Examples:
      cnnlens deconv vgg16 chelsea.png -u features.28 -o cat.png
      cnnlens deconv googlenet cat.png -u inception4c:17 --method deconvnet --method guided
      cnnlens deconv squeezenet1_0 -w squeezenet.pth cat.png -u features.12:42@6,6 --json
      cnnlens deconv mobilenet_v2 -w mobilenet_v2.pth cat.png -u logits:tabby
    """
    from ..units.deconv import project

    if output is None and not as_json:
        what = f"-{safe_name(unit)}" if unit else ""
        output = Path(f"{model_stem(model)}-{safe_name(image.stem)}{what}-deconv.png")
    check_outputs([("-o/--output", output, RESULT_SUFFIXES)], overwrite)
    if not image.is_file():
        raise CnnlensError(f"image not found: {image}")
    net = open_model(model, weights, device=device, seed=seed)
    result = project(net, image, unit, methods=methods or METHODS, size=size)
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
