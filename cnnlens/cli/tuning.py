"""``cnnlens tuning``, ``cnnlens hierarchy`` and ``cnnlens invariance``: V1 physiology in silico."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CnnlensError
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
    parse_float,
    parse_floats,
    safe_name,
    seed_option,
    unit_option,
    weights_option,
)

FIGURE_KINDS = ("all", "polar", "summary", "unit")
TRANSFORM_NAMES = ("translation", "rotation", "scale", "brightness", "contrast")




def _frequencies(text: str | None, count: int) -> int | list[float]:
    """``--frequencies 0.05,0.1`` (cycles per pixel) or the ``--num-frequencies`` default grid."""
    values = parse_floats(text, "frequencies", low=0.0, low_open=True, high=0.5)
    return values if values is not None else count


def _contrasts(text: str) -> list[float]:
    if text.strip().lower() in ("none", "no", "0", ""):
        return []
    return parse_floats(text, "contrasts", low=0.0, low_open=True, high=1.0) or []


def _check_layer(net: object, layer: str, option: str = "layer") -> None:
    from ..layers import get_layer
    from ..pixelnet import unwrap

    try:
        get_layer(unwrap(net)[0], layer)  # type: ignore[arg-type]
    except CnnlensError as exc:
        raise CnnlensError(f"{option}: {exc}", param=option) from None


ORIENTATIONS = click.IntRange(1, 720)
PHASES = click.IntRange(3, 720)


@click.command("tuning")
@model_argument
@unit_option(
    "--unit", "-u", "unit", multiple=True,
    help="LAYER (every channel at the centre of its map), LAYER:CHANNEL (at the centre) or LAYER:CHANNEL@Y,X; repeat for several  [default: the first convolution]",
)
@click.option("--orientations", type=ORIENTATIONS, default=16, show_default=True, help="orientations evenly over 180 degrees")
@click.option("--num-frequencies", type=click.IntRange(1, 1000), default=12, show_default=True, help="frequencies from half a cycle per receptive field to 0.4 cycles per pixel")
@click.option("--frequencies", default=None, help="the frequencies instead, a comma list in cycles per pixel (0.05,0.1,0.2)")
@click.option("--phases", type=PHASES, default=8, show_default=True, help="spatial phases evenly over 360 degrees")
@click.option("--contrast", default="1", show_default=True, help="Michelson contrast of the gratings, in (0, 1]")
@click.option("--contrasts", default="0.0625,0.125,0.25,0.5,1", show_default=True, help="contrasts of the contrast response, or none")
@click.option("--window", type=click.Choice(("rf", "circle", "full")), default="rf", show_default=True, help="rf: the receptive-field box; circle: an aperture inscribed in it; full: the whole canvas")
@click.option("--osi-threshold", default="0.2", show_default=True, help="units with a lower OSI are unselective")
@click.option("--size", type=click.IntRange(min=1), default=None, help="input side the unit positions refer to (default: the weights' crop)")
@click.option("--plot", "kind", type=click.Choice(FIGURE_KINDS), default=None, help="the figure: polar grid and summary (all), polar, summary, or unit  [default: unit for one unit, else all]")
@click.option("--max-units", type=click.IntRange(1, 400), default=24, show_default=True, help="units in the polar grid (the strongest)")
@weights_option
@seed_option
@device_option
@batch_size_option(128)
@json_option
@output_option("figure (.png, .pdf, .svg ...) or .json; default MODEL-LAYER-tuning.png unless --json")
def tuning_command(
    model: str, unit: tuple[str, ...], orientations: int, num_frequencies: int, frequencies: str | None,
    phases: int, contrast: str, contrasts: str, window: str, osi_threshold: str, size: int | None, kind: str | None,
    max_units: int, weights: str | None, seed: int, device: str, batch_size: int, as_json: bool, output: Path | None, overwrite: bool,
) -> None:
    """Orientation and spatial-frequency tuning, F1/F0 and contrast response of units of MODEL.

    Sinusoidal gratings (every orientation x frequency x phase, plus a grey blank) are centred on
    each unit's receptive field, drawn in pixel space and passed through the model's
    preprocessing; a unit is a channel at the centre of the layer's map (-u LAYER: every channel),
    or the address given (-u LAYER:CHANNEL[@Y,X]). Per unit: the preferred orientation (0 = vertical stripes, the convention of
    `cnnlens filters`) and OSI = 1 - circular variance, the preferred frequency, the modulation
    ratio F1/F0 over phase (above 1 simple, below 1 complex; units with OSI below the threshold are
    unselective) and the contrast response. The figure: polar tuning curves of the strongest units
    and histograms of OSI, F1/F0, orientation and frequency; --json prints every unit.

    \b
    Examples:
      cnnlens tuning squeezenet1_0 -w squeezenet1_0_imagenet_deepcompression.pth -o conv1-tuning.png
      cnnlens tuning squeezenet1_0 -w squeezenet.pth -u features.0:12 --json | jq '.units[0].osi'
      cnnlens tuning squeezenet1_0 -w squeezenet.pth -u features.7 --plot summary -o fire5.png
      cnnlens tuning lenet5 -w none --seed 0 -u 3 --orientations 8 --contrasts none
    """
    from ..tuning import Gratings, tuning_curves

    freq = _frequencies(frequencies, num_frequencies)
    contrast_value = parse_float(contrast, "contrast", low=0.0, low_open=True, high=1.0)
    contrast_list = _contrasts(contrasts)
    threshold = parse_float(osi_threshold, "osi_threshold", low=0.0, high=1.0)
    if output is None and not as_json:
        what = unit[0].split(":")[0] if unit else "first-conv"
        output = Path(f"{model_stem(model)}-{safe_name(what)}-tuning.png")
    check_outputs([("-o/--output", output, RESULT_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    for name in unit:
        if ":" not in name:
            _check_layer(net, name, "unit")
    gratings = Gratings(orientations=orientations, frequencies=freq, phases=phases, contrast=contrast_value)
    result = tuning_curves(
        net, unit[0] if len(unit) == 1 else (list(unit) or None), gratings=gratings, contrasts=contrast_list,
        window=window, osi_threshold=threshold, size=size, batch_size=batch_size, progress=True,
    )
    finish(result, as_json=as_json, output=output, overwrite=overwrite, figure={"kind": kind, "max_units": max_units})


@click.command("hierarchy")
@model_argument
@click.option("--layer", "-l", "layers", multiple=True, help="a layer, shallow to deep; repeat  [default: five layers spread over the depth]")
@click.option("--orientations", type=ORIENTATIONS, default=16, show_default=True, help="orientations evenly over 180 degrees")
@click.option("--num-frequencies", type=click.IntRange(1, 1000), default=16, show_default=True, help="frequencies from half a cycle per field of the deepest layer to 0.4 cycles per pixel")
@click.option("--frequencies", default=None, help="the frequencies instead, a comma list in cycles per pixel")
@click.option("--phases", type=PHASES, default=8, show_default=True, help="spatial phases evenly over 360 degrees")
@click.option("--osi-threshold", default="0.2", show_default=True, help="units with a lower OSI are unselective")
@click.option("--baseline/--no-baseline", default=False, show_default=True, help="also measure the architecture at random initialisation (seeded by --seed), dashed in the figure")
@click.option("--size", type=click.IntRange(min=1), default=None, help="input side (default: the weights' crop)")
@weights_option
@seed_option
@device_option
@batch_size_option(64)
@json_option
@output_option("figure (.png, .pdf, .svg ...) or .json; default MODEL-hierarchy.png unless --json")
def hierarchy_command(
    model: str, layers: tuple[str, ...], orientations: int, num_frequencies: int, frequencies: str | None, phases: int,
    osi_threshold: str, baseline: bool, size: int | None, weights: str | None, seed: int, device: str, batch_size: int,
    as_json: bool, output: Path | None, overwrite: bool,
) -> None:
    """Orientation selectivity, simple and complex cells and receptive-field size over the depth of MODEL.

    One set of full-field gratings (each unit sees it through its receptive field) runs once
    through the network; every channel of each layer is measured at the centre of its map as
    `cnnlens tuning` measures it. Prints a table per layer: the shares of orientation-selective,
    simple (F1/F0 > 1) and complex (F1/F0 < 1) units, median OSI and F1/F0, and the field size;
    the figure draws them over depth (--baseline: the random initialisation dashed).

    \b
    Examples:
      cnnlens hierarchy squeezenet1_0 -w squeezenet1_0_imagenet_deepcompression.pth --baseline -o depth.png
      cnnlens hierarchy squeezenet1_0 -w squeezenet.pth -l features.1 -l features.4 -l features.7 --json
      cnnlens hierarchy resnet18 -w none --seed 0 --size 64 --orientations 8 --num-frequencies 6
    """
    from ..tuning import Gratings, hierarchy

    freq = _frequencies(frequencies, num_frequencies)
    threshold = parse_float(osi_threshold, "osi_threshold", low=0.0, high=1.0)
    if output is None and not as_json:
        output = Path(f"{model_stem(model)}-hierarchy.png")
    check_outputs([("-o/--output", output, RESULT_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    for name in layers:
        _check_layer(net, name, "layers")
    result = hierarchy(
        net, list(layers) or None, gratings=Gratings(orientations=orientations, frequencies=freq, phases=phases), osi_threshold=threshold,
        baseline=baseline, seed=seed, size=size, batch_size=batch_size, progress=True,
    )
    finish(result, as_json=as_json, output=output, overwrite=overwrite)


def _transforms(specs: tuple[str, ...]) -> dict[str, list[float] | None] | None:
    """``--transform translation`` (its default sizes) or ``--transform translation=2,4,8``."""
    if not specs:
        return None
    out: dict[str, list[float] | None] = {}
    for spec in specs:
        name, _, values = spec.partition("=")
        name = name.strip()
        if name not in TRANSFORM_NAMES:
            from ..errors import did_you_mean

            raise CnnlensError(f"transforms: unknown transform {name!r}{did_you_mean(name, TRANSFORM_NAMES)}; one of {', '.join(TRANSFORM_NAMES)}", param="transforms")
        out[name] = parse_floats(values, "transforms") if values.strip() else None
    return out


@click.command("invariance")
@model_argument
@click.option("--data", type=click.Path(path_type=Path), required=True, help="folder of images (flat or class subfolders), at least 2")
@click.option("--layer", "-l", "layers", multiple=True, help="a layer, shallow to deep; repeat  [default: five layers spread over the depth]")
@click.option("--transform", "transforms", multiple=True, help="translation, rotation, scale, brightness or contrast, optionally with sizes (translation=2,4,8); repeat  [default: all five]")
@click.option("--limit", type=click.IntRange(min=2), default=32, show_default=True, help="images, spread evenly over the sorted folder")
@click.option("--baseline/--no-baseline", default=True, show_default=True, help="also measure the architecture at random initialisation (seeded by --seed), dashed")
@click.option("--size", type=click.IntRange(min=1), default=None, help="input side (default: the weights' crop)")
@weights_option
@seed_option
@device_option
@batch_size_option(32)
@json_option
@output_option("figure (.png, .pdf, .svg ...) or .json; default MODEL-invariance.png unless --json")
def invariance_command(
    model: str, data: Path, layers: tuple[str, ...], transforms: tuple[str, ...], limit: int, baseline: bool, size: int | None,
    weights: str | None, seed: int, device: str, batch_size: int, as_json: bool, output: Path | None, overwrite: bool,
) -> None:
    """How much each layer of MODEL changes when real images are translated, rotated, zoomed,
    brightened or lowered in contrast, against the same network at random initialisation.

    For each image and transform size, the similarity of a layer's activations for the original and
    the transformed view is their cosine after subtracting the layer's mean activation over the
    images: 1 = unchanged, 0 = as different as another image. Views are cut from the resized photo
    (a shifted view shows more photo, not a border). Prints, per layer, the mean similarity over
    the sizes of each transform (trained / random init); the figure draws the curves.

    \b
    Examples:
      cnnlens invariance squeezenet1_0 -w squeezenet1_0_imagenet_deepcompression.pth --data photos/ -o inv.png
      cnnlens invariance squeezenet1_0 -w squeezenet.pth --data imagenet_samples/ --limit 64 --transform translation=4,8,16,32 --json
      cnnlens invariance mnist-cnn -w none --seed 0 --data digits/ --transform rotation --no-baseline
    """
    from ..tuning import invariance

    if not data.exists():
        raise CnnlensError(f"--data {data}: no such file or folder")
    families = _transforms(transforms)
    if output is None and not as_json:
        output = Path(f"{model_stem(model)}-invariance.png")
    check_outputs([("-o/--output", output, RESULT_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    for name in layers:
        _check_layer(net, name, "layers")
    try:
        result = invariance(
            net, data, list(layers) or None, transforms=families, baseline=baseline, seed=seed, limit=limit, size=size,
            batch_size=batch_size, progress=True,
        )
    except CnnlensError as exc:
        if exc.param == "images":
            raise CnnlensError(exc.for_option("--data")) from None
        raise
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
