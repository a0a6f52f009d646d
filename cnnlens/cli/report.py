"""``cnnlens models``, ``cnnlens layers`` and ``cnnlens report``: the registry and the per-layer report."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..errors import CnnlensError, did_you_mean
from ._options import check_outputs, finish, json_option, model_argument, output_option, parse_input_size

# --format -> the Report method that writes it, and the file suffix that means the same
FORMATS = {"table": ("to_text", ".txt"), "csv": ("to_csv", ".csv"), "markdown": ("to_markdown", ".md")}
INPUT_SIZE_HELP = "224, 227x227 (H x W), 3x227x227 or 1x3x299x299 (default: the model's input size)"


def input_size_argument(text: str | None) -> tuple[int, ...] | None:
    """``--input-size`` as written (1 to 4 numbers): :func:`cnnlens.report` fills in batch and channels."""
    if text is None:
        return None
    parts = text.strip().lower().replace("×", "x").split("x")
    return parse_input_size(text)[-len(parts) :]


def name_pattern(pattern: str | None) -> str | None:
    """A shell wildcard pattern; a plain word matches anywhere in the name (``resnet`` = ``*resnet*``)."""
    if pattern is None or any(ch in pattern for ch in "*?["):
        return pattern
    return f"*{pattern}*"


@click.command("models")
@click.argument("pattern", required=False)
@click.option("--source", default=None, help="only this source: torchvision, teaching, mnist or timm")
@json_option
def models_command(pattern: str | None, source: str | None, as_json: bool) -> None:
    """List the model names that every command takes, with their source, input size and weights.

    Sources: torchvision's classification models; classic networks as their papers describe them
    (alexnet-paper, lenet5, mlp-mnist, three-3x3, one-7x7); mnist-cnn, the MNIST CNN of advertorch's
    robustness tutorial; and timm/NAME when timm is installed (pip install 'cnnlens[timm]').
    PATTERN is a shell wildcard (resnet*); a plain word matches anywhere in the name. Your own model
    is path/to/file.py:ClassName in every command (it is not listed).

    \b
    Examples:
      cnnlens models                      every name
      cnnlens models resnet               names containing "resnet"
      cnnlens models --source teaching    the classic networks
      cnnlens models 'timm/vit_*' --json  name, source, input size, pretrained, kind of each
    """
    from ..registry import get_entry, list_models

    names = list_models(name_pattern(pattern), source=source)
    if not names:
        where = f" among {source}" if source else ""
        raise CnnlensError(f"no model name matches {pattern!r}{where}{did_you_mean(pattern or '', list_models(source=source))}")
    entries = [get_entry(n) for n in names]
    if as_json:
        click.echo(json.dumps([e.to_dict() for e in entries], indent=2))
        return
    head = ("name", "source", "input", "min size", "pretrained", "description")
    rows = [
        (
            e.name,
            e.source,
            "x".join(map(str, e.input_size)),
            "x".join(map(str, e.preprocessing.min_size)),
            "yes" if e.pretrained else "no",
            e.description,
        )
        for e in entries
    ]
    widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head) - 1)]
    for r in (head, *rows):
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


@click.command("layers")
@model_argument
@click.option("--input-size", default=None, help=INPUT_SIZE_HELP)
@click.option("--depth", type=int, default=None, help="only layers down to this nesting depth (features is 1, features.0 is 2)")
@json_option
def layers_command(model: str, input_size: str | None, depth: int | None, as_json: bool) -> None:
    """List the layer names of MODEL (for --layer and --unit), with their types and output shapes.

    MODEL is any name of `cnnlens models`, timm/NAME or path/to/file.py:ClassName. Computed on the
    meta device: no weights are loaded or downloaded.

    \b
    Examples:
      cnnlens layers resnet18
      cnnlens layers vgg16 --depth 2
      cnnlens layers lenet5 --json
    """
    from ..reports import report

    result = report(model, input_size_argument(input_size), depth=depth)
    if as_json:
        click.echo(json.dumps(result.outline(), indent=2))
        return
    rows = result.layers
    if not rows:
        raise CnnlensError(f"{result.model} has no submodules to list", param="model")
    width = max(len(r.name) for r in rows)
    twidth = max(len(r.type) for r in rows)
    for r in rows:
        shape = " x ".join(map(str, r.output_shape[1:])) if r.output_shape else "(not run)"
        click.echo(f"{r.name.ljust(width)}  {r.type.ljust(twidth)}  {shape}")


@click.command("report")
@model_argument
@click.option("--input-size", default=None, help=INPUT_SIZE_HELP)
@click.option("--depth", type=int, default=None, help="rows down to this nesting depth (default: all)")
@click.option("--format", "fmt", default=None, metavar="table|csv|markdown", help="what stdout shows  [default: table]")
@click.option("--optimizer", default="adam", show_default=True, help="optimizer state in the training-memory estimate: adam, adamw, sgd, sgd-momentum, rmsprop")
@json_option
@output_option("write the report to this file, its format from the suffix: .json .csv .md .txt, or a figure (.png .pdf .svg ...)")
def report_command(
    model: str,
    input_size: str | None,
    depth: int | None,
    fmt: str | None,
    optimizer: str,
    as_json: bool,
    output: Path | None,
    overwrite: bool,
) -> None:
    """Per-layer output shape, parameters, MACs/FLOPs, memory and receptive field of MODEL.

    Nothing is downloaded and no real tensor is made: the model is built with its weights on
    PyTorch's meta device, so even vit_h_14 reports in seconds. MODEL is any name of
    `cnnlens models`, timm/NAME or path/to/file.py:ClassName. Without -o the table (or --format)
    goes to stdout; -o writes the file instead; --json prints the numbers as JSON.

    \b
    Examples:
      cnnlens report vgg16
      cnnlens report resnet50 --depth 2
      cnnlens report inception_v3 --json > inception.json
      cnnlens report alexnet-paper --format markdown
      cnnlens report lenet5 -o lenet5.csv
      cnnlens report resnet18 -o resnet18.png      memory, MACs and receptive field per layer
    """
    from ..reports import REPORT_SUFFIXES, report

    if fmt is not None:
        if fmt not in FORMATS:
            hint = "; JSON is --json" if fmt.lower() == "json" else ""
            raise CnnlensError(f"--format {fmt!r} unknown{did_you_mean(fmt, FORMATS)}; one of {', '.join(FORMATS)}{hint}")
        if as_json:
            raise CnnlensError(f"--format {fmt} and --json both choose what stdout shows; give one")
        if output is not None and output.suffix.lower() != FORMATS[fmt][1]:
            raise CnnlensError(
                f"--format {fmt} and -o {output} disagree: the file's format comes from its suffix ({FORMATS[fmt][1]} for {fmt})"
            )
    check_outputs([("--output", output, REPORT_SUFFIXES)], overwrite)
    result = report(model, input_size_argument(input_size), depth=depth, optimizer=optimizer)
    text = "" if output is not None else getattr(result, FORMATS[fmt or "table"][0])().rstrip("\n")
    finish(result, as_json=as_json, output=output, overwrite=overwrite, text=text)

