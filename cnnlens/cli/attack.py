"""``cnnlens fgsm`` and ``cnnlens robustness``."""

from __future__ import annotations

from pathlib import Path

import click

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
    output_option,
    parse_float,
    parse_floats,
    safe_name,
    seed_option,
    weights_option,
)
from .sharding import finish_run, forget, plan_run, run_options


def _class(text: str | None) -> int | str | None:
    """``--label``/``--target``: an index (``388``) or a class name (``giant panda``)."""
    if text is None:
        return None
    stripped = text.strip()
    return int(stripped) if stripped.lstrip("-").isdigit() else stripped


@click.command("fgsm")
@model_argument
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@weights_option
@click.option("--eps", default="0.007", show_default=True, help="L-infinity budget in [0, 1] pixel units (0.007, 8/255)")
@click.option("--label", default=None, help="true class (index or name) to move away from; default: the model's prediction")
@click.option("--target", default=None, help="class (index or name) to reach: a targeted attack")
@click.option("--steps", type=int, default=1, show_default=True, help="1 = FGSM; more = iterative FGSM (PGD with --random-start)")
@click.option("--step-size", default=None, help="per-step size for --steps > 1, in (0, 1] (default 2.5 * eps / steps)")
@click.option("--random-start", is_flag=True, help="start iterative steps at a random point of the eps ball (PGD), drawn with --seed")
@output_option("the figure, or .json for the numbers (default: MODEL-IMAGE-fgsm.png unless --json)")
@click.option(
    "--image", "image_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="the adversarial image as a lossless 8-bit file (.png, .bmp, .tif; default: beside the figure, *-adversarial.png)",
)
@json_option
@device_option
@seed_option
def fgsm_command(
    model: str, image: Path, weights: str | None, eps: str, label: str | None, target: str | None, steps: int,
    step_size: str | None, random_start: bool, output: Path | None, overwrite: bool, image_path: Path | None,
    as_json: bool, device: str, seed: int,
) -> None:
    """Adversarial example for IMAGE: the panda figure (Goodfellow et al. 2015) and the attacked image.

    The image is prepared as the model's weights expect (resize, centre crop, grey for a grey model);
    eps is in pixel units of [0, 1] and the model's normalization is applied inside; the loss is
    cross-entropy on the logits. The output also gives the class of the adversarial image rounded
    to 8 bits, as the saved file holds it. --json prints the numbers.

    \b
    Examples:
      cnnlens fgsm mobilenet_v2 photo.jpg -w mobilenet_v2.pth
      cnnlens fgsm mobilenet_v2 photo.jpg --eps 2/255 --steps 10 --random-start --target goldfish -o gold.png
      cnnlens fgsm mnist-cnn digit.png -w mnist_lenet5_clntrained.pt --eps 0.3 --json
      cnnlens fgsm resnet18 photo.jpg -w none --seed 1 -o random-resnet.png
    """

    from ..attacks import ADVERSARIAL_SUFFIXES, attack
    from ..checks import check_int
    from ._options import open_model

    eps_value = parse_float(eps, "eps", low=0.0, high=1.0)
    alpha = parse_float(step_size, "step_size", low=0.0, low_open=True, high=1.0)
    check_int(steps, "steps", low=1, high=100_000)
    if output is None and not as_json:
        output = Path(f"{model_stem(model)}-{safe_name(image.stem)}-fgsm.png")
    if image_path is None and output is not None:
        image_path = output.with_name(output.stem + "-adversarial.png")
    check_outputs([("--output", output, RESULT_SUFFIXES), ("--image", image_path, ADVERSARIAL_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    result = attack(
        net, image, _class(label), eps=eps_value, target=_class(target), steps=steps, step_size=alpha,
        random_start=random_start, seed=seed,
    )
    finish(result, as_json=as_json, output=output, overwrite=overwrite, image=image_path)


@click.command("robustness")
@model_argument
@click.option(
    "--data", type=click.Path(path_type=Path, file_okay=False), required=True,
    help="labelled images: class subfolders, a flat folder + labels CSV, or MNIST IDX files",
)
@click.option(
    "--labels", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="UTF-8 CSV of filename and class index for a flat --data folder (default DIR/labels.csv); "
    "the images present and labelled are evaluated",
)
@click.option(
    "--weights", "-w", multiple=True, metavar="WEIGHTS",
    help=WEIGHTS_HELP + "; repeat to compare several weights on one plot  [default: DEFAULT]",
)
@click.option("--eps", default="0,1/255,2/255,4/255,8/255", show_default=True, help="comma list of eps in [0, 1] pixel units")
@click.option("--attack", "attacks", multiple=True, help="fgsm, ifgsm (iterative FGSM/BIM) or pgd; repeat or comma-separate  [default: fgsm]")
@click.option("--steps", type=int, default=10, show_default=True, help="steps of ifgsm/pgd")
@click.option("--step-size", default=None, help="step of ifgsm/pgd, in (0, 1] (default 2.5 * eps / steps)")
@click.option("--limit", type=int, default=None, help="only the first N images")
@batch_size_option(64)
@run_options
@output_option("the accuracy-against-eps plot (PNG/PDF/SVG), or .json for the numbers (with --shard: the share's partial state)")
@json_option
@device_option
@seed_option
def robustness_command(
    model: str, data: Path, labels: Path | None, weights: tuple[str, ...], eps: str, attacks: tuple[str, ...],
    steps: int, step_size: str | None, limit: int | None, batch_size: int, shard: str | None, checkpoint: Path | None,
    checkpoint_every: float, output: Path | None, overwrite: bool, as_json: bool, device: str, seed: int,
) -> None:
    """Accuracy against eps over a labelled folder: FGSM, iterative FGSM and PGD on one plot.

    Accuracy is reported on all images and on the images the model classified correctly before
    the attack; labels are the true labels; eps is in pixel units of [0, 1]. With a labels CSV the
    images present and labelled are evaluated, and stderr and the JSON say how many labelled files
    were absent and how many images had no label. Prints the accuracy table (--json: the numbers).
    PGD's random start of each image is drawn from --seed and the image's place in the list.

    Large folders: run it under `torchrun --nproc-per-node N -m cnnlens robustness ...` (every
    process evaluates its share; the counts are summed, the result is the same), or as a job
    array with --shard I/N -o part-I.json and `cnnlens merge part-*.json`. A run keeps its
    partial state beside -o and continues from it when started again.

    \b
    Examples:
      cnnlens robustness mobilenet_v2 -w mobilenet_v2.pth --data imagenet_samples --limit 200 -o curve.png
      cnnlens robustness mnist-cnn --data mnist/ -w clean.pt -w adversarial.pt \\
          --eps 0,0.1,0.2,0.3 --attack fgsm --attack pgd --limit 1000 -o mnist.png
      cnnlens robustness resnet18 -w none --seed 0 --data photos/ --eps 0,8/255 --json
      torchrun --nproc-per-node 2 -m cnnlens robustness mnist-cnn -w clean.pt --data mnist/ --attack pgd -o pgd.png
      cnnlens robustness mnist-cnn -w clean.pt --data mnist/ --attack pgd --shard 0/4 -o part-0.json
    """

    from ..attacks import check_attacks, compare_robustness, robustness
    from ..checks import check_int
    from ..distributed import Sharding
    from ..folders import labelled_folder
    from ._options import open_model

    grid = parse_floats(eps, "eps", low=0.0, high=1.0)
    names = check_attacks([a for spec in (attacks or ("fgsm",)) for a in spec.split(",") if a.strip()], "attacks")
    alpha = parse_float(step_size, "step_size", low=0.0, low_open=True, high=1.0)
    check_int(steps, "steps", low=1, high=100_000)
    if limit is not None:
        check_int(limit, "limit", low=1)
    parts, saving = plan_run(output=output, shard=shard, checkpoint=checkpoint, every=checkpoint_every, overwrite=overwrite, as_json=as_json)
    if parts is None:
        check_outputs([("--output", output, RESULT_SUFFIXES)], overwrite)
    source = data if labels is None else labelled_folder(data, labels=labels)  # a labels CSV kept outside the folder
    nets = [open_model(model, w, device=device, seed=seed) for w in (weights or (None,))]
    settings = dict(
        eps=grid, attacks=names, steps=steps, step_size=alpha, limit=limit, batch_size=batch_size,
        seed=seed, progress=True, sharding=Sharding(shard=parts, checkpoint=saving),
    )
    result = robustness(nets[0], source, **settings) if len(nets) == 1 else compare_robustness(nets, source, **settings)
    if finish_run(result, shard=parts, checkpoint=saving):
        return
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
    forget(saving)
