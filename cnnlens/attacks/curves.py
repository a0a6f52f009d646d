"""Accuracy against ε: the robustness curve of a model under FGSM, iterative FGSM and PGD.

For each batch the clean predictions are computed once. FGSM's direction ``sign(grad)`` does not
depend on ε, so one backward pass serves every ε of the grid (one forward per ε after it); the
iterative attacks run their steps for each ε. Labels are the true labels (no label leaking).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .. import seeds
from ..checks import check_int
from ..distributed import Job, Partial, Sharding, fingerprint, is_main, model_fingerprint, model_info_from_json, model_info_to_json, register_state, run

from ..seeds import item_generator
from ..errors import CnnlensError
from ..folders import LabelledImages, batches, labelled_folder, spread
from ..hooks import eval_mode
from ..layers import model_device
from ..pixelnet import class_logits, pixel_net
from ..pixels import Preprocessing
from ..registry import ModelInfo, model_info
from ..results import Result
from .core import check_attacks, check_eps, check_step_size, loss_gradient, pgd_steps

__all__ = [
    "DEFAULT_EPS",
    "Curve",
    "RobustnessComparison",
    "RobustnessResult",
    "RobustnessSetup",
    "RobustnessState",
    "compare_robustness",
    "robustness",
]

DEFAULT_EPS = (0.0, 1 / 255, 2 / 255, 4 / 255, 8 / 255)


@dataclass
class Curve:
    """One attack's accuracy at each ε: on all images, and on the images the model got right unattacked."""

    attack: str
    accuracy: list[float]
    accuracy_on_correct: list[float]
    correct: list[int]  # images still correct at each eps (all images)

    @property
    def flipped(self) -> list[float]:
        """Share of the originally correct images that the attack flips, at each ε."""
        return [1 - a if not math.isnan(a) else math.nan for a in self.accuracy_on_correct]

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "accuracy_on_correct": self.accuracy_on_correct, "flipped": self.flipped, "correct": self.correct}


@dataclass(repr=False)
class RobustnessResult(Result):
    """Accuracy against ε of one model; ``result["fgsm"].accuracy[i]`` is the accuracy at ``eps[i]``.

    ``data`` says where the images came from and how many labelled files were absent or images
    had no label (``absent_labelled``, ``unlabelled``).
    """

    info: ModelInfo
    eps: list[float]
    n: int
    n_correct: int
    curves: dict[str, Curve]
    steps: int = 10
    step_size: float | None = None  # None: 2.5 * eps / steps for every eps
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def clean_accuracy(self) -> float:
        return self.n_correct / self.n if self.n else math.nan

    @property
    def label(self) -> str:
        """Model and weights, for legends: ``"mnist-cnn (mnist_lenet5_advtrained.pt)"``."""
        return self.info.label

    def __getitem__(self, attack: str) -> Curve:
        return self.curves[check_attacks([attack], "attack")[0]]

    def notes(self) -> list[str]:
        """Lines about the data: labelled files absent, images without a label."""
        return list(self.data.get("notes", []))

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.data.items() if k != "notes"}
        return {
            **self.info.to_dict(),
            "data": data,
            "n": self.n,
            "n_correct": self.n_correct,
            "clean_accuracy": self.clean_accuracy,
            "eps": self.eps,
            "attacks": list(self.curves),
            "steps": self.steps,
            "step_size": self.step_size,
            "curves": {name: c.to_dict() for name, c in self.curves.items()},
        }

    def _summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.label, "n": self.n, "clean_accuracy": self.clean_accuracy}
        for name, c in self.curves.items():
            out[f"{name} at eps={self.eps[-1]:.4g}"] = c.accuracy[-1]
        return out

    def to_text(self) -> str:
        """The accuracy table: one row per ε, all images and the originally correct ones per attack."""
        from .plots import format_eps

        lines = [f"{self.label}: {self.n} images, clean accuracy {100 * self.clean_accuracy:.1f} % ({self.n_correct} correct)"]
        lines.append("eps".ljust(8) + "".join(f"{a.upper() + ' all':>12}{a.upper() + ' correct':>16}" for a in self.curves))
        for i, e in enumerate(self.eps):
            cells = [format_eps(e).ljust(8)]
            for c in self.curves.values():
                on_correct = "n/a" if math.isnan(c.accuracy_on_correct[i]) else f"{100 * c.accuracy_on_correct[i]:.1f} %"
                cells.append(f"{100 * c.accuracy[i]:10.1f} %{on_correct:>16}")
            lines.append("".join(cells))
        return "\n".join(lines)

    def figure(self, *, on_correct: bool = True, title: str | None = None) -> Any:
        """Accuracy against ε (solid: all images; dashed: the originally correct ones)."""
        from .plots import plot_robustness

        return plot_robustness(self, on_correct=on_correct, title=title)


