"""Options shared by several commands, small parsers for their values, and output helpers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..errors import CnnlensError

WEIGHTS_HELP = "none (random init), DEFAULT, an enum name such as VGG16_Weights.IMAGENET1K_V1, or a .pth file"


def weights_option(default: str = "none") -> Callable[[Any], Any]:
    return click.option("--weights", "-w", default=default, show_default=True, help=WEIGHTS_HELP)


def output_option(help: str = "output file") -> Callable[[Any], Any]:
    def decorate(f: Any) -> Any:
        f = click.option("--overwrite", is_flag=True, help="replace the output file if it exists")(f)
        return click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), help=help)(f)

    return decorate


def device_option(f: Any) -> Any:
    return click.option("--device", "-d", default="auto", show_default=True, help="cpu, cuda, cuda:1 or auto")(f)


def seed_option(f: Any) -> Any:
    return click.option("--seed", type=int, default=0, show_default=True, help="random seed (results repeat under it)")(f)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CnnlensError(f"--device {device}: CUDA is not available here")
    return device


def parse_input_size(text: str) -> tuple[int, ...]:
    """``224`` -> (1, 3, 224, 224); ``3x227x227`` -> (1, 3, 227, 227); ``1x3x299x299`` as is."""
    cleaned = text.strip().lower().replace("×", "x")
    values = [int(p) for p in cleaned.split("x")] if re.fullmatch(r"\d+(x\d+){0,3}", cleaned) else []
    if not values or any(v <= 0 for v in values):
        raise CnnlensError(f"bad --input-size {text!r}: use 224, 3x227x227 or 1x3x299x299")
    if len(values) == 1:
        return (1, 3, values[0], values[0])
    if len(values) == 2:
        return (1, 3, values[0], values[1])
    if len(values) == 3:
        return (1, *values)
    return tuple(values)


def parse_float(text: str, name: str) -> float:
    """A float, also written as a fraction (``8/255``)."""
    try:
        if "/" in text:
            num, den = text.split("/", 1)
            return float(num) / float(den)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise CnnlensError(f"bad {name} {text!r}: expected a number such as 0.03 or 8/255") from None


def class_index(text: str, categories: list[str] | None, num_classes: int, what: str = "class") -> int:
    """A class given as an index (``388``) or a category name (``"giant panda"``, any case)."""
    text = text.strip()
    try:
        index = int(text)
    except ValueError:
        names = categories or []
        lowered = {c.lower(): i for i, c in enumerate(names)}
        if text.lower() in lowered:
            return lowered[text.lower()]
        from ..errors import did_you_mean

        raise CnnlensError(f"unknown {what} {text!r}{did_you_mean(text, names)}; give a class index 0..{num_classes - 1} or a category name") from None
    if not 0 <= index < num_classes:
        raise CnnlensError(f"unknown {what} {index}: out of range, the model has classes 0..{num_classes - 1}")
    return index


def safe_name(text: str) -> str:
    """``text`` usable in a default file name (``layer4.1/conv`` -> ``layer4.1_conv``)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def save_figure(fig: Any, path: Path, overwrite: bool) -> None:
    """Save a matplotlib figure, refusing to replace a file unless ``overwrite``, and close it."""
    import matplotlib.pyplot as plt

    from ..images import check_writable

    path = check_writable(path, overwrite)
    fig.savefig(path)
    plt.close(fig)
    click.echo(f"wrote {path}", err=True)


def write_json(data: Any, path: Path | None, overwrite: bool) -> None:
    """JSON to stdout (``path`` None) or to a file that is not silently replaced."""
    text = json.dumps(data, indent=2) + "\n"
    if path is None:
        click.echo(text, nl=False)
        return
    from ..images import check_writable

    check_writable(path, overwrite).write_text(text)
    click.echo(f"wrote {path}", err=True)
