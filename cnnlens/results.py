"""The one result protocol: every result object of cnnlens is a :class:`Result`.

A result has

- ``to_dict()``: JSON-safe numbers (the CLI's ``--json`` prints exactly this);
- ``figure()``: a matplotlib ``Figure`` that stands alone (title with model, weights, layer, unit);
- ``save(path)``: ``.json`` writes ``to_dict()``, an image or PDF/SVG suffix writes the figure;
- a short ``__repr__`` and ``_repr_html_`` (the figure inline, and its headline numbers), so a
  notebook shows it;
- tensors on the CPU, class names wherever the weights have them.

A subclass implements ``to_dict`` and ``figure`` and names its headline fields in ``_summary()``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

from .errors import CnnlensError

__all__ = ["FIGURE_SUFFIXES", "IMAGE_SAVE_SUFFIXES", "Result", "check_output", "jsonable", "save_figure", "write_atomic", "save_text"]

IMAGE_SAVE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".tif", ".tiff", ".webp", ".eps", ".ps")


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


def check_output(path: str | Path, *, overwrite: bool = False, suffixes: tuple[str, ...] | None = None, name: str = "path") -> Path:
    """Refuse an output before any work: unknown suffix, existing file without ``overwrite``, a parent
    that is a file or not writable. Creates the parent folder."""
    import os

    path = Path(path).expanduser()
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise CnnlensError(f"{name} {path}: unknown suffix {path.suffix or '(none)'!r}; use one of {', '.join(suffixes)}", param=name)
    if path.is_dir():
        raise CnnlensError(f"{name} {path} is a folder; give a file name", param=name)
    if path.exists() and not path.is_file():
        raise CnnlensError(f"{name} {path} is not a regular file (a device or a pipe); give a file name", param=name)
    if path.exists() and not overwrite:
        raise CnnlensError(f"{name} {path} exists; choose another name or pass overwrite", param=name)
    parent = path.parent
    for p in (parent, *parent.parents):
        if p.exists():
            if not p.is_dir():
                raise CnnlensError(f"{name} {path}: {p} is a file, not a folder", param=name)
            if not os.access(p, os.W_OK | os.X_OK):
                raise CnnlensError(f"{name} {path}: cannot write in {p}", param=name)
            break
    return path


def write_atomic(path: Path, write: Any) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then move it into place.

    A failed write (a full disk, a killed process) leaves neither a partial file nor a changed old one.
    """
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)  # read it back: a new file gets the usual permissions, not mkstemp's 0600
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CnnlensError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_figure(fig: Any, path: str | Path, *, overwrite: bool = False, dpi: int = 100) -> Path:
    """Save a matplotlib figure to a checked path and close it."""
    import matplotlib.pyplot as plt

    path = check_output(path, overwrite=overwrite, suffixes=FIGURE_SUFFIXES)
    fmt = path.suffix.lower().lstrip(".")
    try:
        return write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format={"jpg": "jpeg", "tif": "tiff"}.get(fmt, fmt)))
    finally:
        plt.close(fig)


def save_text(text: str, path: str | Path, *, overwrite: bool = False, suffixes: tuple[str, ...] | None = None) -> Path:
    """Write ``text`` to a checked path; a failed write leaves no partial file."""
    path = check_output(path, overwrite=overwrite, suffixes=suffixes)
    return write_atomic(path, lambda tmp: tmp.write_text(text))


class Result:
    """Base of every cnnlens result: see the module docstring."""

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def figure(self, **kwargs: Any) -> Any:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    def _summary(self) -> dict[str, Any]:
        """The few headline fields shown by ``repr`` and in the notebook."""
        return {}

    def to_json(self) -> str:
        return json.dumps(jsonable(self.to_dict()), indent=2, allow_nan=False)

    def save(self, path: str | Path, *, overwrite: bool = False, **figure_kwargs: Any) -> Path:
        """``.json``: the numbers of ``to_dict()``; a figure suffix (png, pdf, svg ...): ``figure()``."""
        path = Path(path)
        if path.suffix.lower() == ".json":
            return save_text(self.to_json() + "\n", path, overwrite=overwrite, suffixes=(".json",))
        check_output(path, overwrite=overwrite, suffixes=FIGURE_SUFFIXES + (".json",))
        return save_figure(self.figure(**figure_kwargs), path, overwrite=overwrite)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={_short(v)}" for k, v in self._summary().items())
        return f"{type(self).__name__}({fields})"

    def _repr_png_bytes(self) -> bytes | None:
        import matplotlib.pyplot as plt

        try:
            fig = self.figure()
        except Exception:  # a figure is optional in the notebook view; the numbers are not
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