@dataclass(repr=False)
class RobustnessComparison(Result):
    """Several models (or weights) on the same images: one :class:`RobustnessResult` each."""

    results: list[RobustnessResult]

    def __getitem__(self, index: int) -> RobustnessResult:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    def notes(self) -> list[str]:
        return self.results[0].notes() if self.results else []

    def to_dict(self) -> dict[str, Any]:
        return {"results": [r.to_dict() for r in self.results]}

    def _summary(self) -> dict[str, Any]:
        return {r.label: r.clean_accuracy for r in self.results}

    def to_text(self) -> str:
        """The accuracy table of each model, one after the other."""
        return "\n\n".join(r.to_text() for r in self.results)

    def figure(self, *, on_correct: bool = True, title: str | None = None) -> Any:
        from .plots import plot_robustness

        return plot_robustness(self.results, on_correct=on_correct, title=title)


def _dataset(data: Any, *, limit: int | None) -> tuple[Any, int | None, dict[str, Any]]:
    """``data`` as a :class:`LabelledImages` (or an iterable of batches, a stream), its number of
    images (None for a stream) and a description with the notes on left-out files."""
    if isinstance(data, (str, Path)):
        data = labelled_folder(data, limit=limit)
    if isinstance(data, LabelledImages):
        if limit is not None and len(data) > limit:
            data = data.subset(spread(len(data), limit))
        return data, len(data), {**data.to_dict(), "notes": data.notes()}
    if isinstance(data, torch.Tensor) or not isinstance(data, Iterable):
        raise CnnlensError(
            f"data must be a folder, a LabelledImages or an iterable of (images, labels) batches, not {type(data).__name__}", param="data"
        )
    return data, None, {"source": type(data).__name__}


def robustness(
    model: nn.Module,
    data: Any,
    *,
    eps: Sequence[float] = DEFAULT_EPS,
    attacks: str | Sequence[str] = ("fgsm",),
    steps: int = 10,
    step_size: float | None = None,
    limit: int | None = None,
    batch_size: int = 64,
    preprocessing: Preprocessing | None = None,
    seed: int | None = None,
    progress: bool = True,
    sharding: Sharding | None = None,
) -> RobustnessResult | Partial:
    """Accuracy of ``model`` against ε for each attack, on all images and on the originally correct ones.

    Args:
        model: a classifier as created (``cnnlens.create_model``) or any ``nn.Module`` returning logits;
            its normalization is applied inside.
        data: a labelled folder (class subfolders, a flat folder with ``labels.csv``, or MNIST IDX
            files; images are prepared as the model's weights expect), a
            :class:`~cnnlens.folders.LabelledImages` (:func:`cnnlens.folders.labelled_folder`, which
            also takes a labels CSV kept elsewhere), or an iterable of ``(images, labels)``
            batches of pixels in [0, 1] at the model's input size (a ``DataLoader``; evaluated as
            given, in this process).
        eps: the ε grid in pixel units (each in [0, 1]).
        attacks: any of ``fgsm``, ``ifgsm`` (iterative FGSM / BIM, no random start) and ``pgd``
            (uniform random start; image i of the list draws it from a seed made of one draw from
            ``seed`` and i, so it does not depend on batches or processes).
        steps, step_size: of the iterative attacks; ``step_size`` defaults to ``2.5 * eps / steps``.
        limit: that many images, spread evenly over the sorted list (:func:`cnnlens.folders.spread`).
        seed: draws PGD's random starts (``None``: torch's global generator).
        batch_size: images per batch for a folder.
        progress: a bar on a terminal, a line every 10 s elsewhere (stderr).
        sharding: :class:`~cnnlens.distributed.Sharding`: under torchrun each process evaluates its
            share and every process gets the summed counts (``distributed``); ``shard="I/N"``
            evaluates one share and returns its :class:`~cnnlens.distributed.Partial` state
            (:func:`cnnlens.distributed.merge` sums the parts); ``checkpoint`` saves and resumes.

    Returns:
        A :class:`RobustnessResult`; ``result["fgsm"].accuracy[i]`` is the accuracy at ``eps[i]``.
        With ``progress``, labelled files absent from a folder and images without a label are also
        reported on stderr before the work starts.
    """
    return _evaluate([model], data, compare=False, eps=eps, attacks=attacks, steps=steps, step_size=step_size, limit=limit,
                     batch_size=batch_size, preprocessing=preprocessing, seed=seed, progress=progress,
                     sharding=sharding)  # type: ignore[return-value]


