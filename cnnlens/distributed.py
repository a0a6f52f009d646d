"""Folder-scale work on many processes and machines, with the result of one process.

Every command that walks a folder of images (``patches``, ``robustness``) runs its work through
:func:`run`, which gives it four things at once:

- **One global list, cut into whole batches.** The images are listed, and ``limit`` applied, in
  every process alike; the list is cut into *global batches* of ``batch_size`` consecutive images
  (only the last may be shorter). A share is a contiguous run of whole batches, so every image is
  seen exactly once -- no padding as with ``DistributedSampler``, which repeats images and would
  put duplicates into a top-k or bias an accuracy -- and each image goes through the model in the
  same batch, at the same place, as in one process.
- **States that merge exactly.** What a share computes is small and merges without rounding:
  :class:`TopK` (values re-ranked by value, ties by global image index), :class:`ExactSum` (sums
  of float32 values kept as exact integers) and integer counts. Hence the result of N processes
  equals the result of one, byte for byte, whatever N and however the work was cut.
- **Three ways to share the work.** Under ``torchrun`` (``RANK``/``WORLD_SIZE`` in the
  environment) each rank takes its share, the states are gathered (gloo, on the CPU: they are
  small) and every rank gets the merged result; only rank 0 writes files, prints and shows
  progress (:func:`is_main`). Without a process group, ``shard="I/N"`` computes share I of N
  (I from 0 to N-1, like a rank) and returns its :class:`Partial` state, saved as JSON; :func:`merge`
  turns the parts into the result (``cnnlens merge part-*.json``).
- **Resume.** With a :class:`Checkpoint`, the partial state is saved at intervals (atomically);
  run again with the same checkpoint and the work continues where it stopped, also with another
  number of processes. A checkpoint that holds another run (other images, weights or settings)
  is refused, or replaced with ``Checkpoint(..., replace=True)``.

Randomness per item comes from the item's global index (:func:`cnnlens.seeds.item_generator`), never
from the order in which a process meets it.

A capability that walks a folder writes a *job* (see :class:`Job`) and a *state* class (see
:class:`State`) that it registers itself with ``@register_state(kind)``; every partial file names the
module of its state, so :func:`merge` finds it without this module naming any capability.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from .errors import CnnlensError
from .outputs import check_output, save_text
from .progress import Progress, progress_bar
from .results import Result

__all__ = [
    "FORMAT",
    "Checkpoint",
    "ExactSum",
    "Group",
    "Job",
    "Partial",
    "Shard",
    "Sharding",
    "State",
    "TopK",
    "batch_ranges",
    "fingerprint",
    "is_main",
    "local_cuda_device",
    "merge",
    "model_fingerprint",
    "model_info_from_json",
    "model_info_to_json",
    "process_group",
    "read_partial",
    "register_state",
    "run",
    "shutdown",
    "split",
]

FORMAT = 1  # version of the partial-state JSON
# kind of partial state -> the State class that merges and finishes it: each capability registers its own
# (:func:`register_state`), so this module names none of them
_STATES: dict[str, type] = {}
CHECKPOINT_EVERY = 600.0  # seconds between saves of a checkpoint


# -- how a folder pass is shared ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sharding:
    """How a folder-scale pass (patches, robustness) shares its work: ``top_patches(..., sharding=Sharding(shard="0/4"))``.

    - ``distributed``: under torchrun (``None``, the default, or ``True``) each process takes its
      share of the images and every process gets the merged result; ``False``: this process does all.
    - ``shard``: ``"I/N"``: compute share I of N only and return its :class:`Partial` state (save it
      as JSON; :func:`merge` turns the parts into the result).
    - ``checkpoint``: a ``.json`` file (or :class:`Checkpoint`) where the partial state is saved at
      intervals; a run given the same file continues from it.
    """

    distributed: bool | None = None
    shard: str | Shard | None = None
    checkpoint: str | Path | Checkpoint | None = None


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


def _batches_in(ranges: Iterable[Sequence[int]]) -> list[int]:
    return [b for start, stop in ranges for b in range(int(start), int(stop))]


# -- fingerprints and JSON of a model ---------------------------------------------------------------


def fingerprint(*parts: Any) -> str:
    """sha256 (hex) of JSON-able values, strings, bytes or tensors, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, torch.Tensor):
            t = part.detach().cpu()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()


