"""Output files: check them before any work, and write them so that a failure leaves nothing half-written.

- :func:`check_output` refuses an unknown suffix, an existing file without ``overwrite``, a parent
  that is a file or not writable;
- :func:`write_atomic` writes through a temporary file beside the target;
- the suffixes: :data:`FIGURE_SUFFIXES` (a matplotlib figure), :data:`RESULT_SUFFIXES` (what a
  result's ``save`` and the CLI's ``-o`` take: a figure, or ``.json`` for the numbers),
  :data:`IMAGE_SAVE_SUFFIXES` (an image's pixels, ``--image``) and :data:`LOSSLESS_IMAGE_SUFFIXES`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import CnnlensError

__all__ = [
    "FIGURE_SUFFIXES",
    "IMAGE_SAVE_SUFFIXES",
    "LOSSLESS_IMAGE_SUFFIXES",
    "RESULT_SUFFIXES",
    "check_output",
    "save_figure",
    "save_text",
    "write_atomic",
]

FIGURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg", ".tif", ".tiff", ".webp", ".eps", ".ps")
RESULT_SUFFIXES = (*FIGURE_SUFFIXES, ".json")
IMAGE_SAVE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
LOSSLESS_IMAGE_SUFFIXES = (".png", ".bmp", ".tif", ".tiff")  # an adversarial perturbation survives only these


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
                raise CnnlensError(f"{name} {path}: {p} is not writable", param=name)
            if p == parent:  # try it: permissions do not tell for root, read-only mounts or /proc
                import tempfile

                try:
                    with tempfile.NamedTemporaryFile(dir=p, prefix=".cnnlens-probe-"):
                        pass
                except OSError as exc:
                    raise CnnlensError(f"{name} {path}: {p} is not writable ({exc.strerror or exc})", param=name) from None
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
        raise CnnlensError(f"cannot write {path}: {exc.strerror or exc} (not writable)") from None
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
