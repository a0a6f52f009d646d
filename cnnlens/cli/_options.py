"""The one CLI vocabulary: options shared by every command, their parsers, and the save/print step.

- A command about a model takes MODEL first (:data:`model_argument`); a command about an image
  (``dream``, ``style``, ``invert``) takes the image first and ``--model`` (:func:`model_option`).
- ``-w/--weights``: ``DEFAULT`` (the pretrained default) unless the model has none; ``none`` is a
  random initialisation (then every figure and JSON says "random init"); or a weights file.
- ``--seed`` is passed to the API function as ``seed=`` and to the random initialisation; nothing
  seeds torch's global generators (:mod:`cnnlens.seeds`).
- ``--json`` prints the result's ``to_dict()`` on stdout; ``-o/--output`` is always the result's figure
  (or its numbers, with a ``.json`` suffix); ``--image`` is always the image a command makes (a dream,
  a stylized image, an adversarial example, a grid of feature visualizations), at full size and
  without labels; ``--overwrite``, ``--device``, ``--batch-size`` mean the same everywhere.

A command parses, checks its outputs, calls one API function and saves with :func:`finish`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..errors import CnnlensError
from ..checks import SEED_MAX

WEIGHTS_HELP = (
    "DEFAULT (pretrained; the default where the model has pretrained weights), none (random init), "
    "an enum name such as IMAGENET1K_V1, or a weights file (.pth/.pt)"
)
MODEL_HELP = "a name from `cnnlens models`, timm/NAME, or path/to/file.py:ClassName"
UNIT_HELP = "LAYER, LAYER:CHANNEL, LAYER:CHANNEL@Y,X or logits:CLASS (index or class name)"

model_argument = click.argument("model", metavar="MODEL")


def model_option(default: str | None = None) -> Callable[[Any], Any]:
    """``-m/--model`` for commands about an image."""
    if default is None:  # no default given at all: click then requires the option (default=None counts as one)
        return click.option("--model", "-m", "model", required=True, help=MODEL_HELP)
    return click.option("--model", "-m", "model", default=default, show_default=True, help=MODEL_HELP)


def weights_option(f: Any) -> Any:
    return click.option("--weights", "-w", default=None, metavar="WEIGHTS", help=WEIGHTS_HELP + "  [default: DEFAULT]")(f)


def json_option(f: Any) -> Any:
    return click.option("--json", "as_json", is_flag=True, help="print the numbers as JSON on stdout")(f)


def seed_option(f: Any) -> Any:
    return click.option(
        "--seed", type=click.IntRange(0, SEED_MAX), default=0, show_default=True,
        help="makes every random draw repeat (the random initialisation, noise, random starts)",
    )(f)


def device_option(f: Any) -> Any:
    return click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto")(f)


def batch_size_option(default: int) -> Callable[[Any], Any]:
    return click.option("--batch-size", "-b", type=click.IntRange(min=1, max=65536), default=default, show_default=True, help="images per batch")


def output_option(help: str = "output file") -> Callable[[Any], Any]:
    def decorate(f: Any) -> Any:
        f = click.option("--overwrite", is_flag=True, help="replace output files that exist")(f)
        return click.option("-o", "--output", type=click.Path(path_type=Path), help=help)(f)

    return decorate


def image_option(help: str) -> Callable[[Any], Any]:
    """``--image FILE``: the image a command makes, at full size, without labels (``-o`` is the figure)."""
    return click.option("--image", "image_path", type=click.Path(path_type=Path, dir_okay=False), default=None, help=help)


def unit_option(*names: str, help: str = UNIT_HELP, **kwargs: Any) -> Callable[[Any], Any]:
    return click.option(*(names or ("--unit", "-u")), help=help, **kwargs)


# -- parsing -----------------------------------------------------------------------------------------


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available else cpu; refuses unknown or unavailable devices in one line."""
    import torch

    text = (device or "auto").strip().lower()
    if text in ("auto", "cuda") and torch.cuda.is_available():
        from ..distributed import local_cuda_device

        return local_cuda_device()  # "cuda", or one device per rank under torchrun
    if text == "auto":
        return "cpu"
    if not re.fullmatch(r"cpu|cuda(:\d+)?|mps", text):
        raise CnnlensError(f"device {device!r} unknown: use cpu, cuda, cuda:N or auto", param="device")
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise CnnlensError(f"device {device}: CUDA is not available here; use cpu", param="device")
        index = int(text.split(":")[1]) if ":" in text else 0
        if index >= torch.cuda.device_count():
            raise CnnlensError(f"device {device}: there are {torch.cuda.device_count()} CUDA devices", param="device")
    if text == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise CnnlensError("device mps is not available here", param="device")
    return text


