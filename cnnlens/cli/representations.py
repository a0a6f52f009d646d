"""``cnnlens similarity``, ``cnnlens probe`` and ``cnnlens embed``: representations by depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..checks import SEED_MAX
from ..errors import CnnlensError
from ..outputs import RESULT_SUFFIXES
from ._options import (
    WEIGHTS_HELP,
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
    seed_option,
    weights_option,
)
from .sharding import finish_run, forget, plan_run, run_options

LAYERS_HELP = "a layer name or logits (the output); repeat or comma-separate  [default: ten stages spread over the depth]"


def layers_option(*names: str, dest: str = "layers", help: str = LAYERS_HELP) -> Any:
    return click.option(*(names or ("--layer", "-l")), dest, multiple=True, help=help)


def baseline_option(f: Any) -> Any:
    return click.option(
        "--baseline", type=click.Choice(["random", "none"]), default="none", is_flag=False, flag_value="random", show_default=True,
        help="random: also the same architecture at random initialisation (seeded by --seed); --baseline alone means random",
    )(f)


def _layers(values: tuple[str, ...]) -> list[str] | None:
    if any(not [n for n in v.split(",") if n.strip()] for v in values):
        raise CnnlensError("layer is empty; give a layer name (`cnnlens layers MODEL`)", param="layers")
    return [n.strip() for v in values for n in v.split(",") if n.strip()] or None


def _check_data(data: Path) -> None:
    if not Path(data).expanduser().exists():
        raise CnnlensError(f"data: no such folder or file {data}", param="data")


@click.command("similarity")
@model_argument
@click.option("--data", type=click.Path(path_type=Path), required=True, help="folder of images (flat or class subfolders) or an image file")
@layers_option()
@weights_option
@click.option("--model2", "-m2", "model2", default=None, help="the second model (a name as MODEL)  [default: MODEL when -w2 is given]")
@click.option("--weights2", "-w2", "weights2", default=None, metavar="WEIGHTS", help="the second model's weights: " + WEIGHTS_HELP)
@layers_option("--layer2", "-l2", dest="layers2", help="a layer of the second model; repeat or comma-separate  [default: its ten stages]")
@baseline_option
@click.option("--kernel", type=click.Choice(["linear", "rbf"]), default="linear", show_default=True, help="CKA's kernel")
@click.option("--threshold", default="1.0", show_default=True, help="RBF bandwidth as a fraction of the median distance")
@click.option("--debiased", is_flag=True, help="the unbiased HSIC estimator (recommended when features outnumber images)")
@click.option("--limit", type=int, default=None, help="only N images, spread evenly over the sorted list")
@batch_size_option(64)
@run_options
@output_option("the CKA heatmap (.png, .pdf, .svg ...) or .json; default MODEL-similarity.png unless --json (with --shard: the share's partial state)")
@json_option
@device_option
@seed_option
def similarity_command(
    model: str, data: Path, layers: tuple[str, ...], weights: str | None, model2: str | None, weights2: str | None,
    layers2: tuple[str, ...], baseline: str, kernel: str, threshold: str, debiased: bool, limit: int | None, batch_size: int,
    shard: str | None, checkpoint: Path | None, checkpoint_every: float, output: Path | None, overwrite: bool, as_json: bool,
    device: str, seed: int,
) -> None:
    """CKA similarity of the layers of MODEL (Kornblith et al. 2019), against each other or another model.

    Minibatch CKA (Nguyen et al. 2021): the HSIC of every pair of layers is estimated in each batch
    of --batch-size images and averaged, so memory does not grow with the folder. Each layer's
    features are all its values (channels x positions). Prints the matrix (--json: the numbers)
    and draws the heatmap (-o). --baseline random is MODEL at random initialisation seeded by
    --seed; a random second model (-w2 none, or --baseline random of a MODEL that is itself a
    random initialisation) is seeded by --seed + 1, so that it differs from a random MODEL (-w none)
    seeded by --seed.

    \b
    One flag each:
      the layers of one model against each other     cnnlens similarity MODEL --data DIR
      trained against random initialisation          ... --baseline random
      two models                                     ... -m2 OTHER [-w2 WEIGHTS]
      two weights files of one architecture          ... -w A.pth -w2 B.pth

    Large folders: under `torchrun --nproc-per-node N -m cnnlens similarity ...`, or --shard I/N -o
    part-I.json and `cnnlens merge part-*.json`: the sums are exact, the result is the same.

    \b
    Examples:
      cnnlens similarity squeezenet1_0 -w squeezenet.pth --data imagenet_samples/ --limit 500
      cnnlens similarity squeezenet1_0 -w squeezenet.pth --data photos/ --baseline random --debiased -o cka.png
      cnnlens similarity resnet18 -w none --data photos/ -m2 mobilenet_v2 -w2 none -l layer1,layer4 --json
      cnnlens similarity resnet18 -w none --seed 1 --data photos/ -w2 none --kernel rbf --threshold 0.5
    """
    from ..distributed import Sharding
    from ..registry import model_info, random_init_like
    from ..representations import similarity

    value = parse_float(threshold, "threshold", low=0.0, low_open=True)
    names_a, names_b = _layers(layers), _layers(layers2)
    if baseline == "random" and (model2 is not None or weights2 is not None):
        raise CnnlensError("--baseline random is the second model: drop -m2/-w2, or drop --baseline")
    if limit is not None and limit < 1:
        raise CnnlensError(f"limit must be at least 1, got {limit}", param="limit")
    _check_data(data)
    parts, saving = plan_run(output=output, shard=shard, checkpoint=checkpoint, every=checkpoint_every, overwrite=overwrite, as_json=as_json)
    if parts is None:
        if output is None and not as_json:
            output = Path(f"{model_stem(model)}-similarity.png")
        check_outputs([("--output", output, RESULT_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    other, notes = None, []
    again = (seed + 1) % (SEED_MAX + 1)  # a random second model is seeded by --seed + 1: two random inits differ
    if baseline == "random":
        if model_info(net).random_init:
            notes.append(f"MODEL is itself a random initialisation (seed {seed}): the baseline is another one, seed {again}")
        other = random_init_like(net, again if model_info(net).random_init else seed)
    elif model2 is not None or weights2 is not None:
        other = open_model(model2 or model, weights2, device=device, seed=again)
    result = similarity(
        net, data, layers_a=names_a, model_b=other, layers_b=names_b if names_b is not None else (names_a if other is not None and model2 is None else None),
        kernel=kernel, threshold=value, debiased=debiased, batch_size=batch_size, limit=limit, progress=True,
        sharding=Sharding(shard=parts, checkpoint=saving),
    )  # fmt: skip
    if finish_run(result, shard=parts, checkpoint=saving):
        return
    result.notes.extend(notes)  # type: ignore[union-attr]
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
    forget(saving)


@click.command("probe")
@model_argument
@click.option("--data", type=click.Path(path_type=Path, file_okay=False), required=True,
              help="labelled images: class subfolders, a flat folder + labels CSV, or MNIST IDX files")  # fmt: skip
@click.option("--labels", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="UTF-8 CSV of filename and class index for a flat --data folder (default DIR/labels.csv)")  # fmt: skip
@layers_option()
@weights_option
@baseline_option
@click.option("--folds", type=click.IntRange(2, 20), default=5, show_default=True, help="folds of the stratified cross-validation")
@click.option("--weight-decay", default="1e-3", show_default=True, help="L2 penalty of the logistic regression")
@click.option("--limit", type=int, default=None, help="only N images, spread evenly over the sorted list")
@batch_size_option(64)
@output_option("accuracy-by-depth figure (.png, .pdf, .svg ...) or .json; default MODEL-probe.png unless --json")
@json_option
@device_option
@seed_option
def probe_command(
    model: str, data: Path, labels: Path | None, layers: tuple[str, ...], weights: str | None, baseline: str, folds: int,
    weight_decay: str, limit: int | None, batch_size: int, output: Path | None, overwrite: bool, as_json: bool, device: str, seed: int,
) -> None:
    """Linear probes (Alain & Bengio 2016): how well a linear classifier reads the labels from each layer.

    Each layer's channels are averaged over positions, standardized, and a softmax regression is
    fitted by L-BFGS; the accuracy is held out by --folds-fold stratified cross-validation (folds
    drawn from --seed), with its binomial standard error. Prints the accuracy per layer against
    chance (the most frequent class); --baseline random adds the random initialisation.

    \b
    Examples:
      cnnlens probe squeezenet1_0 -w squeezenet.pth --data imagenet_samples/ --labels animals.csv --baseline random
      cnnlens probe resnet18 -w none --data cifar10_test/ --limit 1000 -l layer1,layer2,layer3,layer4 --json
      cnnlens probe lenet5 -w none --data mnist/ --limit 2000 -o lenet5-probe.png
    """
    from ..representations import probe

    decay = parse_float(weight_decay, "weight_decay", low=0.0)
    if limit is not None and limit < 1:
        raise CnnlensError(f"limit must be at least 1, got {limit}", param="limit")
    if output is None and not as_json:
        output = Path(f"{model_stem(model)}-probe.png")
    check_outputs([("--output", output, RESULT_SUFFIXES)], overwrite)
    from ..folders import labelled_folder

    dataset = labelled_folder(data, labels=labels, limit=limit)  # the data's errors before the model loads
    net = open_model(model, weights, device=device, seed=seed)
    result = probe(net, dataset, layers=_layers(layers), baseline=baseline == "random", folds=folds, weight_decay=decay,  # type: ignore[arg-type]
                   batch_size=batch_size, seed=seed, progress=True)  # fmt: skip
    finish(result, as_json=as_json, output=output, overwrite=overwrite)


@click.command("embed")
@model_argument
@click.option("--data", type=click.Path(path_type=Path), required=True,
              help="images: a folder (class subfolders, a labels CSV or MNIST IDX colour the points by class) or an image file")  # fmt: skip
@click.option("--labels", type=click.Path(path_type=Path, dir_okay=False), default=None, help="UTF-8 CSV of filename and class index for a flat --data folder")
@layers_option()
@weights_option
@click.option("--method", type=click.Choice(["pca", "tsne"]), default="pca", show_default=True, help="pca, or tsne (needs scikit-learn: pip install 'cnnlens[embed]')")
@click.option("--limit", type=int, default=None, help="only N images, spread evenly over the sorted list")
@batch_size_option(64)
@output_option("the maps (.png, .pdf, .svg ...) or .json; default MODEL-embed.png unless --json")
@json_option
@device_option
@seed_option
def embed_command(
    model: str, data: Path, labels: Path | None, layers: tuple[str, ...], weights: str | None, method: str, limit: int | None,
    batch_size: int, output: Path | None, overwrite: bool, as_json: bool, device: str, seed: int,
) -> None:
    """A 2-D map of the images in each layer's feature space (PCA or t-SNE), coloured by class.

    Each layer's channels are averaged over positions; PCA shows the first two principal
    components and the share of variance each explains; t-SNE starts from the PCA map, seeded by
    --seed. One panel per layer, shallow to deep.

    \b
    Examples:
      cnnlens embed squeezenet1_0 -w squeezenet.pth --data imagenet_samples/ --labels animals.csv -o embed.png
      cnnlens embed lenet5 -w none --data mnist/ --limit 1000 --method tsne
      cnnlens embed resnet18 -w none --data photos/ -l layer2,layer4 --json
    """
    from ..representations import embed

    if limit is not None and limit < 1:
        raise CnnlensError(f"limit must be at least 1, got {limit}", param="limit")
    _check_data(data)
    if output is None and not as_json:
        output = Path(f"{model_stem(model)}-embed.png")
    check_outputs([("--output", output, RESULT_SUFFIXES)], overwrite)
    if method == "tsne":
        from ..representations.embed import tsne_class

        tsne_class()
    net = open_model(model, weights, device=device, seed=seed)
    result = embed(net, data, layers=_layers(layers), labels=labels, method=method, batch_size=batch_size, limit=limit, seed=seed, progress=True)
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
