"""The shares of a folder pass and what is saved of them: :class:`Shard` and whole global batches,
the :class:`Partial` state of a part, :class:`Checkpoint` files, and :func:`merge` of the parts."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CnnlensError
from ..outputs import check_output, save_text
from ..results import Result
from .states import state_class

FORMAT = 1  # version of the partial-state JSON
CHECKPOINT_EVERY = 600.0  # seconds between saves of a checkpoint

__all__ = ["Checkpoint", "FORMAT", "Partial", "Shard", "batch_ranges", "merge", "read_partial", "split"]


# -- shares of the global list --------------------------------------------------------------------


@dataclass(frozen=True)
class Shard:
    """Share ``index`` of ``count`` (``index`` from 0 to ``count - 1``, like a rank)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str | Shard, name: str = "shard") -> Shard:
        """``"2/8"`` (or a :class:`Shard`) as a checked :class:`Shard`."""
        if isinstance(text, Shard):
            value = text
        else:
            parts = str(text).strip().split("/")
            if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
                raise CnnlensError(f"{name} {text!r}: expected I/N such as 0/8 (share I of N, I from 0 to N-1)", param=name)
            value = cls(int(parts[0]), int(parts[1]))
        if value.count < 1 or not 0 <= value.index < value.count:
            raise CnnlensError(f"{name} {value}: I goes from 0 to N-1 (0/{max(value.count, 1)} ... {max(value.count, 1) - 1}/{max(value.count, 1)})", param=name)
        return value

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def split(n: int, index: int, count: int) -> range:
    """Part ``index`` of ``count`` contiguous parts of ``range(n)``; sizes differ by at most one,
    every element is in exactly one part."""
    return range(index * n // count, (index + 1) * n // count)


def batch_ranges(batches: Iterable[int]) -> list[list[int]]:
    """Batch indices as sorted ``[start, stop)`` runs: ``{0, 1, 2, 5}`` -> ``[[0, 3], [5, 6]]``."""
    out: list[list[int]] = []
    for b in sorted(set(batches)):
        if out and out[-1][1] == b:
            out[-1][1] = b + 1
        else:
            out.append([b, b + 1])
    return out


def batches_in(ranges: Iterable[Sequence[int]]) -> list[int]:
    return [b for start, stop in ranges for b in range(int(start), int(stop))]



# -- the partial state --------------------------------------------------------------------------------


@dataclass(repr=False)
class Partial(Result):
    """The state of part of a run: the global batches ``done`` (``[start, stop)`` runs), the merged
    state of their images, and the settings every part must share. Written as JSON with
    ``"partial": true``; :func:`merge` turns parts that cover every batch into the result.

    ``shard`` is the share the part was asked for (``None``: the whole list); ``complete`` says
    whether every batch of that share is done.
    """

    kind: str
    settings: dict[str, Any]
    n_items: int
    batch_size: int
    done: list[list[int]]
    state: Any
    shard: Shard | None = None

    @property
    def n_batches(self) -> int:
        return math.ceil(self.n_items / self.batch_size)

    @property
    def scope(self) -> range:
        """The global batches this part is meant to cover."""
        return range(self.n_batches) if self.shard is None else split(self.n_batches, self.shard.index, self.shard.count)

    @property
    def complete(self) -> bool:
        return set(batches_in(self.done)) >= set(self.scope)

    @property
    def images_done(self) -> int:
        return sum(min(self.n_items, (b + 1) * self.batch_size) - b * self.batch_size for b in batches_in(self.done))

    def to_dict(self) -> dict[str, Any]:
        return {
            "partial": True,
            "format": FORMAT,
            "kind": self.kind,
            "module": type(self.state).__module__,
            "shard": None if self.shard is None else str(self.shard),
            "complete": self.complete,
            "images": self.n_items,
            "batch_size": self.batch_size,
            "images_done": self.images_done,
            "done": [list(r) for r in self.done],
            "settings": self.settings,
            "state": self.state.to_json(),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    def save(self, path: str | Path, *, overwrite: bool = False, **_: Any) -> Path:
        """Write the JSON (``.json`` only), atomically: a run killed while writing leaves the last
        complete file."""
        return save_text(self.to_json() + "\n", path, overwrite=overwrite, suffixes=(".json",))

    def figure(self, **_: Any) -> Any:
        raise CnnlensError("a partial state has no figure: merge the parts first (cnnlens merge PART.json ... -o figure.png)")

    def _summary(self) -> dict[str, Any]:
        return {"kind": self.kind, "shard": None if self.shard is None else str(self.shard), "images_done": self.images_done,
                "images": self.n_items, "complete": self.complete}


def partial_from_dict(data: Any, where: str) -> Partial:
    if not isinstance(data, dict) or data.get("partial") is not True:
        raise CnnlensError(f"{where} is not a cnnlens partial state (no \"partial\": true)")
    if data.get("format") != FORMAT:
        raise CnnlensError(f"{where}: partial-state format {data.get('format')!r}, this cnnlens reads {FORMAT}")
    try:
        cls = state_class(str(data["kind"]), data.get("module"))
        return Partial(
            kind=str(data["kind"]),
            settings=dict(data["settings"]),
            n_items=int(data["images"]),
            batch_size=int(data["batch_size"]),
            done=batch_ranges(batches_in(data["done"])),
            state=cls.from_json(data["state"]),
            shard=None if data.get("shard") is None else Shard.parse(data["shard"]),
        )
    except CnnlensError as exc:
        raise CnnlensError(f"{where}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
        raise CnnlensError(f"{where} is not a readable cnnlens partial state (missing or bad {exc})") from None


def read_partial(path: str | Path) -> Partial:
    """The :class:`Partial` saved at ``path``."""
    path = Path(path).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise CnnlensError(f"cannot read {path}: {exc}".splitlines()[0]) from None
    return partial_from_dict(data, str(path))


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The dotted path of the first setting that differs (``setup.k``), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):  # the setups of several layers
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
        return None
    return None if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) else path or "settings"


def describe_setting(path: str) -> str:
    """A setting path as words: ``setup.k`` -> ``k differs``."""
    leaf = path.rpartition(".")[2]
    known = {
        "images_sha256": "the list of images differs",
        "model_sha256": "the model's weights differ",
        "models_sha256": "the models' weights differ",
        "pgd_seed": "the seed of the random starts differs",
        "info": "the model differs",
        "models": "the models differ",
    }
    return known.get(leaf, f"{leaf} differs")


def _mismatch(part: Partial, kind: str, settings: dict[str, Any], n_items: int, batch_size: int, shard: Shard | None) -> str | None:
    if part.kind != kind:
        return f"it is a {part.kind} run, not {kind}"
    if part.n_items != n_items:
        return f"it covers {part.n_items} images, not {n_items}"
    if part.batch_size != batch_size:
        return f"its batch size is {part.batch_size}, not {batch_size} (the batches must match)"
    if part.shard != shard:
        return f"it is share {part.shard or 'all'}, not {shard or 'all'}"
    key = first_difference(part.settings, settings)
    return None if key is None else describe_setting(key)



# -- checkpoints ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """Where a run keeps its partial state (a ``.json`` file), and how often it saves it.

    A run given a checkpoint that holds the same run continues from it (a complete one returns at
    once); a file holding anything else is refused, or replaced when ``replace``. The file is left
    complete at the end (delete it when the result is saved).
    """

    path: Path
    every: float = CHECKPOINT_EVERY  # seconds between saves; 0 saves after every batch
    replace: bool = False
    param: str = "checkpoint"  # the parameter (or option) that named the file, for errors

    @classmethod
    def of(cls, value: str | Path | Checkpoint | None) -> Checkpoint | None:
        if value is None or isinstance(value, Checkpoint):
            checkpoint = value
        elif isinstance(value, (str, Path)):
            checkpoint = cls(Path(value))
        else:
            raise CnnlensError(f"checkpoint must be a .json path or a Checkpoint, not {type(value).__name__}", param="checkpoint")
        if checkpoint is not None:
            from ..checks import check_number

            check_number(checkpoint.every, "checkpoint_every", low=0.0)
            check_output(checkpoint.path, overwrite=True, suffixes=(".json",), name=checkpoint.param)
        return checkpoint


def prior_part(checkpoint: Checkpoint, kind: str, settings: dict[str, Any], n_items: int, batch_size: int, shard: Shard | None) -> Partial | None:
    """The partial state to continue from, None to start afresh, or a refusal."""
    path = checkpoint.path.expanduser()
    if not path.exists():
        return None
    try:
        part = read_partial(path)
        why = _mismatch(part, kind, settings, n_items, batch_size, shard)
    except CnnlensError as exc:
        part, why = None, str(exc)
    if why is None:
        return part
    if checkpoint.replace:
        return None
    raise CnnlensError(
        f"{checkpoint.param} {path} exists and holds another run ({why}); delete it, choose another file, "
        "or replace it (overwrite=True, --overwrite)",
        param=checkpoint.param,
    )



# -- merging parts ------------------------------------------------------------------------------------


def merge(parts: Sequence[Partial | str | Path]) -> Result:
    """The result of a run from its parts (shard files, :class:`Partial` objects), equal to the
    result of one process.

    Every part must come from the same run (kind, images, model, settings), no batch may be in two
    parts, and together they must cover every batch.
    """
    if isinstance(parts, (str, Path, Partial)) or not parts:
        raise CnnlensError("parts: give a list of partial states (files or Partial objects)", param="parts")
    loaded: list[tuple[str, Partial]] = []
    for i, p in enumerate(parts):
        if isinstance(p, Partial):
            loaded.append((f"parts[{i}]", p))
        elif isinstance(p, (str, Path)):
            loaded.append((str(p), read_partial(p)))
        else:
            raise CnnlensError(f"parts[{i}] must be a file or a Partial, not {type(p).__name__}", param="parts")
    first_name, first = loaded[0]
    owner: dict[int, str] = {}
    for name, p in loaded:
        why = _mismatch(p, first.kind, first.settings, first.n_items, first.batch_size, p.shard)
        if why is not None:
            raise CnnlensError(f"{name} and {first_name} come from different runs: {why}")
        for b in batches_in(p.done):
            if b in owner:
                raise CnnlensError(f"{owner[b]} and {name} both hold batch {b} (images {b * p.batch_size}...): give each share once")
            owner[b] = name
    missing = batch_ranges(set(range(first.n_batches)) - set(owner))
    if missing:
        unfinished = [name for name, p in loaded if not p.complete]
        gaps = ", ".join(f"{a * first.batch_size}..{min(first.n_items, b * first.batch_size) - 1}" for a, b in missing[:3])
        counts = {p.shard.count for _, p in loaded if p.shard is not None}
        absent = []
        if len(counts) == 1 and all(p.shard is not None for _, p in loaded):
            n = counts.pop()
            have = {p.shard.index for _, p in loaded if p.shard is not None}
            absent = [f"{i}/{n}" for i in range(n) if i not in have]
        if unfinished:
            hint = f"; unfinished: {', '.join(unfinished)} (run them again to finish)"
        elif absent:
            hint = f"; missing: shard {', '.join(absent)} (run it with --shard {absent[0]} and merge it with the others)"
        else:
            hint = "; a share is missing"
        raise CnnlensError(f"the parts do not cover images {gaps} of {first.n_items}{hint}")
    state = copy.deepcopy(first.state)
    for _, p in loaded[1:]:
        state.merge(p.state)
    return type(first.state).result(first.settings, state)
