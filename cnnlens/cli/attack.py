"""``cnnlens fgsm`` and ``cnnlens robustness``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from ..errors import CnnlensError
from ._options import WEIGHTS_HELP, class_index, device_option, output_option, parse_float, seed_option

MODEL_HELP = "MODEL: a torchvision name (mobilenet_v2), lenet5-mnist, or path/to/file.py:ClassName"


def _default_output(model: str, image: Path, suffix: str) -> Path:
    stem = Path(model.rpartition(":")[2] if ":" in model else model).stem or "model"
    return Path(f"{stem}-{image.stem}-{suffix}.png")


@click.command("fgsm")
@click.argument("model")
@click.argument("image", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--weights", "-w", default="DEFAULT", show_default=True, help=WEIGHTS_HELP)
@click.option("--eps", default="0.007", show_default=True, help="L-infinity budget in [0, 1] pixel units (0.007, 8/255)")
@click.option("--label", default=None, help="true class (index or name) to move away from; default: the model's prediction")
@click.option("--target", default=None, help="class (index or name) to reach: a targeted attack")
@click.option("--steps", type=click.IntRange(min=1), default=1, show_default=True, help="1 = FGSM; more = iterative FGSM (PGD with --random-start)")
@click.option("--step-size", default=None, help="per-step size for --steps > 1 (default 2.5 * eps / steps)")
@click.option("--random-start", is_flag=True, help="start iterative steps at a random point of the eps ball (PGD)")
@output_option("the figure (default: MODEL-IMAGE-fgsm.png)")
@click.option("--adversarial", "adv_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help="the adversarial image (default: beside the figure, *-adversarial.png)")
@click.option("--json", "as_json", is_flag=True, help="print the predictions as JSON")
@device_option
@seed_option
def fgsm_command(
    model: str, image: Path, weights: str, eps: str, label: str | None, target: str | None, steps: int,
    step_size: str | None, random_start: bool, output: Path | None, overwrite: bool, adv_path: Path | None,
    as_json: bool, device: str, seed: int,
) -> None:
    """Adversarial example for IMAGE: the panda figure (Goodfellow et al. 2015) and the attacked image.

    MODEL is a torchvision name, lenet5-mnist, or path/to/file.py:ClassName. The image is prepared
    like the model's weights expect (resize + centre crop); eps is in pixel units of [0, 1] and the
    normalization is applied inside the model; the loss is cross-entropy on the logits.

    \b
    Examples:
      cnnlens fgsm mobilenet_v2 photo.jpg --weights mobilenet_v2.pth
      cnnlens fgsm mobilenet_v2 photo.jpg --eps 2/255 --steps 10 --target 'goldfish' -o gold.png
      cnnlens fgsm lenet5-mnist digit.png --weights mnist_lenet5_clntrained.pt --eps 0.3 --json
    """
    import torch

    from ..attacks import attack, check_eps, load_attack_model, plot_attack
    from ..images import check_writable, load_image, save_image
    from ._options import resolve_device

    eps_value = check_eps(parse_float(eps, "--eps"), "--eps")
    alpha = None if step_size is None else check_eps(parse_float(step_size, "--step-size"), "--step-size")
    picture = load_image(image)
    figure_path = output or _default_output(model, image, "fgsm")
    adv_file = adv_path or figure_path.with_name(figure_path.stem + "-adversarial.png")
    check_writable(figure_path, overwrite)
    check_writable(adv_file, overwrite)
    am = load_attack_model(model, None if weights.lower() in ("none", "random") else weights, device=resolve_device(device))
    x = am.image(picture).unsqueeze(0)
    with torch.no_grad():
        num_classes = am.num_classes or int(am.model(x.to(next(am.model.parameters()).device)).shape[1])
    y = None if label is None else class_index(label, am.categories, num_classes, "label")
    t = None if target is None else class_index(target, am.categories, num_classes, "target")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    result = attack(am.model, x, y, eps=eps_value, target=t, steps=steps, step_size=alpha,
                    random_start=random_start, generator=generator, categories=am.categories)
    fig = plot_attack(result)
    fig.savefig(check_writable(figure_path, overwrite), dpi=100)
    adv_image = result.adversarial[0].cpu()
    save_image(adv_image.expand(3, -1, -1) if adv_image.shape[0] == 1 else adv_image, adv_file, overwrite=overwrite)  # core save_image needs RGB
    row = result.to_dict()[0]
    # the PNG holds 8-bit pixels: say whether the rounded image still fools the model
    from ..attacks import predict, prepare_image

    saved = prepare_image(load_image(adv_file), tuple(result.adversarial.shape[1:])).unsqueeze(0)  # already the model's size
    saved_class, saved_prob = predict(am.model, saved)
    row.update(saved_class=int(saved_class[0]), saved_category=result.category(int(saved_class[0])), saved_probability=float(saved_prob[0]))
    if as_json:
        click.echo(json.dumps({"model": model, "image": str(image), **row, "figure": str(figure_path), "adversarial_image": str(adv_file)}, indent=2))
    else:
        kind = "FGSM" if steps == 1 else ("PGD" if random_start else "iterative FGSM") + f" ({steps} steps)"
        click.echo(
            f"{kind} eps={eps}: {row['clean_category']} ({100 * row['clean_probability']:.1f} %) -> "
            f"{row['adversarial_category']} ({100 * row['adversarial_probability']:.1f} %)"
            + (f", target {row['target_category']} {'reached' if row['success'] else 'not reached'}" if t is not None else
               f", {'flipped' if row['success'] else 'not flipped'}")
        )
        click.echo(f"the saved 8-bit {adv_file.name} is classified {row['saved_category']} ({100 * row['saved_probability']:.1f} %)")
    click.echo(f"wrote {figure_path} and {adv_file}", err=True)


def _parse_eps_list(text: str) -> list[float]:
    from ..attacks import check_eps

    parts = [p for p in text.replace(" ", "").split(",") if p]
    if not parts:
        raise CnnlensError(f"bad --eps {text!r}: expected a comma list such as 0,1/255,2/255")
    return [check_eps(parse_float(p, "--eps"), "--eps") for p in parts]


def _table(results: list[Any]) -> str:
    from ..attacks import format_eps

    lines = []
    for res in results:
        lines.append(f"{res.label}: {res.n} images, clean accuracy {100 * res.clean_accuracy:.1f} % ({res.n_correct} correct)")
        head = ["eps".ljust(8)] + [f"{a.upper()} all".rjust(10) + f"{a.upper()} correct".rjust(14) for a in res.curves]
        lines.append("".join(head))
        for i, e in enumerate(res.eps):
            cells = [format_eps(e).ljust(8)]
            for c in res.curves.values():
                cells.append(f"{100 * c.accuracy[i]:9.1f}%" + f"{100 * c.accuracy_on_correct[i]:13.1f}%")
            lines.append("".join(cells))
    return "\n".join(lines)


@click.command("robustness")
@click.argument("model")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path, file_okay=False), help="labelled images: class subfolders, a flat folder + labels CSV, or MNIST IDX files")
@click.option("--labels", "labels_csv", type=click.Path(path_type=Path, dir_okay=False), default=None, help="CSV of filename and class index for a flat --data folder (default DIR/labels.csv)")
@click.option("--weights", "-w", multiple=True, help=WEIGHTS_HELP + "; repeat to compare several weights on one plot [default: DEFAULT]")
@click.option("--eps", default="0,1/255,2/255,4/255,8/255", show_default=True, help="comma list of eps in [0, 1] pixel units")
@click.option("--attack", "attacks", multiple=True, help="fgsm, ifgsm (iterative FGSM/BIM) or pgd; repeat or comma-separate [default: fgsm]")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True, help="steps of ifgsm/pgd")
@click.option("--step-size", default=None, help="step of ifgsm/pgd (default 2.5 * eps / steps)")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="only the first N images")
@click.option("--batch-size", "-b", type=click.IntRange(min=1), default=64, show_default=True)
@output_option("the accuracy-against-eps plot (PNG/PDF/SVG)")
@click.option("--json", "as_json", is_flag=True, help="print the curves as JSON")
@device_option
@seed_option
def robustness_command(
    model: str, data_dir: Path, labels_csv: Path | None, weights: tuple[str, ...], eps: str, attacks: tuple[str, ...],
    steps: int, step_size: str | None, limit: int | None, batch_size: int, output: Path | None, overwrite: bool,
    as_json: bool, device: str, seed: int,
) -> None:
    """Accuracy against eps over a labelled folder: FGSM, iterative FGSM and PGD on one plot.

    Accuracy is reported on all images and on the images the model classified correctly
    before the attack. Labels are the true labels. eps is in pixel units of [0, 1].

    \b
    Examples:
      cnnlens robustness mobilenet_v2 --weights mnv2.pth --data imagenet_samples --limit 200 -o curve.png
      cnnlens robustness lenet5-mnist --data mnist/ --weights cln.pt --weights adv.pt \\
          --eps 0,0.1,0.2,0.3 --attack fgsm --attack pgd --limit 1000 -o mnist.png
    """
    import math

    import torch

    from ..attacks import batches, labelled_folder, load_attack_model, plot_robustness, robustness
    from ..images import check_writable
    from ._options import resolve_device

    grid = _parse_eps_list(eps)
    names = [a for spec in (attacks or ("fgsm",)) for a in spec.split(",") if a.strip()]
    alpha = None if step_size is None else parse_float(step_size, "--step-size")
    if output is not None:
        check_writable(output, overwrite)
    dev = resolve_device(device)
    results = []
    for w in weights or ("DEFAULT",):
        am = load_attack_model(model, None if w.lower() in ("none", "random") else w, device=dev)
        data = labelled_folder(data_dir, labels=labels_csv, limit=limit, transform=am.image)
        generator = torch.Generator().manual_seed(seed)
        label = model if len(weights) < 2 else Path(w).stem  # several weights: name each curve by its file
        res = robustness(am.model, batches(data, batch_size), eps=grid, attacks=names, steps=steps, step_size=alpha,
                         generator=generator, progress=True, total=math.ceil(len(data) / batch_size), label=label)
        res.settings.update({"model": model, "weights": w, "data": str(data_dir), "seed": seed})
        results.append(res)
    if output is not None:
        fig = plot_robustness(results, title=f"Accuracy against ε on {data_dir.name or data_dir}")
        fig.savefig(check_writable(output, overwrite), dpi=100)
        click.echo(f"wrote {output}", err=True)
    if as_json:
        payload = [r.to_dict() for r in results]
        click.echo(json.dumps(payload[0] if len(payload) == 1 else payload, indent=2))
    else:
        click.echo(_table(results))