@dataclass(frozen=True)
class RobustnessSetup:
    """What a robustness run needs to turn its counts into results; as JSON, part of the settings
    every share of the run must agree on."""

    infos: list[ModelInfo]
    eps: list[float]
    attacks: list[str]
    steps: int
    step_size: float | None
    data: dict[str, Any]
    compare: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "models": [model_info_to_json(i) for i in self.infos], "eps": self.eps, "attacks": self.attacks, "steps": self.steps,
            "step_size": self.step_size, "data": self.data, "compare": self.compare,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RobustnessSetup:
        return cls(
            infos=[model_info_from_json(i) for i in data["models"]], eps=[float(e) for e in data["eps"]],
            attacks=[str(a) for a in data["attacks"]], steps=int(data["steps"]),
            step_size=None if data["step_size"] is None else float(data["step_size"]), data=dict(data["data"]),
            compare=bool(data["compare"]),
        )  # fmt: skip

    def result(self, state: RobustnessState) -> RobustnessResult | RobustnessComparison:
        results = []
        for m, info in enumerate(self.infos):
            n, n_correct = state.n[m], state.n_correct[m]
            if n == 0:
                raise CnnlensError("data holds no images to evaluate", param="data")
            curves = {
                a: Curve(
                    a,
                    accuracy=[c / n for c in state.still[m][a]],
                    accuracy_on_correct=[c / n_correct if n_correct else math.nan for c in state.still_on_correct[m][a]],
                    correct=list(state.still[m][a]),
                )
                for a in self.attacks
            }
            results.append(RobustnessResult(info, list(self.eps), n, n_correct, curves, steps=self.steps, step_size=self.step_size, data=dict(self.data)))
        return RobustnessComparison(results) if self.compare else results[0]


@register_state("robustness")
class RobustnessState:
    """The mergeable state of a robustness run (:mod:`cnnlens.distributed`): per model the images,
    the clean correct ones, and per attack and ε those still correct (of all, of the clean correct)."""

    def __init__(self, models: int, attacks: Sequence[str], n_eps: int) -> None:
        self.n = [0] * models
        self.n_correct = [0] * models
        self.still = [{a: [0] * n_eps for a in attacks} for _ in range(models)]
        self.still_on_correct = [{a: [0] * n_eps for a in attacks} for _ in range(models)]

    def merge(self, other: RobustnessState) -> None:
        if len(other.n) != len(self.n):
            raise CnnlensError(f"cannot merge counts of {len(other.n)} models into {len(self.n)}")
        for m in range(len(self.n)):
            self.n[m] += other.n[m]
            self.n_correct[m] += other.n_correct[m]
            for mine, theirs in ((self.still[m], other.still[m]), (self.still_on_correct[m], other.still_on_correct[m])):
                for a in mine:
                    mine[a] = [x + y for x, y in zip(mine[a], theirs[a])]

    def to_json(self) -> dict[str, Any]:
        return {"n": self.n, "n_correct": self.n_correct, "still": self.still, "still_on_correct": self.still_on_correct}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RobustnessState:
        out = cls(0, (), 0)
        out.n, out.n_correct = [int(v) for v in data["n"]], [int(v) for v in data["n_correct"]]
        out.still = [{str(a): [int(v) for v in c] for a, c in d.items()} for d in data["still"]]
        out.still_on_correct = [{str(a): [int(v) for v in c] for a, c in d.items()} for d in data["still_on_correct"]]
        return out

    @classmethod
    def result(cls, settings: dict[str, Any], state: RobustnessState) -> RobustnessResult | RobustnessComparison:
        return RobustnessSetup.from_json(settings["setup"]).result(state)


