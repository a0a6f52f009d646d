"""``cnnlens concepts`` and ``cnnlens tcav``: concepts of a layer, found without labels (NMF) or
given by example images and tested (TCAV)."""

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
    safe_name,
    seed_option,
    weights_option,
)


def _class_index(target: str | None, net: object) -> int | None:
    if target is None or target == "top":
        return None
    from ..attribution import resolve_targets

    (index,) = resolve_targets(target, net)  # type: ignore[arg-type]
    return index


@click.command("concepts")
@model_argument
@click.option("--data", type=click.Path(path_type=Path), required=True, help="folder of images (flat or class subfolders)")
@click.option("--layer", "-l", required=True, help="a layer with a spatial output and a local receptive field (see `cnnlens layers MODEL`)")
@click.option("--concepts", "-k", "n", type=click.IntRange(1, 4096), default=8, show_default=True, help="concepts to find")
@click.option("--top", type=click.IntRange(1, 1000), default=9, show_default=True, help="patches per concept")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="use N images spread evenly over the sorted folder")
@click.option("--rows", type=click.IntRange(1, 10_000_000), default=32768, show_default=True, help="most activation vectors factorised (positions sampled evenly over the images)")
@click.option("--target", "-t", default=None, help="class the importance explains (index, name or logits:CLASS)  [default: each image's top class]")
@click.option("--visualize/--no-visualize", default=True, show_default=True, help="render a feature visualization of each concept direction")
@click.option("--steps", type=click.IntRange(1, 100_000), default=256, show_default=True, help="Adam steps of the feature visualizations")
@click.option("--crops/--no-crops", default=True, show_default=True, help="draw the top crops (--no-crops: no image of the folder in the figure, for images that cannot be shown)")
@click.option("--importance/--no-importance", default=True, show_default=True, help="measure gradient x concept per class (a backward pass per image)")
@click.option("--size", type=click.IntRange(min=1, max=8192), default=None, help="resize and centre-crop images to this side (default: the weights' crop)")
@click.option("--workers", type=click.IntRange(min=0, max=256), default=0, show_default=True, help="threads that read images ahead of the model")
@weights_option
@seed_option
@device_option
@batch_size_option(32)
@json_option
@output_option("figure (.png, .pdf, .svg ...) or .json; default MODEL-LAYER-concepts.png unless --json")
def concepts_command(
    model: str, data: Path, layer: str, n: int, top: int, limit: int | None, rows: int, target: str | None, visualize: bool, steps: int,
    crops: bool, importance: bool, size: int | None, workers: int, weights: str | None, seed: int, device: str, batch_size: int, as_json: bool,
    output: Path | None, overwrite: bool,
) -> None:
    """Find K concepts of a layer of MODEL over a folder, without labels (CRAFT, Fel et al. 2023).

    The layer's activation vectors (every position of every image, or at most --rows of them,
    sampled evenly over the images from --seed) are factorised by non-negative matrix
    factorisation; each concept is a non-negative direction over the channels. Each is shown as a
    unit is: its top dataset patches cut by the receptive field (its activation at every position
    is the projection onto the directions), a feature visualization of its direction, and its
    importance: the mean gradient x concept of each image's top class logit (or --target), with
    the classes it raises most. Prints a table of the concepts; --json all numbers and patches.

    Under `torchrun --nproc-per-node N -m cnnlens concepts ...` each process reads its share of the
    folder in every pass; the result equals one process's.

    \b
    Examples:
      cnnlens concepts squeezenet1_0 -w squeezenet.pth --data imagenet_samples/ -l features.9 -k 8
      cnnlens concepts resnet50 --data photos/ -l layer3 -k 6 --no-visualize --json > concepts.json
      cnnlens concepts mobilenet_v2 -w mobilenet.pth --data birds/ -l features.14 -t goldfinch
    """
    from ..concepts import ConceptSettings, discover

    if not data.exists():
        raise CnnlensError(f"--data {data}: no such file or folder")
    if not crops and not visualize:
        raise CnnlensError("--no-crops draws the feature visualizations instead of the crops: drop --no-visualize")
    if output is None and not as_json:
        output = Path(f"{model_stem(model)}-{safe_name(layer)}-concepts.png")
    check_outputs([("-o/--output", output, RESULT_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    settings = ConceptSettings(rows=rows, batch_size=batch_size, workers=workers, size=size, importance=importance, visualize=visualize, steps=steps)
    result = discover(net, data, layer=layer, n=n, k=top, limit=limit, target=_class_index(target, net), seed=seed, settings=settings)
    figure = {"crops": False} if not crops and output is not None and output.suffix.lower() != ".json" else None
    finish(result, as_json=as_json, output=output, overwrite=overwrite, figure=figure)


@click.command("tcav")
@model_argument
@click.option("--concept", "concept", required=True, help="folder of the concept's images, or a built-in concept: striped, gratings")
@click.option("--random", "random_dir", type=click.Path(path_type=Path), required=True, help="folder of unrelated images, split into 2 x --random-sets sets (negatives and random concepts)")
@click.option("--layer", "-l", required=True, help="the layer whose activations hold the concept")
@click.option("--target", "-t", required=True, help="the class: index, name or logits:CLASS")
@click.option("--images", type=click.Path(path_type=Path), default=None, help="images of the class for the directional derivatives  [default: the --random images]")
@click.option("--random-sets", type=click.IntRange(10, 1000), default=10, show_default=True, help="random sets the t-test compares over (Kim et al.: >= 10)")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True), default=0.05, show_default=True, help="significance level of the two-sided t-test")
@click.option("--size", type=click.IntRange(min=1, max=8192), default=None, help="resize and centre-crop images to this side (default: the weights' crop)")
@weights_option
@seed_option
@device_option
@json_option
@output_option("figure (.png, .pdf, .svg ...) or .json; default MODEL-CONCEPT-tcav-LAYER.png unless --json")
def tcav_command(
    model: str, concept: str, random_dir: Path, layer: str, target: str, images: Path | None, random_sets: int, alpha: float, size: int | None,
    weights: str | None, seed: int, device: str, as_json: bool, output: Path | None, overwrite: bool,
) -> None:
    """Test a concept for a class with CAVs (TCAV, Kim et al. 2018).

    A linear classifier separates the layer's activations of the concept's images from those of a
    random set; its normal is the concept activation vector (CAV). The TCAV score is the share of
    class images whose class logit rises along the CAV. Repeated against --random-sets random sets,
    and as many random concepts (more random sets) are scored the same way: a two-sided t-test says
    whether the concept's mean score lies outside the random concepts' scores (p < --alpha). Prints
    the score, the random concepts', the p-value and the verdict; the figure shows both.

    \b
    Examples:
      cnnlens tcav squeezenet1_0 -w squeezenet.pth --concept striped --random imagenet_samples/ -l features.9 -t zebra
      cnnlens tcav resnet50 --concept dotted/ --random random/ -l layer3 -t 'leopard' --images leopards/ --json
    """
    from ..concepts import STIMULI, tcav

    concept_path = Path(concept)
    if concept not in STIMULI and not concept_path.exists():
        raise CnnlensError(f"--concept {concept}: no such folder, and not a built-in concept ({', '.join(STIMULI)})")
    for option, path in (("--random", random_dir), ("--images", images)):
        if path is not None and not path.exists():
            raise CnnlensError(f"{option} {path}: no such file or folder")
    if output is None and not as_json:
        output = Path(f"{model_stem(model)}-{safe_name(concept_path.name or concept)}-tcav-{safe_name(layer)}.png")
    check_outputs([("-o/--output", output, RESULT_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    index = _class_index(target, net)
    if index is None:
        raise CnnlensError("--target: give a class (index, name or logits:CLASS), not top")
    result = tcav(net, concept if concept in STIMULI else concept_path, random_dir, layer=layer, target=index, images=images,
                  n_random=random_sets, size=size, alpha=alpha, seed=seed)  # fmt: skip
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
