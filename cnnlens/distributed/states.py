"""What a share of a folder pass computes: states that merge exactly (:class:`TopK`, :class:`ExactSum`),
the :class:`State` and :class:`Job` protocols, the registry of states each capability fills
(:func:`register_state`), and the fingerprints that tell two runs apart."""

from __future__ import annotations

import copy

import hashlib
import importlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..errors import CnnlensError
from ..progress import Progress
from ..results import Result

# kind of partial state -> the State class that merges and finishes it: each capability registers its own
# (:func:`register_state`), so this module names none of them
_STATES: dict[str, type] = {}

__all__ = ["ExactSum", "Job", "KeyedSum", "State", "TopK", "fingerprint", "model_fingerprint", "model_info_from_json", "model_info_to_json", "register_state"]


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
    from ..pixels import Preprocessing
    from ..registry import ModelInfo

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


class KeyedSum:
    """Per integer key (a class), an :class:`ExactSum` of ``rows`` rows, made when the key is first
    added: exact, order-free sums split by a label (what a unit contributes to each class)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.sums: dict[int, ExactSum] = {}

    def add(self, key: int, values: torch.Tensor) -> None:
        """Add ``(rows, B)`` values under ``key``."""
        self.sums.setdefault(int(key), ExactSum(self.rows)).add(values)

    def add_labelled(self, values: torch.Tensor, keys: torch.Tensor) -> None:
        """Add ``(rows, B)`` values, column ``b`` under ``keys[b]``."""
        keys = keys.reshape(-1).cpu()
        for key in sorted(set(keys.tolist())):
            self.add(key, values[:, keys == key])

    def totals(self) -> dict[int, list[float]]:
        """Per key, each row's sum rounded once to a float."""
        return {k: s.means(1) for k, s in sorted(self.sums.items())}

    def top_shares(self, rows: Sequence[int], top: int = 5) -> dict[int, list[tuple[int, float]]]:
        """Per row of ``rows``, the ``top`` keys with the largest positive sums and each one's share of
        the row's positive total (ties by the smaller key); empty where no sum is positive."""
        totals = self.totals()
        out: dict[int, list[tuple[int, float]]] = {}
        for r in rows:
            per = [(k, v[r]) for k, v in totals.items() if math.isfinite(v[r]) and v[r] > 0]
            whole = sum(v for _, v in per)
            per.sort(key=lambda kv: (-kv[1], kv[0]))
            out[r] = [(k, v / whole) for k, v in per[:top]] if whole > 0 else []
        return out

    def select(self, rows: slice) -> KeyedSum:
        out = KeyedSum(len(range(*rows.indices(self.rows))))
        out.sums = {k: s.select(rows) for k, s in self.sums.items()}
        return out

    def merge(self, other: KeyedSum) -> None:
        for k, s in other.sums.items():
            if k in self.sums:
                self.sums[k].merge(s)
            else:
                self.sums[k] = copy.deepcopy(s)

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "sums": {str(k): s.to_json() for k, s in sorted(self.sums.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyedSum:
        out = cls(int(data["rows"]))
        out.sums = {int(k): ExactSum.from_json(v) for k, v in data["sums"].items()}
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


@dataclass(frozen=True)
class Job:
    """What a capability hands :func:`cnnlens.distributed.run`: its state and its one step function,
    for a walk over a fixed global list of ``n_items`` items (``None``: a stream without random
    access, run as given) in batches of ``batch_size``.

    - ``kind``: the kind its :class:`State` is registered under (:func:`register_state`);
    - ``settings()``: JSON with everything that must agree between processes and parts (the images
      and model fingerprints included) and everything :meth:`State.result` needs (computed only
      when processes, shards or checkpoints need it);
    - ``empty()``: a new state;
    - ``steps(state, items, bar)``: the step function, which processes ``items`` (global indices of
      whole global batches, in order) into ``state`` and yields once after each global batch (a
      generator, so that reading can run ahead across batches);
    - ``work(n_items, n_batches)``: the total of the progress bar, in ``unit`` (None: the items).
    """

    kind: str
    n_items: int | None
    batch_size: int
    settings: Callable[[], dict[str, Any]]
    empty: Callable[[], Any]
    steps: Callable[[Any, Sequence[int] | None, Progress], Iterator[None]]
    desc: str = ""
    unit: str = "img"
    work: Callable[[int, int], int | None] | None = None

    def total(self, n_items: int, n_batches: int) -> int | None:
        """The progress bar's total: ``work(n_items, n_batches)``, or the items when ``work`` is None."""
        return n_items if self.work is None else self.work(n_items, n_batches)


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
