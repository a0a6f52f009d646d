"""``cnnlens visualize`` (gradient-ascent feature visualization) and ``cnnlens dream`` (DeepDream)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import CnnlensError
from ._options import WEIGHTS_HELP, class_index, device_option, output_option, safe_name, seed_option


def _load(model_name: str, weights: str, device: str):  # type: ignore[no-untyped-def]
    from ..models import load_model, preprocessing
    from ._options import resolve_device

    dev = resolve_device(device)
    model = load_model(model_name, weights, device=dev)
    return model, preprocessing(model_name, weights)


@click.command("visualize")
@click.argument("model")
@click.option("--layer", "-l", default=None, help="layer whose channels to visualize (`cnnlens layers MODEL`)")
@click.option("--channel", "-c", "channels", type=click.IntRange(min=0), multiple=True, help="channel index; repeat for several (one batch). Default with --layer: 0..7")
@click.option("--neuron", is_flag=True, help="maximize the centre neuron of each channel instead of the channel mean")
@click.option("--class", "classes", multiple=True, help="class logit to maximize (index or category name); repeat for several")
@click.option("--weights", "-w", default="DEFAULT", show_default=True, help=WEIGHTS_HELP)
@click.option("--steps", type=click.IntRange(min=0), default=256, show_default=True, help="Adam steps")
@click.option("--size", type=click.IntRange(min=8), default=128, show_default=True, help="image side in pixels")
@click.option("--lr", type=float, default=0.05, show_default=True, help="Adam learning rate")
@click.option("--param", "param_kind", type=click.Choice(["fft", "pixel"]), default="fft", show_default=True, help="image parameterization")
@click.option("--no-decorrelate", is_flag=True, help="optimize in RGB instead of the decorrelated colour basis")
@click.option("--no-transforms", is_flag=True, help="no random pad/jitter/scale/rotation")
@click.option("--redirect-steps", type=click.IntRange(min=0), default=16, show_default=True, help="first steps with redirected ReLU gradients")
@click.option("--batch", "per_unit", type=click.IntRange(min=1), default=1, show_default=True, help="images per unit (use with --diversity)")
@click.option("--diversity", type=float, default=0.0, show_default=True, help="weight of the batch diversity term (needs --batch >= 2)")
@output_option("the grid PNG (default: MODEL-LAYER-featvis.png)")
@click.option("--json", "as_json", is_flag=True, help="print each image's objective (and class probability) as JSON")
@device_option
@seed_option
def visualize_command(
    model: str, layer: str | None, channels: tuple[int, ...], neuron: bool, classes: tuple[str, ...], weights: str,
    steps: int, size: int, lr: float, param_kind: str, no_decorrelate: bool, no_transforms: bool, redirect_steps: int,
    per_unit: int, diversity: float, output: Path | None, overwrite: bool, as_json: bool, device: str, seed: int,
) -> None:
    """Optimize images that excite channels of a layer or classes of MODEL, and save them as a grid.

    Lucid's recipe: a Fourier image with 1/f scaling and decorrelated colours, random
    pad/jitter/scale/rotation at every step, redirected ReLU for the first steps, Adam 0.05; the
    model's own normalization from its weights, pixels in [0, 1]. All channels and classes are
    optimized together in one batch. The grid is in the order given: channels, then classes.

    \b
    Examples:
      cnnlens visualize squeezenet1_0 --weights squeezenet.pth --layer features.9 -c 1 -c 5 -c 9
      cnnlens visualize squeezenet1_0 --weights squeezenet.pth --class flamingo --class 949 -o classes.png
      cnnlens visualize mobilenet_v2 --weights mobilenet.pth --layer features.10 --neuron --json
      cnnlens visualize resnet18 --weights none --layer layer3 --steps 32 --size 64
    """
    import torch

    from ..featvis import objectives as O
    from ..featvis import render
    from ..featvis.render import image_grid
    from ..images import check_writable, save_image

    if not layer and not classes:
        raise CnnlensError("give --layer (with --channel) or --class")
    if channels and not layer:
        raise CnnlensError("--channel needs --layer")
    if diversity and per_unit < 2:
        raise CnnlensError("--diversity needs --batch 2 or more")
    net, prep = _load(model, weights, device)
    units: list[tuple[str, object]] = []  # ("channel", n) / ("class", k)
    if layer:
        from ..layers import get_layer

        get_layer(net, layer)
        for n in channels or range(8):
            units.append(("channel", n))
    num_classes = len(prep.categories) if prep.categories else 1000
    for text in classes:
        units.append(("class", class_index(text, prep.categories, num_classes)))
    stem = safe_name(layer or "classes")
    out = output or Path(f"{safe_name(model)}-{stem}-featvis.png")
    check_writable(out, overwrite)

    parts = []
    item_labels = []
    for u, (kind, n) in enumerate(units):
        for j in range(per_unit):
            i = u * per_unit + j
            if kind == "class":
                parts.append(O.class_logit(int(n), batch=i))  # type: ignore[call-overload]
                item_labels.append({"class": n, "category": prep.category(int(n))})  # type: ignore[call-overload]
            elif neuron:
                parts.append(O.neuron(layer, int(n), batch=i))  # type: ignore[arg-type, call-overload]
                item_labels.append({"layer": layer, "channel": n, "neuron": True})
            else:
                parts.append(O.channel(layer, int(n), batch=i))  # type: ignore[arg-type, call-overload]
                item_labels.append({"layer": layer, "channel": n})
    objective = sum(parts[1:], parts[0])
    if diversity and layer:
        objective = objective + diversity * O.diversity(layer)
    generator = torch.Generator().manual_seed(seed)
    result = render(
        net, objective, size=size, batch=len(parts), fft=param_kind == "fft", decorrelate=not no_decorrelate,
        transforms=[] if no_transforms else None, steps=steps, lr=lr, preprocessing=prep,
        redirect_steps=redirect_steps, generator=generator, progress=None,
    )
    save_image(image_grid(result.images.cpu(), ncols=min(len(parts), 8)), out, overwrite=overwrite)
    from ..hooks import eval_mode

    with torch.no_grad(), eval_mode(net):
        probs = torch.softmax(net(prep.normalize(result.images)).float(), 1)
    rows = []
    for i, label in enumerate(item_labels):
        row = dict(label, value=round(float(result.values[i]), 4))
        if "class" in label:
            row["probability"] = round(float(probs[i, int(label["class"])]), 4)  # type: ignore[call-overload]
        rows.append(row)
    if as_json:
        click.echo(json.dumps({"output": str(out), "model": model, "steps": steps, "size": size, "images": rows}, indent=2))
    else:
        for row in rows:
            what = f"class {row['class']} ({row['category']})" if "class" in row else f"{row['layer']}:{row['channel']}"
            extra = f"  p={row['probability']:.3f}" if "probability" in row else ""
            click.echo(f"{what}: objective {row['value']:.3f}{extra}")
        click.echo(f"wrote {out}", err=True)


@click.command("dream")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--model", "-m", "model_name", default="squeezenet1_0", show_default=True, help="torchvision model name")
@click.option("--weights", "-w", default="DEFAULT", show_default=True, help=WEIGHTS_HELP)
@click.option("--layer", "-l", "layers", multiple=True, help="layer to amplify; repeat for several (default: a good layer for the model)")
@click.option("--channel", "-c", type=click.IntRange(min=0), default=None, help="amplify only this channel of the layer(s)")
@click.option("--octaves", type=click.IntRange(min=1), default=4, show_default=True, help="number of octaves (scales)")
@click.option("--octave-scale", type=float, default=1.4, show_default=True, help="size ratio between octaves (> 1)")
@click.option("--steps", type=click.IntRange(min=0), default=10, show_default=True, help="gradient steps per octave")
@click.option("--step-size", type=float, default=1.5, show_default=True, help="mean pixel change per step, in 0..255 units")
@click.option("--jitter", type=click.IntRange(min=0), default=32, show_default=True, help="random roll in pixels")
@click.option("--size", type=click.IntRange(min=1), default=None, help="resize the photo's shorter side first (default: as is)")
@click.option("--tile-size", type=click.IntRange(min=32), default=512, show_default=True, help="process larger images in tiles of this size")
@output_option("the dreamed image (default: IMAGE-dream.png)")
@click.option("--json", "as_json", is_flag=True, help="print the objective before/after every octave as JSON")
@device_option
@seed_option
def dream_command(
    image: Path, model_name: str, weights: str, layers: tuple[str, ...], channel: int | None, octaves: int,
    octave_scale: float, steps: int, step_size: float, jitter: int, size: int | None, tile_size: int,
    output: Path | None, overwrite: bool, as_json: bool, device: str, seed: int,
) -> None:
    """DeepDream IMAGE: amplify what a layer sees, over an octave pyramid (Mordvintsev et al. 2015).

    The original algorithm: octaves smallest first with the detail carried up, gradient steps
    normalized by the mean |gradient|, random roll jitter, pixels clipped to [0, 1]. The output
    has the photo's size. The default model's ImageNet weights are downloaded by torchvision when
    they are not cached; without network pass a local file with --weights.

    \b
    Examples:
      cnnlens dream photo.jpg --weights squeezenet1_0.pth -o dream.png
      cnnlens dream photo.jpg --model squeezenet1_0 --weights squeezenet1_0.pth --layer features.7 --octaves 5
      cnnlens dream photo.jpg --model mobilenet_v2 --weights mobilenet.pth --layer features.10 --channel 3
      cnnlens dream photo.jpg --model googlenet --weights DEFAULT --layer inception4c
    """
    import torch

    from ..featvis import default_dream_layer, dream
    from ..images import check_writable, load_image, save_image

    out = output or Path(f"{image.stem}-dream.png")
    check_writable(out, overwrite)
    photo = load_image(image, size)
    net, prep = _load(model_name, weights, device)
    names = list(layers) or default_dream_layer(model_name, net)
    result = dream(
        net, photo, names, channel=channel, octaves=octaves, octave_scale=octave_scale, steps=steps,
        step_size=step_size, jitter=jitter, preprocessing=prep, tile_size=tile_size,
        generator=torch.Generator().manual_seed(seed), progress=None,
    )
    save_image(result.image.cpu(), out, overwrite=overwrite)
    if as_json:
        rows = [{"size": list(s.size), "before": round(s.before, 5), "after": round(s.after, 5)} for s in result.octaves]
        click.echo(json.dumps({"output": str(out), "model": model_name, "layers": names, "octaves": rows}, indent=2))
    else:
        for s in result.octaves:
            click.echo(f"octave {s.size[0]}x{s.size[1]}: objective {s.before:.4f} -> {s.after:.4f}")
        click.echo(f"wrote {out}", err=True)