def _robustness_job(models: Sequence[nn.Module], setup: RobustnessSetup, data: Any, n_items: int | None, batch_size: int, seed: int | None) -> Job:
    """The evaluation of :func:`robustness` as a :class:`cnnlens.distributed.Job`: one
    :class:`RobustnessState` and one step function; each batch is prepared once per preprocessing and
    evaluated by every model."""
    models = list(models)
    grid = setup.eps
    # progress counts gradient steps (FGSM: one per batch; ifgsm/pgd: steps per nonzero eps): a PGD batch can take a minute
    per_batch = ("fgsm" in setup.attacks and any(grid)) + sum(setup.steps * sum(1 for e in grid if e) for a in setup.attacks if a != "fgsm")

    def settings() -> dict[str, Any]:
        images = fingerprint([str(p) for p in data.paths] if data.paths is not None else data.tensors, data.labels)
        return {"setup": setup.to_json(), "images_sha256": images, "models_sha256": [model_fingerprint(m) for m in models],
                "pgd_seed": seed}  # fmt: skip

    def empty() -> RobustnessState:
        return RobustnessState(len(models), setup.attacks, len(setup.eps))

    def work(n: int, n_batches: int) -> int | None:
        if n_items is None:
            batches_ = len(data) if hasattr(data, "__len__") else None
            return None if batches_ is None else batches_ * per_batch * len(models)
        return n_batches * per_batch * len(models)

    def steps(state: RobustnessState, items: Sequence[int] | None, bar: Any) -> Iterator[None]:
        names, n_steps, alpha = setup.attacks, setup.steps, setup.step_size
        random_start = "pgd" in names and any(grid)
        with ExitStack() as stack:
            for m in models:
                stack.enter_context(eval_mode(m))
            # the same function, faster: each model with its BatchNorms folded, once for every batch and attack
            nets = [pixel_net(m, info.preprocessing, fold=True) for m, info in zip(models, setup.infos)]
            devices = [model_device(m) for m in models]
            for index, pairs in _labelled_batches(data, items, setup, batch_size):
                starts: dict[tuple[int, ...], torch.Tensor] = {}  # random starts per input shape (models of other sizes)
                batch = empty()  # counted apart and added once the batch is whole: a failed batch leaves no trace
                for m, (net, device, (x, y)) in enumerate(zip(nets, devices, pairs)):
                    x, y = x.to(device), y.to(device)
                    noise = None
                    if random_start and seed is not None:
                        shape = tuple(x.shape[1:])
                        if shape not in starts:
                            starts[shape] = _start_noise(seed, index, shape)
                        noise = starts[shape]
                    _evaluate_batch(batch, state, m, net, x, y, grid, names, n_steps, alpha, noise, bar)
                state.merge(batch)
                yield

    return Job(kind="robustness", n_items=n_items, batch_size=batch_size, settings=settings, empty=empty, steps=steps,
               desc="robustness", unit="gradient steps", work=work)  # fmt: skip


def _labelled_batches(
    data: Any, items: Sequence[int] | None, setup: RobustnessSetup, batch_size: int
) -> Iterator[tuple[list[int], list[tuple[torch.Tensor, torch.Tensor]]]]:
    """``(global indices, [(x, y) for each model])`` per batch."""
    preps = [info.preprocessing for info in setup.infos]
    if items is None:  # a stream: the position in it is the global index
        start = 0
        for x, y in data:
            x = torch.as_tensor(x).detach().float()
            if x.numel() and (float(x.min()) < -1e-3 or float(x.max()) > 1 + 1e-3):
                raise CnnlensError("data must be pixels in [0, 1]; cnnlens normalizes for the model itself", param="data")
            y = torch.as_tensor(y).long().reshape(-1)
            yield list(range(start, start + len(y))), [(p.convert_channels(x.clamp(0, 1)), y) for p in preps]
            start += len(y)
        return
    subset = data.subset(items)
    groups: dict[str, Any] = {}  # one reading per distinct preprocessing
    for p in preps:
        key = json.dumps(p.to_dict(), sort_keys=True)
        if key not in groups:
            groups[key] = batches(subset if subset.transform is not None else subset.with_transform(_fit(p)), batch_size)
    keys = [json.dumps(p.to_dict(), sort_keys=True) for p in preps]
    done = 0
    while done < len(items):
        read = {key: next(it) for key, it in groups.items()}
        count = len(next(iter(read.values()))[1])
        yield list(items[done : done + count]), [(p.convert_channels(read[key][0].float().clamp(0, 1)), read[key][1]) for p, key in zip(preps, keys)]
        done += count


def _evaluate_batch(state: RobustnessState, before: RobustnessState, m: int, net: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    grid: list[float], names: list[str], steps: int, alpha: float | None, noise: torch.Tensor | None, bar: Any) -> None:  # fmt: skip
    """Count one batch of model ``m`` into ``state`` (``before``: the counts so far, for progress)."""
    with torch.no_grad():
        logits = class_logits(net, x)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
        raise CnnlensError(f"data: labels {int(y.min())}..{int(y.max())} outside the model's {logits.shape[1]} classes", param="data")
    clean_ok = logits.argmax(1) == y
    state.n[m] += y.numel()
    state.n_correct[m] += int(clean_ok.sum())

    def tick() -> None:
        n = before.n[m] + state.n[m]
        bar.update(1, images=n, clean_accuracy=(before.n_correct[m] + state.n_correct[m]) / max(n, 1))

    sign = None
    for name in names:
        for i, e in enumerate(grid):
            if e == 0:
                ok = clean_ok
            elif name == "fgsm":
                if sign is None:
                    sign = loss_gradient(net, x, y).sign_()
                    tick()
                with torch.no_grad():
                    ok = class_logits(net, (x + e * sign).clamp_(0, 1)).argmax(1) == y
            else:
                a = 2.5 * e / steps if alpha is None else alpha
                adv = pgd_steps(net, x, y, eps=e, step_size=a, steps=steps, random_start=name == "pgd", noise=noise, on_step=tick)
                with torch.no_grad():
                    ok = class_logits(net, adv).argmax(1) == y
            state.still[m][name][i] += int(ok.sum())
            state.still_on_correct[m][name][i] += int((ok & clean_ok).sum())


