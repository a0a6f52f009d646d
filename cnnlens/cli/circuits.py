"""``cnnlens circuit``: a unit, the units that build it, and theirs."""

from __future__ import annotations

from pathlib import Path

import click

from ..outputs import RESULT_SUFFIXES
from ._options import (
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
    unit_option,
    weights_option,
)


@click.command("circuit")
@model_argument
@unit_option("--unit", "-u", "unit", required=True, help="LAYER:CHANNEL or logits:CLASS: the unit whose circuit to draw")
@click.option("--depth", type=click.IntRange(1, 4), default=2, show_default=True, help="levels of inputs: its inputs, their inputs, ...")
@click.option("--top", "-k", "top", type=click.IntRange(1, 32), default=4, show_default=True, help="strongest inputs followed at each level")
@click.option("--data", type=click.Path(path_type=Path), default=None, help="images to weigh the first level by contributions too (the unit's top images)")
@click.option("--size", type=click.IntRange(min=1), default=None, help="input side the maps are computed at (default: the weights' crop)")
@weights_option
@seed_option
@device_option
@json_option
@output_option("figure (.png, .pdf, .svg ...) or .json; default MODEL-circuit-UNIT.png unless --json")
def circuit_command(
    model: str, unit: str, depth: int, top: int, data: Path | None, size: int | None, weights: str | None, seed: int, device: str,
    as_json: bool, output: Path | None, overwrite: bool,
) -> None:
    """The circuit of a unit: its strongest inputs in the stage before, their strongest inputs, ...

    Each connection is weighed by expanded weights (Olah et al. 2020): the effective linear map
    between the two layers across BatchNorm, residual adds, concatenations and pooling, with the
    nonlinearities between them set aside (max pooling as average pooling); the figure draws each
    input's kernel into its parent (red excites, blue inhibits). With --data, the first level is also
    weighed by contributions on those images (activation x gradient of the unit, summed over
    positions). Prints the tree (--json: the edges).

    \b
    Examples:
      cnnlens circuit squeezenet1_0 -w squeezenet.pth -u features.12:5
      cnnlens circuit squeezenet1_0 -w squeezenet.pth -u features.12:5 --depth 1 -k 8 --data photos/ --json
      cnnlens circuit resnet18 -w none -u layer4.1:7 --depth 2 -o circuit.png
    """
    from ..circuits import circuit

    if output is None and not as_json:
        output = Path(f"{model_stem(model)}-circuit-{safe_name(unit)}.png")
    check_outputs([("--output", output, RESULT_SUFFIXES)], overwrite)
    net = open_model(model, weights, device=device, seed=seed)
    result = circuit(net, unit, depth=depth, k=top, images=data, size=size)
    finish(result, as_json=as_json, output=output, overwrite=overwrite)
