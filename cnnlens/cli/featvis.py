"""``cnnlens visualize`` (gradient-ascent feature visualization) and ``cnnlens dream`` (DeepDream).

What each writes:

- ``visualize``: ``-o F`` the figure (images labelled with unit, class name, objective and
  probability, under a title naming model, weights and layers; ``.json`` the numbers);
  ``--image F`` the bare images tiled at the rendered size (PNG/JPEG, no labels).
- ``dream``: ``--image F`` the dreamed image at the photo's size (PNG/JPEG); ``-o F`` the photo
  beside the dream with the objective of every octave (``.json`` the numbers).

As in every command, ``-o`` is the figure and ``--image`` the image itself.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CnnlensError
from ..outputs import IMAGE_SAVE_SUFFIXES, RESULT_SUFFIXES
from ._options import (
    check_outputs,
    device_option,
    finish,
    image_option,
    json_option,
    model_argument,
    model_option,
    model_stem,
    open_model,
    output_option,
    seed_option,
    unit_option,
    weights_option,
)


@click.command("visualize")
@model_argument
@unit_option(
    "--unit", "-u", "unit", multiple=True, required=True,
    help="what to maximize, one image each (repeat for several, one batch): LAYER:CHANNEL, LAYER:CHANNEL@Y,X (a neuron), "
    "logits:CLASS (index or class name) or LAYER (its mean squared activation)",
)
@weights_option
@click.option("--steps", type=int, default=256, show_default=True, help="Adam steps")
@click.option("--size", type=int, default=None, help="image side in pixels  [default: 128, or the input size of a model that takes only one (lenet5: 32)]")
@click.option("--lr", type=float, default=0.05, show_default=True, help="Adam learning rate")
@click.option("--param", "param_kind", type=click.Choice(["fft", "pixel"]), default="fft", show_default=True, help="image parameterization")
@click.option("--no-decorrelate", is_flag=True, help="optimize in RGB instead of the decorrelated colour basis")
@click.option("--no-transforms", is_flag=True, help="no random pad/jitter/scale/rotation")
@click.option("--redirect-steps", type=int, default=16, show_default=True, help="first steps with redirected ReLU gradients")
@click.option("--batch", type=int, default=1, show_default=True, help="images per unit (use with --diversity)")
@click.option("--diversity", type=float, default=0.0, show_default=True, help="weight of Lucid's diversity term between the images of the batch")
@output_option("the labelled figure (.png, .pdf, .svg ...; .json: the numbers)  [default: MODEL-featvis.png unless --image or --json]")
@image_option("the bare images, tiled at the rendered size without labels (.png, .jpg)")
@json_option
@device_option
@seed_option
def visualize_command(
    model: str, unit: tuple[str, ...], weights: str | None, steps: int, size: int | None, lr: float, param_kind: str,
    no_decorrelate: bool, no_transforms: bool, redirect_steps: int, batch: int, diversity: float, output: Path | None,
    overwrite: bool, image_path: Path | None, as_json: bool, device: str, seed: int,
) -> None:
    """Optimize images that excite units of MODEL: channels, neurons or classes.

    Lucid's recipe (Olah et al. 2017): a Fourier image with 1/f scaling and decorrelated colours,
    random pad/jitter/scale/rotation at every step, redirected ReLU for the first steps, Adam
    0.05; the model's own normalization, pixels in [0, 1]. Every --unit is one image of a single
    batch, in the order given. Prints each image's objective and, for classes, the softmax
    probability of the class on the final image (--json: all numbers as JSON).

    \b
    Examples:
      cnnlens visualize squeezenet1_0 -w squeezenet.pth -u features.9:1 -u features.9:5 -u features.9:9
      cnnlens visualize squeezenet1_0 -w squeezenet.pth -u logits:flamingo -u logits:949 -o classes.png
      cnnlens visualize mobilenet_v2 -w mobilenet.pth -u features.12.conv.0:7@3,3 --json
      cnnlens visualize mobilenet_v2 -w mobilenet.pth -u features.12.conv.0:7 --batch 4 --diversity 100
      cnnlens visualize lenet5 -w none -u logits:3 -u 3:5 --image lenet5.png
      cnnlens visualize resnet18 -w none -u layer3:0 --steps 32 --size 64
    """

    from ..featvis import Recipe, render

    if output is None and image_path is None and not as_json:
        output = Path(f"{model_stem(model)}-featvis.png")
    check_outputs([("--output", output, RESULT_SUFFIXES), ("--image", image_path, IMAGE_SAVE_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    recipe = Recipe(fft=param_kind == "fft", decorrelate=not no_decorrelate, transforms=[] if no_transforms else None, lr=lr, redirect_steps=redirect_steps)
    result = render(
        net, list(unit), size=size, batch=batch, diversity=diversity, recipe=recipe, steps=steps,
        seed=seed, progress=True,
    )
    finish(result, as_json=as_json, output=output, overwrite=overwrite, image=image_path)


@click.command("dream")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@model_option(default="squeezenet1_0")
@weights_option
@unit_option(
    "--unit", "-u", "unit", multiple=True,
    help="LAYER to amplify (repeat for several), or one LAYER:CHANNEL (a channel) or logits:CLASS (a class)  [default: a good layer for the model]",
)
@click.option("--octaves", type=int, default=4, show_default=True, help="number of octaves (scales), 1..20")
@click.option("--octave-scale", type=float, default=1.4, show_default=True, help="size ratio between octaves (> 1)")
@click.option("--steps", type=int, default=10, show_default=True, help="gradient steps per octave")
@click.option("--step-size", type=float, default=1.5, show_default=True, help="mean pixel change per step, in 0..255 units (0..255]")
@click.option("--jitter", type=int, default=32, show_default=True, help="random roll in pixels")
@click.option("--size", type=int, default=None, help="resize the photo's shorter side first  [default: as it is]")
@click.option("--tile-size", type=int, default=512, show_default=True, help="process larger images in tiles of this size")
@output_option("the photo beside the dream, with the objective per octave (.png, .pdf, .svg; .json: the numbers)")
@image_option("the dreamed image at the photo's size (.png, .jpg)  [default: IMAGE-dream.png unless -o or --json]")
@json_option
@device_option
@seed_option
def dream_command(
    image: Path, model: str, weights: str | None, unit: tuple[str, ...], octaves: int, octave_scale: float,
    steps: int, step_size: float, jitter: int, size: int | None, tile_size: int, output: Path | None, overwrite: bool,
    image_path: Path | None, as_json: bool, device: str, seed: int,
) -> None:
    """DeepDream IMAGE: amplify what a layer sees, over an octave pyramid (Mordvintsev et al. 2015).

    The original algorithm: octaves smallest first with the detail carried up, gradient steps
    normalized by the mean |gradient|, random roll jitter, pixels clipped to [0, 1]. The output
    has the photo's size. Prints the objective at the start and end of every octave (--json: all
    numbers). -w defaults to the model's pretrained weights; without network pass a weights file.

    \b
    Examples:
      cnnlens dream photo.jpg -w squeezenet1_0.pth --image dream.png
      cnnlens dream photo.jpg -m squeezenet1_0 -w squeezenet1_0.pth -u features.7 --octaves 5 -o figure.png
      cnnlens dream photo.jpg -m mobilenet_v2 -w mobilenet.pth -u features.10:3
      cnnlens dream photo.jpg -m mobilenet_v2 -w mobilenet.pth -u logits:flamingo --size 256
      cnnlens dream photo.jpg -m googlenet -u inception4c -u inception4d
    """

    from ..address import parse_unit
    from ..featvis import DreamSettings, dream

    addresses = [parse_unit(u, name="unit") for u in unit]
    whole_layers = [a.layer for a in addresses if a.channel is None and a.name is None and a.position is None and not a.is_logits]
    if whole_layers and len(whole_layers) != len(addresses) or len(addresses) - len(whole_layers) > 1:
        raise CnnlensError("--unit: give layers (repeat -u LAYER) or one LAYER:CHANNEL or logits:CLASS, not both")
    layers, one_unit = (whole_layers or None), (None if whole_layers or not unit else unit[0])
    if output is None and image_path is None and not as_json:
        image_path = Path(f"{image.stem}-dream.png")
    check_outputs([("--output", output, RESULT_SUFFIXES), ("--image", image_path, IMAGE_SAVE_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    settings = DreamSettings(octave_scale=octave_scale, step_size=step_size, jitter=jitter, tile_size=tile_size)
    try:
        result = dream(net, image, layers, unit=one_unit, octaves=octaves, steps=steps, settings=settings, size=size, seed=seed, progress=True)
    except CnnlensError as exc:
        if exc.param != "layers":
            raise
        raise CnnlensError(str(exc).replace("layers:", "unit:", 1), param="unit") from None
    finish(result, as_json=as_json, output=output, overwrite=overwrite, image=image_path)