def open_model(model: str, weights: str | None, *, device: str = "auto", seed: int = 0) -> Any:
    """``create_model`` for a command: ``weights`` None means DEFAULT; ``seed`` seeds a random
    initialisation (never the global generators: every API function takes the seed it needs)."""
    from ..registry import create_model, get_entry

    if weights is not None and not weights.strip():
        raise CnnlensError("weights is empty: give DEFAULT, none (a random init), an enum name such as IMAGENET1K_V1 or a weights file", param="weights")
    entry = get_entry(model)
    if weights is None:
        if not entry.pretrained:
            raise CnnlensError(
                f"weights: {entry.name} has no pretrained weights to default to; pass a weights file, or none for a random init",
                param="weights",
            )
        weights = "DEFAULT"
    dev = resolve_device(device)
    return create_model(model, weights, device=dev, seed=seed)


def parse_input_size(text: str) -> tuple[int, ...]:
    """``224`` -> (1, 3, 224, 224); ``3x227x227`` -> (1, 3, 227, 227); ``1x3x299x299`` as is."""
    cleaned = text.strip().lower().replace("×", "x")
    values = [int(p) for p in cleaned.split("x")] if re.fullmatch(r"\d+(x\d+){0,3}", cleaned) else []
    if not values or any(v <= 0 for v in values) or any(v > 100_000 for v in values):
        raise CnnlensError(f"input_size {text!r}: use 224, 3x227x227 or 1x3x299x299", param="input_size")
    if len(values) == 1:
        return (1, 3, values[0], values[0])
    if len(values) == 2:
        return (1, 3, values[0], values[1])
    if len(values) == 3:
        return (1, *values)
    return tuple(values)


def parse_float(text: str | float | None, name: str, **bounds: Any) -> float | None:
    """A number, also written as a fraction (``8/255``); bounds as :func:`cnnlens.checks.check_number`."""
    from ..checks import check_number

    if text is None:
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        try:
            if "/" in text:
                num, den = text.split("/", 1)
                value = float(num) / float(den)
            else:
                value = float(text)
        except (ValueError, ZeroDivisionError):
            raise CnnlensError(f"{name} {text!r}: expected a number such as 0.03 or 8/255", param=name) from None
    return check_number(value, name, **bounds)


def parse_floats(text: str | None, name: str, **bounds: Any) -> list[float] | None:
    """A comma list of numbers (``0,1/255,2/255``)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise CnnlensError(f"{name} {text!r}: expected a comma list of numbers", param=name)
    return [parse_float(p, name, **bounds) for p in parts]  # type: ignore[misc]


def safe_name(text: str) -> str:
    """``text`` usable in a default file name (``layer4.1/conv`` -> ``layer4.1_conv``)."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


def model_stem(model: str) -> str:
    """A file-name stem for a model name (``path/net.py:Net`` -> ``Net``, ``timm/resnet18`` -> ``resnet18``)."""
    return safe_name(model.rpartition(":")[2] if ":" in model else model.rpartition("/")[2])


# -- outputs -----------------------------------------------------------------------------------------


def check_outputs(paths: Sequence[tuple[str, Path | None, tuple[str, ...]]], overwrite: bool) -> None:
    """Check every output before any work: suffix known, not the same file twice, writable, not
    existing without ``--overwrite``. ``paths`` holds ``(option, path or None, suffixes)``."""
    from ..outputs import check_output

    seen: dict[Path, str] = {}
    for option, path, suffixes in paths:
        if path is None:
            continue
        resolved = Path(path).expanduser().resolve()
        if resolved in seen:
            raise CnnlensError(f"{seen[resolved]} and {option} are the same file {path}; give two names")
        seen[resolved] = option
        try:
            check_output(path, overwrite=overwrite, suffixes=suffixes, name=option)
        except CnnlensError as exc:
            msg = str(exc).replace("pass overwrite", "pass --overwrite")
            raise CnnlensError(msg) from None


def finish(
    result: Any,
    *,
    as_json: bool,
    output: Path | None,
    overwrite: bool,
    text: str | None = None,
    image: Path | None = None,
    figure: dict[str, Any] | None = None,
) -> None:
    """The end of every command: print the result's warnings (stderr), save the image (``--image``:
    ``result.save_image``) and the figure or ``.json`` (``-o``; ``figure``: the figure's options),
    then print JSON (``--json``) or the result's ``to_text()`` on stdout (``text`` instead when
    given; ``""`` prints nothing)."""
    from ..distributed import is_main
    from ..results import jsonable, print_warnings

    if not is_main():  # under torchrun every rank holds the result; rank 0 alone writes and prints
        return
    print_warnings(result)
    if image is not None:
        result.save_image(image, overwrite=overwrite)
        click.echo(f"wrote {image}", err=True)
    if output is not None:
        result.save(output, overwrite=overwrite, **(figure or {}))  # a .json output takes no figure options
        click.echo(f"wrote {output}", err=True)
    if as_json:
        click.echo(json.dumps(jsonable(result.to_dict()), indent=2, allow_nan=False))
    else:
        text = result.to_text() if text is None else text
        if text:
            click.echo(text)
