"""``cnnlens filters``, ``cnnlens patches`` and ``cnnlens deconv``: what units respond to."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import CnnlensError
from ._options import device_option, output_option, resolve_device, safe_name, save_figure, seed_option, weights_option, write_json

METHOD_CHOICE = click.Choice(["deconvnet", "guided", "gradient"])


def _load(model: str, weights: str, device: str = "cpu", seed: int = 0) -> Any:
    """The model on ``device``; ``seed`` fixes a random init (weights none), so results repeat."""
    import torch

    from ..models import load_model

    torch.manual_seed(seed)
    return load_model(model, weights, device=resolve_device(device))


@click.command("filters")
@click.argument("model")
@click.option("--layer", "-l", default=None, help="a Conv2d layer (default: the first convolution)")
@weights_option()
@click.option("--max-filters", type=click.IntRange(min=1), default=None, help="first layer: only the N strongest filters (default all); deeper layers: rows (default 16)")
@click.option("--max-inputs", type=click.IntRange(min=1), default=16, show_default=True, help="deeper layers: input channels shown as columns")
@click.option("--json", "as_json", is_flag=True, help="print {layer, filters: [{index, orientation_deg, frequency, gabor_r2, separability, is_color}]}")
@seed_option
@output_option("PNG of the filter grid (default MODEL-LAYER-filters.png; with --json only if given)")
def filters_command(model: str, layer: str | None, weights: str, max_filters: int | None, max_inputs: int, as_json: bool, seed: int, output: Path | None, overwrite: bool) -> None:
    """Plot the filters of a conv layer of MODEL and fit each with a Gabor.

    The first layer is shown as RGB in pixel space (weights divided by the input normalization's
    std, or by 0.5 under googlenet/inception_v3 transform_input), each filter contrast-normalized with
    0 at grey. Deeper layers: the strongest filters by norm as rows, their input channels as grayscale
    columns. --json gives per filter the Gabor fit's orientation (degrees of the wave vector from the
    x axis, 0 = vertical stripes), frequency (cycles/pixel), R^2, separability (share of energy in the
    first singular value) and whether it is a colour filter.

    \b
    Examples:
      cnnlens filters squeezenet1_0 -w ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth -o conv1.png
      cnnlens filters alexnet --weights DEFAULT --json | jq '.mean_gabor_r2'
      cnnlens filters vgg16 --layer features.2 --max-filters 8 -o vgg16-features.2.png
    """
    from ..units.filters import conv_filters
    from ..units.plots import plot_filters

    net = _load(model, weights, seed=seed)
    result = conv_filters(net, layer)
    if output is None and not as_json:
        output = Path(f"{safe_name(model)}-{safe_name(result.layer)}-filters.png")
    if output is not None:
        label = f"{model} ({'random init, seed ' + str(seed) if weights.lower() in ('none', 'random', '') else Path(weights).name if Path(weights).suffix else weights})"
        save_figure(plot_filters(result, max_filters=max_filters, max_inputs=max_inputs, label=label), output, overwrite)
    if as_json:
        data = {"model": model, "weights": weights, **result.to_dict()}
        write_json(data, None, False)


@click.command("patches")
@click.argument("model")
@click.option("--layer", "-l", default=None, help="layer whose channels are ranked (a conv-like (B, C, H, W) output)")
@click.option("--channel", "-c", "channels", type=click.IntRange(min=0), multiple=True, help="channel to show (repeat); default: the --num-channels with the highest mean activation")
@click.option("--data", "data", type=click.Path(path_type=Path, exists=True, file_okay=False), default=None, help="folder of images (flat or class subfolders)")
@click.option("--top", "-k", type=click.IntRange(min=1), default=9, show_default=True, help="patches per channel")
@click.option("--num-channels", type=click.IntRange(min=1), default=8, show_default=True, help="channels shown when no --channel is given")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="use N images spread evenly over the sorted folder")
@click.option("--workers", type=click.IntRange(min=0), default=0, show_default=True, help="image-loading processes")
@click.option("--interior", is_flag=True, help="only units whose receptive field lies wholly inside the image (skip border detectors)")
@click.option("--deconv", is_flag=True, help="put each patch beside its deconvnet projection (the Zeiler & Fergus figure)")
@click.option("--method", type=METHOD_CHOICE, default="deconvnet", show_default=True, help="projection rule for --deconv")
@click.option("--json", "index_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help="write the JSON index (image, position, box, activation per patch) here")
@click.option("--from-index", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None, help="redraw from a JSON index instead of mining (--layer/--data not needed)")
@weights_option()
@device_option
@seed_option
@output_option("PNG of the patches (default MODEL-LAYER-patches.png)")
def patches_command(
    model: str,
    layer: str | None,
    channels: tuple[int, ...],
    data: Path | None,
    top: int,
    num_channels: int,
    batch_size: int,
    limit: int | None,
    workers: int,
    interior: bool,
    deconv: bool,
    method: str,
    index_path: Path | None,
    from_index: Path | None,
    weights: str,
    device: str,
    seed: int,
    output: Path | None,
    overwrite: bool,
) -> None:
    """Find the dataset patches that excite channels of LAYER most (one streaming pass).

    Every image is resized and centre-cropped like the model's weights expect; a unit is the
    maximum of a channel over positions, and a running top-k per channel keeps the strongest units,
    so memory does not depend on the number of images. Each patch is the exact receptive-field box
    of its position (from `cnnlens report`), padded with the normalization mean where it leaves the
    image. One row per channel. --deconv adds each patch's deconvnet projection beside it.

    \b
    Examples:
      cnnlens patches squeezenet1_0 -w ../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth \\
          --layer features.10 --data ../shared/data/imagenet_samples --top 9 -o patches.png --json patches.json
      cnnlens patches alexnet -w DEFAULT --layer features.8 --channel 7 --channel 42 --data photos/ --deconv
      cnnlens patches alexnet -w DEFAULT --from-index patches.json -o again.png
    """
    from ..models import preprocessing
    from ..units.patches import add_projections, load_index, top_patches
    from ..units.plots import plot_patches

    if from_index is not None:
        try:
            index = json.loads(from_index.read_text())
        except (OSError, ValueError) as exc:
            raise CnnlensError(f"cannot read index {from_index}: {exc}".splitlines()[0]) from None
        result = load_index(index)
        layer = result.layer
    else:
        if layer is None or data is None:
            raise CnnlensError("patches needs --layer and --data (or --from-index FILE)")
        if index_path is not None:
            from ..images import check_writable

            check_writable(index_path, overwrite)
    output = output or Path(f"{safe_name(model)}-{safe_name(layer)}-patches.png")
    from ..images import check_writable

    check_writable(output, overwrite)  # fail before the long pass, not after it
    net = _load(model, weights, device, seed) if (from_index is None or deconv) else None
    if from_index is None:
        result = top_patches(
            net,
            layer,
            data,
            channels=list(channels) or None,
            n_channels=num_channels,
            k=top,
            batch_size=batch_size,
            limit=limit,
            preprocessing=preprocessing(model, weights),
            num_workers=workers,
            interior=interior,
            progress=sys.stderr.isatty(),
        )
        result.model, result.weights = model, weights
    if deconv:
        add_projections(net, result, method=method, batch_size=min(batch_size, 16), progress=sys.stderr.isatty())
    save_figure(plot_patches(result), output, overwrite=True)
    if index_path is not None:
        write_json(result.to_dict(), index_path, overwrite)


@click.command("deconv")
@click.argument("model")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--layer", "-l", required=True, help="layer of the unit (conv-like output, or logits)")
@click.option("--channel", "-c", type=click.IntRange(min=0), default=None, help="channel (class for logits); default: the strongest")
@click.option("--position", nargs=2, type=click.IntRange(min=0), default=None, help="ROW COL of the unit in the layer's output; default: the channel's maximum")
@click.option("--method", "-m", "methods", type=METHOD_CHOICE, multiple=True, help="deconvnet (default), guided, gradient; repeat to compare")
@click.option("--size", type=click.IntRange(min=16), default=None, help="resize the shorter side to this and centre-crop it (default: the weights' crop)")
@click.option("--json", "as_json", is_flag=True, help="print {layer, channel, position, activation, box, methods} as JSON")
@weights_option()
@device_option
@seed_option
@output_option("PNG: image, projection(s) and receptive-field box (default MODEL-LAYER-cC-METHOD.png)")
def deconv_command(
    model: str,
    image: Path,
    layer: str,
    channel: int | None,
    position: tuple[int, int] | None,
    methods: tuple[str, ...],
    size: int | None,
    as_json: bool,
    weights: str,
    device: str,
    seed: int,
    output: Path | None,
    overwrite: bool,
) -> None:
    """Project the strongest activation of a channel (or a chosen unit) of LAYER back to pixels.

    deconvnet (Zeiler & Fergus) passes only positive gradients through every ReLU, guided backprop
    also masks by the forward ReLU, gradient is the plain gradient. Built on captum's Deconvolution,
    GuidedBackprop and Saliency, made right for functional ReLUs (googlenet, inception_v3, densenet)
    by a scoped torch function mode; the model is left as it was.

    \b
    Examples:
      cnnlens deconv vgg16 -w DEFAULT ../shared/data/photos/chelsea.png --layer features.28 -o cat.png
      cnnlens deconv googlenet -w DEFAULT cat.png --layer inception4c -m deconvnet -m guided -m gradient
      cnnlens deconv squeezenet1_0 -w sq.pth cat.png --layer features.12 --channel 42 --position 6 6 --json
    """
    from dataclasses import replace

    from ..images import load_image
    from ..models import preprocessing
    from ..units.deconv import project
    from ..models import model_device
    from ..units.patches import receptive_field_of
    from ..units.plots import plot_projection

    methods = methods or ("deconvnet",)
    net = _load(model, weights, device, seed)
    prep = preprocessing(model, weights)
    if size is not None:
        prep = replace(prep, resize_size=size, crop_size=size)
    pixels = prep.resize_and_crop(load_image(image)).clamp(0, 1)
    x = prep.normalize(pixels.unsqueeze(0)).to(model_device(net))
    projs = [project(net, x, layer, channel=channel, position=position, method=m) for m in methods]
    first = projs[0]
    box = None
    if first.position is not None:
        try:
            rf = receptive_field_of(net, first.layer, tuple(pixels.shape[-2:]))
            box = rf.box(*(int(v) for v in first.position[0]))
        except CnnlensError:
            box = None
    c = int(first.channel[0])
    output = output if output is not None or as_json else Path(f"{safe_name(model)}-{safe_name(first.layer)}-c{c}-{'-'.join(methods)}.png")
    if output is not None:
        save_figure(plot_projection(pixels, projs, box=box), output, overwrite)
    if as_json:
        data = {
            "model": model,
            "weights": weights,
            "image": str(image),
            "layer": first.layer,
            "channel": c,
            "position": None if first.position is None else [int(v) for v in first.position[0]],
            "activation": float(first.activation[0]),
            "box": None if box is None else list(box),
            "methods": {
                p.method: {
                    "relu_calls_routed": p.relu_calls,
                    "abs_sum": float(p.gradient.abs().sum()),
                    "relative_difference_from_gradient": None,
                }
                for p in projs
            },
        }
        grads = {p.method: p.gradient for p in projs}
        if "gradient" in grads:
            ref = grads["gradient"]
            for name, g in grads.items():
                data["methods"][name]["relative_difference_from_gradient"] = float((g - ref).norm() / ref.norm().clamp_min(1e-30))
        else:
            for name in grads:
                del data["methods"][name]["relative_difference_from_gradient"]
        write_json(data, None, False)