def model_fingerprint(model: torch.nn.Module) -> str:
    """sha256 of a model's parameters and buffers (names, dtypes, shapes, values): two processes
    that merge their work must hold the same model."""
    items: list[Any] = []
    for name, tensor in model.state_dict().items():
        items += [name, tensor]
    return fingerprint(*items)


def model_info_to_json(info: Any) -> dict[str, Any]:
    """A :class:`cnnlens.ModelInfo` as JSON, all of it (``ModelInfo.to_dict`` is the short form)."""
    return {
        "name": info.name,
        "source": info.source,
        "weights": info.weights,
        "seed": info.seed,
        "pretrained": info.pretrained,
        "preprocessing": info.preprocessing.to_dict(),
        "categories": list(info.categories) if info.categories else None,
    }


def model_info_from_json(data: dict[str, Any]) -> Any:
    """The :class:`cnnlens.ModelInfo` written by :func:`model_info_to_json`."""
    from .pixels import Preprocessing
    from .registry import ModelInfo

    return ModelInfo(
        name=str(data["name"]),
        source=str(data["source"]),
        weights=str(data["weights"]),
        preprocessing=Preprocessing.from_dict(data["preprocessing"]),
        categories=tuple(data["categories"]) if data.get("categories") else None,
        seed=data.get("seed"),
        pretrained=bool(data.get("pretrained", False)),
    )


# -- mergeable states -------------------------------------------------------------------------------


_POW2 = torch.tensor([1 << i for i in range(16)], dtype=torch.int64)


def _enc(value: float) -> float | str:
    """A float for JSON; non-finite values as ``"nan"``, ``"inf"``, ``"-inf"`` (``float()`` reads them back)."""
    return value if math.isfinite(value) else str(value)