def _fit(prep: Preprocessing) -> Any:
    """The transform that prepares one image as ``prep``'s weights expect (resize, centre crop, channels)."""

    def fit(image: torch.Tensor) -> torch.Tensor:
        return prep.prepare(image.unsqueeze(0), fit="crop")[0]

    return fit


def _start_noise(seed: int, index: Sequence[int], shape: tuple[int, ...]) -> torch.Tensor:
    """PGD's uniform random-start draws for the images ``index`` of the global list: image i draws
    from its own generator (:func:`cnnlens.seeds.item_generator`), so its start is the same in
    any batch, process or resumed run."""
    return torch.stack([torch.rand(shape, generator=item_generator(seed, i)) for i in index]) if index else torch.empty(0, *shape)


def _evaluate(
    models: Sequence[nn.Module],
    data: Any,
    *,
    compare: bool,
    eps: Sequence[float],
    attacks: str | Sequence[str],
    steps: int,
    step_size: float | None,
    limit: int | None,
    batch_size: int,
    preprocessing: Preprocessing | None,
    seed: int | None,
    progress: bool,
    sharding: Sharding | None,
) -> RobustnessResult | RobustnessComparison | Partial:
    grid = [check_eps(e) for e in ([eps] if isinstance(eps, (int, float)) else list(eps))]
    if not grid:
        raise CnnlensError("eps is empty; give at least one value such as 0 or 8/255", param="eps")
    names = check_attacks(attacks)
    steps = check_int(steps, "steps", low=1, high=100_000)
    alpha = check_step_size(step_size)
    batch_size = check_int(batch_size, "batch_size", low=1)
    if limit is not None:
        limit = check_int(limit, "limit", low=1)
    infos = [model_info(m, preprocessing=preprocessing) for m in models]
    items, n_items, description = _dataset(data, limit=limit)
    if progress and is_main():
        for note in description.get("notes", []):
            print(f"robustness: {note}", file=sys.stderr, flush=True)
    generator = seeds.generator(seed)
    base = None
    if "pgd" in names and any(grid):  # one draw: every image's random start comes from it and the image's index
        base = int(torch.randint(0, 2**62, (1,), generator=generator))
    setup = RobustnessSetup(infos, grid, names, steps, alpha, description, compare)
    job = _robustness_job(models, setup, items, n_items, batch_size, base)
    sharding = sharding or Sharding()
    part = run(job, distributed=sharding.distributed, shard=sharding.shard, checkpoint=sharding.checkpoint, progress=progress)
    return part if sharding.shard is not None else setup.result(part.state)


def compare_robustness(
    models: Sequence[nn.Module] | Mapping[str, nn.Module],
    data: Any,
    **kwargs: Any,
) -> RobustnessComparison | Partial:
    """:func:`robustness` of several models (a normally and an adversarially trained one) on the same
    images and settings, one plot. ``kwargs`` are those of :func:`robustness`; every model gets the
    same PGD random starts (drawn per image from one draw from ``seed``). Each batch of images is
    read once and evaluated by every model."""
    items = list(models.values()) if isinstance(models, Mapping) else list(models)
    if not items or not all(isinstance(m, nn.Module) for m in items):
        raise CnnlensError("models must be a non-empty list of models", param="models")
    options: dict[str, Any] = {
        "eps": DEFAULT_EPS, "attacks": ("fgsm",), "steps": 10, "step_size": None, "limit": None,
        "batch_size": 64, "preprocessing": None, "seed": None, "progress": True, "sharding": None,
    }  # fmt: skip
    unknown = set(kwargs) - set(options)
    if unknown:
        raise TypeError(f"compare_robustness() got unexpected keyword arguments {sorted(unknown)}")
    options.update(kwargs)
    return _evaluate(items, data, compare=True, **options)  # type: ignore[return-value]
