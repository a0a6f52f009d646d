"""Where a site keeps its files, and what it remembers between builds.

A site folder holds the pages (``index.html``, ``layers/``, ``units/``, ``images.html``), the JSON
beside every page, the pictures, and ``.cnnlens/``: the manifest (which model, weights and images
the site shows) and the computed results each stage reuses on the next build (mined top-k, feature
visualization values, tuning numbers), each under the key of the settings that made it. A build
asks the store what is missing and computes only that.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from ..distributed import fingerprint
from ..errors import CnnlensError
from ..outputs import write_atomic
from ..results import jsonable

__all__ = ["FORMAT", "SiteStore", "slug"]

FORMAT = 1  # version of the manifest and cached files
MANIFEST = ".cnnlens/site.json"


def slug(name: str) -> str:
    """A file-name-safe form of a layer name (``features.3`` stays as it is)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"


class SiteStore:
    """The files of one site folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.state = self.root / ".cnnlens"

    # -- identity ----------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any] | None:
        path = self.root / MANIFEST
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CnnlensError(f"output: {path} is not a readable site manifest ({exc}); pass overwrite to rebuild the site".splitlines()[0], param="output") from None
        return data if isinstance(data, dict) else None

    def open(self, identity: dict[str, Any], *, overwrite: bool = False) -> bool:
        """Make the folder this site's: True when an earlier build of the same site is there to reuse.

        A folder holding another site (other model, weights or images) or other files is refused
        unless ``overwrite`` (then the old site is removed first; other files are never removed).
        """
        if self.root.exists() and not self.root.is_dir():
            raise CnnlensError(f"output: {self.root} is a file, not a folder for the site", param="output")
        old = self.manifest() if self.root.is_dir() else None
        if old is None and self.root.is_dir() and any(self.root.iterdir()):
            raise CnnlensError(f"output: {self.root} is not empty and holds no cnnlens site; give a new or empty folder", param="output")
        same = old is not None and old.get("format") == FORMAT and old.get("identity") == identity
        if old is not None and not same:
            if not overwrite:
                what = _difference(old.get("identity") or {}, identity) if old.get("format") == FORMAT else "an older format"
                raise CnnlensError(f"output: {self.root} holds a site of {what}; pass overwrite to rebuild it", param="output")
            self.clear()
        elif same and overwrite:
            self.clear()
            same = False
        self.root.mkdir(parents=True, exist_ok=True)
        self.write_json(MANIFEST, {"format": FORMAT, "identity": identity})
        return same

    def clear(self) -> None:
        """Remove what a build writes (the site's own files and folders), nothing else."""
        for name in ("index.html", "index.json", "images.html", "images.json"):
            (self.root / name).unlink(missing_ok=True)
        for name in ("layers", "units", "img", "assets", ".cnnlens"):
            shutil.rmtree(self.root / name, ignore_errors=True)

    # -- cached results ----------------------------------------------------------------------------
    def cached(self, name: str, key: Any) -> Any | None:
        """The value stored under ``name`` if it was made with ``key``, else None."""
        path = self.state / name
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("key") != fingerprint(key):
            return None
        return data.get("value")

    def cache(self, name: str, key: Any, value: Any) -> None:
        self.write_json(f".cnnlens/{name}", {"key": fingerprint(key), "value": value})

    # -- writing -----------------------------------------------------------------------------------
    def path(self, relative: str) -> Path:
        return self.root / relative

    def write_text(self, relative: str, text: str) -> bool:
        """Write a file (atomically) unless it already holds ``text``; True when written."""
        path = self.root / relative
        data = text.encode("utf-8")
        if path.exists() and path.read_bytes() == data:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda tmp: Path(tmp).write_bytes(data))
        return True

    def write_json(self, relative: str, value: Any) -> bool:
        return self.write_text(relative, json.dumps(jsonable(value), indent=1, sort_keys=False, allow_nan=False) + "\n")

    def exists(self, *relative: str) -> bool:
        return all((self.root / r).exists() for r in relative)


def _difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    for key in ("model", "weights", "model_sha256", "images_sha256", "input_size", "k", "min_inside"):
        if old.get(key) != new.get(key):
            if key == "model_sha256":
                return f"{old.get('model')} with other weights"
            if key == "images_sha256":
                return "other images"
            return f"{key} {old.get(key)!r} (not {new.get(key)!r})"
    return "other settings"