class ExactSum:
    """Per row, the exact sum of float32 values: every float32 is an integer multiple of
    ``2**-172`` (with its mantissa of 24 bits), so the sums are kept as integers, in limbs of 16
    bits, with the count of non-finite values beside them. Sums are therefore the same in any
    order and however the values were split among processes; :meth:`means` rounds once, at the end.
    """

    LIMB = 16
    LIMBS = 24  # 384 bits: sums up to 2**212, over 2**84 values of float32's largest magnitude
    OFFSET = 172  # 2**-172 is the unit: float32's smallest subnormal 2**-149 has a 24-bit mantissa

    def __init__(self, rows: int) -> None:
        self.limbs = torch.zeros(rows, self.LIMBS, dtype=torch.int64)
        self.special = torch.zeros(rows, 3, dtype=torch.int64)  # count of nan, +inf, -inf
        self._pending = 0  # values added since the last carry (a limb holds 2**23 of them safely)

    @property
    def rows(self) -> int:
        return self.limbs.shape[0]

    def add(self, values: torch.Tensor) -> None:
        """Add ``(rows, B)`` float32 values (other float dtypes are converted to float32 first)."""
        v = values.detach().to("cpu", torch.float32)
        if v.dim() == 1:
            v = v[:, None]
        for start in range(0, v.shape[1], 1 << 20):
            self._add(v[:, start : start + (1 << 20)])

    def _add(self, v: torch.Tensor) -> None:
        if self._pending + v.shape[1] > 1 << 22:  # each value adds < 2**40 to a limb: carry before 2**63
            self._carry()
        finite = torch.isfinite(v)
        if not bool(finite.all()):
            self.special[:, 0] += torch.isnan(v).sum(1)
            self.special[:, 1] += (v == math.inf).sum(1)
            self.special[:, 2] += (v == -math.inf).sum(1)
            v = torch.where(finite, v, torch.zeros_like(v))
        mantissa, exponent = torch.frexp(v)  # v = mantissa * 2**exponent, 0.5 <= |mantissa| < 1
        whole = (mantissa.double() * 2.0**24).long()  # exact: 24 bits
        shift = (exponent.long() + (self.OFFSET - 24)).clamp_(min=0)  # v = whole * 2**(shift - OFFSET)
        limb = shift >> 4  # LIMB = 16 bits
        self.limbs.scatter_add_(1, limb, whole * _POW2[shift & 15])
        self._pending += v.shape[1]

    def _carry(self) -> None:
        for i in range(self.LIMBS - 1):
            carry = self.limbs[:, i] >> self.LIMB  # floor, also for negative limbs
            self.limbs[:, i] -= carry << self.LIMB
            self.limbs[:, i + 1] += carry
        self._pending = 0

    def totals(self) -> list[int]:
        """The sums as integers in units of ``2**-OFFSET`` (finite values only)."""
        self._carry()
        rows = self.limbs.tolist()
        return [sum(int(v) << (self.LIMB * i) for i, v in enumerate(row)) for row in rows]

    def means(self, n: int) -> list[float]:
        """The sums divided by ``n``, each rounded once to the nearest float64 (nan, inf, -inf as
        the non-finite values make them)."""
        out = []
        for total, (n_nan, n_pos, n_neg) in zip(self.totals(), self.special.tolist()):
            if n_nan or (n_pos and n_neg) or n <= 0:
                out.append(math.nan)
            elif n_pos or n_neg:
                out.append(math.inf if n_pos else -math.inf)
            else:
                out.append(total / (n << self.OFFSET))  # Python's int division rounds correctly
        return out

    def select(self, rows: slice) -> ExactSum:
        """A copy holding only ``rows`` (a slice), with the same sums."""
        self._carry()
        out = ExactSum(0)
        out.limbs, out.special = self.limbs[rows].clone(), self.special[rows].clone()
        return out

    def merge(self, other: ExactSum) -> None:
        if other.rows != self.rows:
            raise CnnlensError(f"cannot merge sums of {other.rows} rows into {self.rows}")
        self._carry()
        other._carry()  # both below 2**16 per limb: the sum cannot overflow
        self.limbs += other.limbs
        self.special += other.special
        self._carry()

    def to_json(self) -> dict[str, Any]:
        return {"unit": f"2**-{self.OFFSET}", "totals": [str(t) for t in self.totals()], "special": self.special.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExactSum:
        totals = [int(t) for t in data["totals"]]
        out = cls(len(totals))
        mask = (1 << cls.LIMB) - 1
        rows = [[(t >> (cls.LIMB * i)) & mask for i in range(cls.LIMBS - 1)] + [t >> (cls.LIMB * (cls.LIMBS - 1))] for t in totals]
        if rows:
            out.limbs = torch.tensor(rows, dtype=torch.int64)
            out.special = torch.tensor(data["special"], dtype=torch.int64).reshape(len(totals), 3)
        return out


class TopK:
    """Per row, the ``k`` largest values with the global index of their item and one integer of
    payload (a position): ranked by value (descending), ties by the smaller global index -- what a
    stable sort over all items in order gives -- so merging parts in any order gives the same rows."""

    def __init__(self, rows: int, k: int) -> None:
        self.k = int(k)
        self.values = torch.empty(rows, 0, dtype=torch.float32)
        self.index = torch.empty(rows, 0, dtype=torch.int64)
        self.payload = torch.empty(rows, 0, dtype=torch.int64)

    @property
    def rows(self) -> int:
        return self.values.shape[0]

    def add(self, values: torch.Tensor, index: torch.Tensor | Sequence[int], payload: torch.Tensor | None = None) -> None:
        """Candidates ``(rows, B)`` with their items' global indices ``(B,)`` and payloads ``(rows, B)``."""
        values = values.detach().to("cpu", torch.float32)
        index = torch.as_tensor(index, dtype=torch.int64).reshape(1, -1).expand_as(values)
        payload = torch.zeros_like(index) if payload is None else payload.detach().to("cpu", torch.int64)
        # streaming (new items after every item held, in order): one stable sort keeps the tie rule
        streaming = not self.index.numel() or (bool((index[0, 1:] > index[0, :-1]).all()) and int(index[0, 0]) > int(self.index.max()))
        self._select(torch.cat([self.values, values], 1), torch.cat([self.index, index], 1), torch.cat([self.payload, payload], 1), streaming)

    def select(self, rows: slice) -> TopK:
        """A copy holding only ``rows`` (a slice)."""
        out = TopK(0, self.k)
        out.values, out.index, out.payload = self.values[rows].clone(), self.index[rows].clone(), self.payload[rows].clone()
        return out

    def merge(self, other: TopK) -> None:
        if other.rows != self.rows:
            raise CnnlensError(f"cannot merge top-k of {other.rows} rows into {self.rows}")
        self._select(torch.cat([self.values, other.values], 1), torch.cat([self.index, other.index], 1), torch.cat([self.payload, other.payload], 1))

    def _select(self, values: torch.Tensor, index: torch.Tensor, payload: torch.Tensor, ordered: bool = False) -> None:
        """Keep the ``k`` first by (value descending, index ascending). ``ordered``: the held rows
        (already in that order) come before new items in increasing index, all after them -- then
        one stable sort by value gives the same order."""
        if not ordered:
            by_index = torch.argsort(index, dim=1, stable=True)
            values, index, payload = values.gather(1, by_index), index.gather(1, by_index), payload.gather(1, by_index)
        order = torch.sort(values, dim=1, descending=True, stable=True).indices[:, : self.k]
        self.values, self.index, self.payload = values.gather(1, order), index.gather(1, order), payload.gather(1, order)

    def to_json(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "values": [[_enc(v) for v in row] for row in self.values.tolist()],
            "index": self.index.tolist(),
            "payload": self.payload.tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TopK:
        values = [[float(v) for v in row] for row in data["values"]]
        out = cls(len(values), int(data["k"]))
        width = len(values[0]) if values else 0
        out.values = torch.tensor(values, dtype=torch.float32).reshape(len(values), width)
        out.index = torch.tensor(data["index"], dtype=torch.int64).reshape(len(values), width)
        out.payload = torch.tensor(data["payload"], dtype=torch.int64).reshape(len(values), width)
        return out


class State(Protocol):
    """What a share of a job computes (see :class:`TopK`, :class:`ExactSum`): merged exactly,
    written as JSON, and finished into the job's result from the job's settings."""

    def merge(self, other: Any) -> None: ...

    def to_json(self) -> dict[str, Any]: ...

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Any: ...

    @classmethod
    def result(cls, settings: dict[str, Any], state: Any) -> Result: ...


class Job(Protocol):
    """A walk over a fixed global list of ``n_items`` items (``None``: a stream without random
    access, run as given) in batches of ``batch_size``.

    ``settings()`` is JSON with everything that must agree between processes and parts (the images
    and model fingerprints included) and everything :meth:`State.result` needs; ``steps(state,
    items, bar)`` processes ``items`` (global indices of whole global batches, in order) into
    ``state`` and yields once after each global batch; ``work(n_items, n_batches)`` is the total
    for the progress bar, in the unit of ``unit``.
    """

    kind: str
    n_items: int | None
    batch_size: int
    desc: str
    unit: str

    def settings(self) -> dict[str, Any]: ...

    def empty(self) -> Any: ...

    def steps(self, state: Any, items: Sequence[int] | None, bar: Progress) -> Iterator[None]: ...

    def work(self, n_items: int, n_batches: int) -> int | None: ...


def register_state(kind: str) -> Callable[[type], type]:
    """A class decorator: a capability registers the :class:`State` of its resumable runs under ``kind``
    (``@register_state("patches")``), and its :class:`Job` names the same ``kind``."""

    def register(cls: type) -> type:
        known = _STATES.get(kind)
        if known is not None and known is not cls and f"{known.__module__}.{known.__qualname__}" != f"{cls.__module__}.{cls.__qualname__}":
            raise ValueError(f"partial-state kind {kind!r} is already registered by {known.__module__}.{known.__qualname__}")
        _STATES[kind] = cls
        return cls

    return register


def state_class(kind: str, module: str | None = None) -> Any:
    """The :class:`State` class registered for ``kind``; ``module``, the cnnlens module that defines it
    (written in every partial file), is imported first when nothing has registered ``kind`` yet."""
    if kind not in _STATES and module is not None and (module == "cnnlens" or module.startswith("cnnlens.")):
        try:
            importlib.import_module(module)  # the capability registers its state on import
        except ImportError:
            pass
    cls = _STATES.get(kind)
    if cls is None:
        known = ", ".join(sorted(_STATES)) or "none yet"
        raise CnnlensError(f"unknown kind of partial state {kind!r} (registered: {known})")
    return cls


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
        return set(_batches_in(self.done)) >= set(self.scope)

    @property
    def images_done(self) -> int:
        return sum(min(self.n_items, (b + 1) * self.batch_size) - b * self.batch_size for b in _batches_in(self.done))

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


def _partial_from_dict(data: Any, where: str) -> Partial:
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
            done=batch_ranges(_batches_in(data["done"])),
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
    return _partial_from_dict(data, str(path))


def _difference(a: Any, b: Any, path: str = "") -> str | None:
    """The dotted path of the first setting that differs (``setup.k``), or None."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            found = _difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):  # the setups of several layers
        for i, (x, y) in enumerate(zip(a, b)):
            found = _difference(x, y, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
        return None
    return None if json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) else path or "settings"


def _describe(path: str) -> str:
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
    key = _difference(part.settings, settings)
    return None if key is None else _describe(key)


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
            from .checks import check_number

            check_number(checkpoint.every, "checkpoint_every", low=0.0)
            check_output(checkpoint.path, overwrite=True, suffixes=(".json",), name=checkpoint.param)
        return checkpoint


def _prior(checkpoint: Checkpoint, kind: str, settings: dict[str, Any], n_items: int, batch_size: int, shard: Shard | None) -> Partial | None:
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


# -- the process group --------------------------------------------------------------------------------


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


def _torch_distributed() -> Any:
    """``torch.distributed`` when a process group is running, else None (without importing torch anew)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist
    return None


def is_main() -> bool:
    """True in rank 0 of a process group (torchrun) and in a process without one: the process
    that writes files, prints results and shows progress."""
    dist = _torch_distributed()
    if dist is not None:
        return dist.get_rank() == 0
    return _env_int("RANK", 0) == 0


def local_cuda_device() -> str:
    """``"cuda"``, or under torchrun ``"cuda:LOCAL_RANK"`` (one device per rank)."""
    if _env_int("WORLD_SIZE", 1) > 1 and "LOCAL_RANK" in os.environ:
        local, count = _env_int("LOCAL_RANK", 0), torch.cuda.device_count()
        if local >= count:
            raise CnnlensError(
                f"device: this machine runs rank {local} but has {count} CUDA devices; start at most {count} processes per machine",
                param="device",
            )
        return f"cuda:{local}"
    return "cuda"


@dataclass(frozen=True)
class Group:
    """This process's place among those that share the work (rank 0 of 1 without a process group),
    with the few collectives a run needs, on a gloo group (states are small and live on the CPU)."""

    rank: int = 0
    world: int = 1
    handle: Any = field(default=None, compare=False)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj: Any) -> list[Any]:
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj, group=self.handle)
        return out

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (None elsewhere)."""
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.main else None
        dist.gather_object(obj, out, dst=0, group=self.handle)
        return out

    def any(self, *flags: bool) -> list[bool]:
        """Each flag OR-ed over the ranks."""
        if self.world == 1:
            return [bool(f) for f in flags]
        import torch.distributed as dist

        t = torch.tensor([int(bool(f)) for f in flags], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.handle)
        return [bool(v) for v in t.tolist()]


def process_group(distributed: bool | None = None) -> Group:
    """The :class:`Group` of this process.

    ``None``: the running torch.distributed process group, or the one torchrun describes in the
    environment (``WORLD_SIZE`` > 1; it is started here -- gloo, and NCCL for CUDA tensors where
    CUDA is available -- and closed at exit); otherwise this process alone. ``False``: this process
    alone. ``True``: a process group is required.
    """
    if distributed is False:
        return Group()
    if distributed not in (None, True):
        raise CnnlensError(f"distributed must be None, True or False, not {distributed!r}", param="distributed")
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        if _env_int("WORLD_SIZE", 1) <= 1:
            if distributed:
                raise CnnlensError("distributed: no process group; start the work with torchrun --nproc-per-node N ...", param="distributed")
            return Group()
        _start_process_group()
    world, rank = dist.get_world_size(), dist.get_rank()
    if world == 1:
        return Group()
    backend = str(dist.get_backend())
    handle = None if "gloo" in backend else dist.new_group(backend="gloo")
    return Group(rank, world, handle)


def _start_process_group() -> None:
    import atexit

    import torch.distributed as dist

    if not dist.is_available():  # pragma: no cover - builds without torch.distributed
        raise CnnlensError("torch.distributed is not available in this PyTorch build; run one process, or use shard=")
    backend = "gloo"
    if torch.cuda.is_available():
        backend = "cpu:gloo,cuda:nccl"
        torch.cuda.set_device(local_cuda_device())
    try:
        dist.init_process_group(backend=backend, init_method="env://")
    except (RuntimeError, ValueError) as exc:
        raise CnnlensError(f"cannot join the process group that torchrun describes: {exc}".splitlines()[0]) from None
    atexit.register(shutdown)


def shutdown() -> None:
    """Close the process group, if one is running, once every rank is here (rank 0 may still be
    writing the outputs: a rank that tears its connections down alone can abort the others)."""
    dist = _torch_distributed()
    if dist is None:
        return
    try:
        dist.barrier()
    except RuntimeError:  # a rank is gone already (killed, or failed): nothing to wait for
        pass
    dist.destroy_process_group()


# -- the run ----------------------------------------------------------------------------------------


def run(
    job: Job,
    *,
    distributed: bool | None = None,
    shard: str | Shard | None = None,
    checkpoint: str | Path | Checkpoint | None = None,
    progress: bool = True,
) -> Partial:
    """Walk ``job``'s global list (see the module docstring) and return the merged state.

    Under a process group every rank takes its share and gets the merged state of all; with
    ``shard`` only that share is computed (no process group allowed); with ``checkpoint`` the state
    is saved at intervals and work already saved there is not done again.

    Raises:
        CnnlensError: a bad shard or checkpoint, processes that disagree on the images, model or
            settings, or an error in any rank (named by rank).
    """
    part = Shard.parse(shard) if shard is not None else None
    saving = Checkpoint.of(checkpoint)
    if job.n_items is None:
        return _run_stream(job, part, saving, distributed, progress)
    group = process_group(distributed)
    if part is not None and group.world > 1:
        raise CnnlensError(f"shard: a process group of {group.world} already shares the work; use shard= without torchrun", param="shard")
    n, size = job.n_items, job.batch_size
    n_batches = math.ceil(n / size)
    settings = job.settings() if (group.world > 1 or part is not None or saving is not None) else {}

    # every rank agrees on the settings; rank 0 reads the checkpoint and says what is done
    prior, error = None, None
    if group.main and saving is not None:
        try:
            prior = _prior(saving, job.kind, settings, n, size, part)
        except CnnlensError as exc:
            error = exc
    hello = group.all_gather({"settings": fingerprint(settings), "done": prior.done if prior else [], "error": str(error) if error else None})
    if error is not None:
        raise error
    if hello[0]["error"]:
        raise CnnlensError(f"rank 0: {hello[0]['error']}")
    differ = [r for r, h in enumerate(hello) if h["settings"] != hello[0]["settings"]]
    if differ:
        mine = group.all_gather(settings)
        key = _difference(mine[differ[0]], mine[0])
        raise CnnlensError(
            f"rank {differ[0]} and rank 0 disagree: {_describe(key or 'settings')}; every process must see the same images, model and options"
        )
    done_before = set(_batches_in(hello[0]["done"]))

    scope = range(n_batches) if part is None else split(n_batches, part.index, part.count)
    todo = [b for b in scope if b not in done_before]
    shares = [todo[s.start : s.stop] for s in (split(len(todo), r, group.world) for r in range(group.world))]
    mine = shares[group.rank]
    items = [i for b in mine for i in range(b * size, min(n, (b + 1) * size))]
    steps = max(len(s) for s in shares)

    def partial(state: Any, done: Iterable[int]) -> Partial:
        return Partial(job.kind, settings, n, size, batch_ranges(done), state, part)

    desc = job.desc if group.world == 1 else f"{job.desc} (rank 0 of {group.world})"
    show = progress and group.main
    if show and done_before:
        where = saving.path if saving is not None else ""
        print(f"{job.desc}: resuming from {where}: {len(set(scope) & done_before)} of {len(scope)} batches done", file=sys.stderr, flush=True)
    state = job.empty()
    done_mine: list[int] = []
    failure: BaseException | None = None
    failed = False
    last_save = time.monotonic()
    with progress_bar(job.work(len(items), len(mine)), desc, enabled=show, unit=job.unit) as bar:
        stepper = job.steps(state, items, bar)
        try:
            for step in range(steps):
                if step < len(mine) and failure is None:
                    try:
                        next(stepper)
                        done_mine.append(mine[step])
                    except Exception as exc:  # noqa: BLE001 - every rank reports it below
                        failure = exc
                due = saving is not None and group.main and time.monotonic() - last_save >= saving.every
                failed, due = group.any(failure is not None, due)
                if failed:
                    break
                if due:
                    _save(group, saving, prior, partial(state, done_mine), partial)  # type: ignore[arg-type]
                    last_save = time.monotonic()
        finally:
            stepper.close()  # the job's context managers (eval mode, reader threads) end here
        kept = ""
        if failed and saving is not None and (group.world > 1 or done_mine):
            _save(group, saving, prior, partial(state, done_mine), partial)  # what was done is kept for the next run
            kept = f" (the work done is saved in {saving.path}: run again to continue)"
        if failure is not None and group.world == 1:
            if isinstance(failure, CnnlensError) and kept:
                raise CnnlensError(f"{failure}{kept}", param=failure.param) from None
            raise failure
        if failed:
            bar.close(failed=True)
    # every rank gets the merged state of all (and of the checkpoint, through rank 0)
    started = time.perf_counter()
    own = partial(state, done_mine)
    if group.main and prior is not None:
        own = _merged([prior, own], partial)
    shared = group.all_gather({"part": own.to_dict() if failure is None else None, "error": None if failure is None else _message(failure)})
    errors = [(r, s["error"]) for r, s in enumerate(shared) if s["error"]]
    if errors:
        if failure is not None:
            raise failure
        rank, message = errors[0]
        raise CnnlensError(f"rank {rank}: {message}{kept}")
    if group.world > 1:
        own = _merged([_partial_from_dict(s["part"], f"rank {r}") for r, s in enumerate(shared)], partial)
        if show:
            print(f"{job.desc}: gathered and merged the states of {group.world} processes in {time.perf_counter() - started:.3f} s",
                  file=sys.stderr, flush=True)  # fmt: skip
    if saving is not None and group.main:
        own.save(saving.path, overwrite=True)
    return own


def _message(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text if isinstance(exc, CnnlensError) else f"{type(exc).__name__}: {text}"


def _merged(parts: Sequence[Partial], make: Any) -> Partial:
    state = copy.deepcopy(parts[0].state)
    for p in parts[1:]:
        state.merge(p.state)
    return make(state, [b for p in parts for b in _batches_in(p.done)])


def _save(group: Group, saving: Checkpoint, prior: Partial | None, own: Partial, make: Any) -> None:
    if group.world == 1:
        loaded = [own]
    else:
        parts = group.gather(own.to_dict())
        if parts is None:  # not rank 0
            return
        loaded = [_partial_from_dict(p, f"rank {r}") for r, p in enumerate(parts)]
    _merged(([prior] if prior is not None else []) + loaded, make).save(saving.path, overwrite=True)


def _run_stream(job: Job, part: Shard | None, saving: Checkpoint | None, distributed: bool | None, progress: bool) -> Partial:
    """A job over a stream (no random access): run as given, in this process."""
    if part is not None or saving is not None or distributed:
        what = "shard" if part is not None else "checkpoint" if saving is not None else "distributed"
        raise CnnlensError(f"{what} needs a list of images (a folder or a list), not a stream of batches", param=what)
    state = job.empty()
    with progress_bar(job.work(0, 0), job.desc, enabled=progress and is_main(), unit=job.unit) as bar:
        stepper = job.steps(state, None, bar)
        try:
            for _ in stepper:
                pass
        finally:
            stepper.close()
    return Partial(job.kind, {}, 0, job.batch_size, [], state, None)


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
        for b in _batches_in(p.done):
            if b in owner:
                raise CnnlensError(f"{owner[b]} and {name} both hold batch {b} (images {b * p.batch_size}...): give each share once")
            owner[b] = name
    missing = batch_ranges(set(range(first.n_batches)) - set(owner))
    if missing:
        unfinished = [name for name, p in loaded if not p.complete]
        gaps = ", ".join(f"{a * first.batch_size}..{min(first.n_items, b * first.batch_size) - 1}" for a, b in missing[:3])
        hint = f"; unfinished: {', '.join(unfinished)} (run them again to finish)" if unfinished else "; a share is missing"
        raise CnnlensError(f"the parts do not cover images {gaps} of {first.n_items}{hint}")
    state = copy.deepcopy(first.state)
    for _, p in loaded[1:]:
        state.merge(p.state)
    return type(first.state).result(first.settings, state)
