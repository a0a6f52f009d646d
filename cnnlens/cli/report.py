"""``cnnlens models``, ``cnnlens layers`` and ``cnnlens report``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._options import parse_input_size, output_option


def _write(text: str, output: Path | None, overwrite: bool) -> None:
    if output is None:
        click.echo(text, nl=False)
        return
    from ..images import check_writable

    check_writable(output, overwrite).write_text(text)
    click.echo(f"wrote {output}", err=True)


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list")
def models_command(as_json: bool) -> None:
    """List the model names cnnlens knows: torchvision's classification models, then the lectures'
    small models (alexnet-paper, lenet5, mlp-mnist, three-3x3, one-7x7) that `report` and `layers` take.

    \b
    Example:
      cnnlens models | grep resnet
    """
    from ..models import model_names
    from ..teaching import TEACHING_MODELS

    names = model_names() + sorted(TEACHING_MODELS)
    click.echo(json.dumps(names) if as_json else "\n".join(names))


@click.command("layers")
@click.argument("model")
@click.option("--input-size", default=None, help="224, 3x227x227 or 1x3x299x299 (default: the model's crop size)")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="only layers down to this nesting depth")
@click.option("--json", "as_json", is_flag=True, help="print JSON: [{name, type, output_shape}]")
def layers_command(model: str, input_size: str | None, depth: int | None, as_json: bool) -> None:
    """List the layer names of MODEL (for --layer), with their types and output shapes.

    Computed on the meta device: no weights are loaded.

    \b
    Examples:
      cnnlens layers resnet18
      cnnlens layers vgg16 --depth 2
    """
    from ..summary import report

    size = parse_input_size(input_size) if input_size else None
    rows = report(model, size, depth=depth).layers
    if as_json:
        click.echo(json.dumps([{"name": r.name, "type": r.type, "output_shape": r.output_shape} for r in rows], indent=2))
        return
    width = max(len(r.name) for r in rows)
    twidth = max(len(r.type) for r in rows)
    for r in rows:
        shape = " x ".join(map(str, r.output_shape[1:])) if r.output_shape else "(not run)"
        click.echo(f"{r.name.ljust(width)}  {r.type.ljust(twidth)}  {shape}")


@click.command("report")
@click.argument("model")
@click.option("--input-size", default=None, help="224, 3x227x227 or 1x3x299x299 (default: the model's crop size)")
@click.option("--depth", type=click.IntRange(min=1), default=None, help="rows down to this nesting depth (default: all)")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "markdown"]), default="table", show_default=True)
@click.option("--optimizer", type=click.Choice(["adam", "adamw", "sgd", "sgd-momentum", "rmsprop"]), default="adam", show_default=True, help="optimizer state in the training-memory estimate")
@output_option("write the report to this file instead of stdout")
def report_command(model: str, input_size: str | None, depth: int | None, fmt: str, optimizer: str, output: Path | None, overwrite: bool) -> None:
    """Per-layer output shape, parameters, MACs/FLOPs, memory and receptive field of MODEL.

    Nothing is downloaded and no real tensor is made: the model is built with its weights on
    PyTorch's meta device, so even vit_h_14 reports in seconds. MODEL is any name that
    `cnnlens models` lists.

    \b
    Examples:
      cnnlens report vgg16
      cnnlens report resnet50 --depth 2
      cnnlens report inception_v3 --format json -o inception.json
      cnnlens report alexnet --input-size 3x227x227 --format markdown
    """
    from ..summary import report

    size = parse_input_size(input_size) if input_size else None
    result = report(model, size, depth=depth, optimizer=optimizer)
    text = {"table": result.to_table, "json": lambda: result.to_json() + "\n", "csv": result.to_csv, "markdown": result.to_markdown}[fmt]()
    _write(text, output, overwrite)
