"""The one result protocol: every result object of cnnlens is a :class:`Result`.

A result has

- ``to_dict()``: JSON-safe numbers (the CLI's ``--json`` prints exactly this);
- ``figure()``: a matplotlib ``Figure`` that stands alone (title with model, weights, layer, unit);
- ``save(path)``: ``.json`` writes ``to_dict()``, an image or PDF/SVG suffix writes the figure;
- a short ``__repr__`` and ``_repr_html_`` (the figure inline, and its headline numbers), so a
  notebook shows it;
- tensors on the CPU, class names wherever the weights have them.

- ``to_text()``: what the CLI prints on a terminal (a table, or the headline numbers);
- ``warnings``: lines about what the numbers do not show, printed by :func:`print_warnings`;
- ``save_image(path)`` where the result makes an image (a dream, an adversarial example): its
  pixels (:meth:`Result.pixels`) at full size, without labels.

A subclass implements ``to_dict`` and ``figure`` and names its headline fields in ``_summary()``;
one that makes an image implements ``pixels``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from .errors import CnnlensError
from .outputs import IMAGE_SAVE_SUFFIXES, RESULT_SUFFIXES, check_output, save_figure, save_text

__all__ = ["Result", "jsonable", "print_warnings"]



def jsonable(value: Any) -> Any:
    """``value`` with tensors, numpy values, paths, tuples and non-finite floats made JSON-safe."""
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return jsonable(value.item() if value.dim() == 0 else value.tolist())
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if hasattr(value, "to_dict"):
        return jsonable(value.to_dict())
    return str(value)


class Result:
    """Base of every cnnlens result: see the module docstring."""

    #: lines about what the numbers do not show (an all-zero map, a layer left out); a subclass fills them
    warnings: Sequence[str] = ()
    #: the files :meth:`save_image` writes
    image_suffixes: tuple[str, ...] = IMAGE_SAVE_SUFFIXES

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def figure(self, **kwargs: Any) -> Any:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def _summary(self) -> dict[str, Any]:
        """The few headline fields shown by ``repr``, ``to_text`` and in the notebook."""
        return {}

    def to_text(self) -> str:
        """Plain text for a terminal: ``name: value`` for each headline field; a result with a table overrides it."""
        return "\n".join(f"{k}: {_short(v, 200)}" for k, v in self._summary().items())

    def to_json(self) -> str:
        return json.dumps(jsonable(self.to_dict()), indent=2, allow_nan=False)

    def save(self, path: str | Path, *, overwrite: bool = False, **figure_kwargs: Any) -> Path:
        """``.json``: the numbers of ``to_dict()``; a figure suffix (png, pdf, svg ...): ``figure()``."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            return save_text(self.to_json() + "\n", path, overwrite=overwrite, suffixes=(".json",))
        check_output(path, overwrite=overwrite, suffixes=RESULT_SUFFIXES)
        return save_figure(self.figure(**figure_kwargs), path, overwrite=overwrite)

    def pixels(self, **kwargs: Any) -> Any:
        """The image this result makes, as ``(C, H, W)`` pixels in [0, 1] (what :meth:`save_image` writes)."""
        raise CnnlensError(f"{type(self).__name__} makes no image to save; save its figure with save()")

    def save_image(self, path: str | Path, *, overwrite: bool = False, **kwargs: Any) -> Path:
        """Write :meth:`pixels` as an image file (one of :attr:`image_suffixes`), at full size, without labels."""
        from .images import save_image

        path = check_output(path, overwrite=overwrite, suffixes=self.image_suffixes, name="path")
        return save_image(self.pixels(**kwargs), path, overwrite=overwrite)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={_short(v)}" for k, v in self._summary().items())
        return f"{type(self).__name__}({fields})"

    def _repr_png_bytes(self) -> bytes | None:
        import matplotlib.pyplot as plt

        try:
            fig = self.figure()
        except (CnnlensError, ValueError, RuntimeError):  # a figure is optional in the notebook view; the numbers are not
            return None
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        return buf.getvalue()

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th><td>{html.escape(_short(v, 200))}</td></tr>"
            for k, v in self._summary().items()
        )
        png = self._repr_png_bytes()
        img = f"<img src='data:image/png;base64,{base64.b64encode(png).decode()}'/>" if png else ""
        return f"<div><b>{html.escape(type(self).__name__)}</b><table>{rows}</table>{img}</div>"


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif hasattr(value, "shape") and hasattr(value, "dtype"):
        text = f"tensor{tuple(value.shape)}"
    else:
        text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def print_warnings(result: Any, file: TextIO | None = None) -> None:
    """``result.warnings`` on ``file`` (stderr), one ``Warning:`` line each: how every command shows them."""
    for text in getattr(result, "warnings", None) or ():
        print(f"Warning: {text}", file=file or sys.stderr)
