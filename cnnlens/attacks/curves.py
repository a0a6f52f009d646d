"""Accuracy against ε: the robustness curve of a model under FGSM, iterative FGSM and PGD.

For each batch the clean predictions are computed once. FGSM's direction ``sign(grad)`` does not
depend on ε, so one backward pass serves every ε of the grid (one forward per ε after it); the
iterative attacks run their steps for each ε. Labels are the true labels (no label leaking).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..checks import check_int
from ..errors import CnnlensError
from ..hooks import eval_mode
from ..pixels import Preprocessing
from ..progress import progress_bar
from ..registry import ModelInfo, model_device, model_info
from ..results import Result
from .core import check_attacks, check_eps, check_step_size, class_logits, loss_gradient, pgd_steps, pixel_net
from .datasets import LabelledImages, batches, labelled_folder

__all__ = ["DEFAULT_EPS", "Curve", "RobustnessComparison", "RobustnessResult", "compare_robustness", "robustness"]

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

    def table(self) -> str:
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

    def text(self) -> str:
        return self.table()

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

    def table(self) -> str:
        return "\n\n".join(r.table() for r in self.results)

    def text(self) -> str:
        return self.table()

    def figure(self, *, on_correct: bool = True, title: str | None = None) -> Any:
        from .plots import plot_robustness

        return plot_robustness(self.results, on_correct=on_correct, title=title)


def _dataset(
    data: Any, prep: Preprocessing, *, labels: str | Path | None, limit: int | None, batch_size: int
) -> tuple[Iterable[tuple[torch.Tensor, torch.Tensor]], int | None, dict[str, Any]]:
    """``data`` as batches, their number (if known) and a description with the notes on left-out files."""

    def fit(image: torch.Tensor) -> torch.Tensor:
        return prep.prepare(image.unsqueeze(0), fit="crop")[0]

    if isinstance(data, (str, Path)):
        data = labelled_folder(data, labels=labels, limit=limit)
    elif labels is not None:
        raise CnnlensError("labels is for a folder given as data, not for images already labelled", param="labels")
    if isinstance(data, LabelledImages):
        if limit is not None and data is not None and len(data) > limit:
            data = data.subset(slice(0, limit))
        if data.transform is None:
            data = data.with_transform(fit)
        info = {**data.to_dict(), "notes": data.notes()}
        return batches(data, batch_size), math.ceil(len(data) / batch_size), info
    if isinstance(data, torch.Tensor) or not isinstance(data, Iterable):
        raise CnnlensError(
            f"data must be a folder, a LabelledImages or an iterable of (images, labels) batches, not {type(data).__name__}", param="data"
        )
    total = len(data) if hasattr(data, "__len__") else None  # type: ignore[arg-type]
    return data, total, {"source": type(data).__name__}


def robustness(
    model: nn.Module,
    data: Any,
    *,
    eps: Sequence[float] = DEFAULT_EPS,
    attacks: str | Sequence[str] = ("fgsm",),
    steps: int = 10,
    step_size: float | None = None,
    labels: str | Path | None = None,
    limit: int | None = None,
    batch_size: int = 64,
    preprocessing: Preprocessing | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> RobustnessResult:
    """Accuracy of ``model`` against ε for each attack, on all images and on the originally correct ones.

    Args:
        model: a classifier as created (``cnnlens.create_model``) or any ``nn.Module`` returning logits;
            its normalization is applied inside.
        data: a labelled folder (class subfolders, a flat folder with a labels CSV, or MNIST IDX files:
            see :func:`cnnlens.attacks.labelled_folder`; images are prepared as the model's weights
            expect), a :class:`~cnnlens.attacks.LabelledImages`, or an iterable of ``(images, labels)``
            batches of pixels in [0, 1] at the model's input size (a ``DataLoader``).
        eps: the ε grid in pixel units (each in [0, 1]).
        attacks: any of ``fgsm``, ``ifgsm`` (iterative FGSM / BIM, no random start) and ``pgd``
            (uniform random start drawn with ``generator``).
        steps, step_size: of the iterative attacks; ``step_size`` defaults to ``2.5 * eps / steps``.
        labels: a labels CSV for a folder (default ``DIR/labels.csv``); ``limit``: the first N images.
        batch_size: images per batch for a folder.
        progress: a bar on a terminal, a line every 10 s elsewhere (stderr).

    Returns:
        A :class:`RobustnessResult`; ``result["fgsm"].accuracy[i]`` is the accuracy at ``eps[i]``.
        With ``progress``, labelled files absent from a folder and images without a label are also
        reported on stderr before the work starts.
    """
    return _evaluate(model, data, eps=eps, attacks=attacks, steps=steps, step_size=step_size, labels=labels, limit=limit,
                     batch_size=batch_size, preprocessing=preprocessing, generator=generator, progress=progress, say_notes=progress)


def _evaluate(
    model: nn.Module,
    data: Any,
    *,
    eps: Sequence[float],
    attacks: str | Sequence[str],
    steps: int,
    step_size: float | None,
    labels: str | Path | None,
    limit: int | None,
    batch_size: int,
    preprocessing: Preprocessing | None,
    generator: torch.Generator | None,
    progress: bool,
    say_notes: bool,
) -> RobustnessResult:
    grid = [check_eps(e) for e in ([eps] if isinstance(eps, (int, float)) else list(eps))]
    if not grid:
        raise CnnlensError("eps is empty; give at least one value such as 0 or 8/255", param="eps")
    names = check_attacks(attacks)
    steps = check_int(steps, "steps", low=1, high=100_000)
    alpha = check_step_size(step_size)
    batch_size = check_int(batch_size, "batch_size", low=1)
    if limit is not None:
        limit = check_int(limit, "limit", low=1)
    info = model_info(model, preprocessing=preprocessing)
    batches_, total, description = _dataset(data, info.preprocessing, labels=labels, limit=limit, batch_size=batch_size)
    if say_notes:
        for note in description.get("notes", []):
            print(f"robustness: {note}", file=sys.stderr, flush=True)
    device = model_device(model)
    n = n_correct = 0
    still = {a: [0] * len(grid) for a in names}
    still_on_correct = {a: [0] * len(grid) for a in names}
    # progress counts gradient steps (FGSM: one per batch; ifgsm/pgd: steps per nonzero eps): a PGD batch can take a minute
    per_batch = ("fgsm" in names and any(grid)) + sum(steps * sum(1 for e in grid if e) for a in names if a != "fgsm")
    with eval_mode(model), progress_bar(None if total is None else total * per_batch, "robustness", enabled=progress, unit="gradient steps") as bar:
        net = pixel_net(model, info.preprocessing, fold=True)  # the same function, faster; folded once for every batch and attack
        for x, y in batches_:
            x = torch.as_tensor(x).detach().to(device).float()
            if x.numel() and (float(x.min()) < -1e-3 or float(x.max()) > 1 + 1e-3):
                raise CnnlensError("data must be pixels in [0, 1]; cnnlens normalizes for the model itself", param="data")
            x = info.preprocessing.convert_channels(x.clamp(0, 1))
            y = torch.as_tensor(y, device=device).long().reshape(-1)
            with torch.no_grad():
                logits = class_logits(net, x)
            if y.numel() and (int(y.min()) < 0 or int(y.max()) >= logits.shape[1]):
                raise CnnlensError(f"data: labels {int(y.min())}..{int(y.max())} outside the model's {logits.shape[1]} classes", param="data")
            clean_ok = logits.argmax(1) == y
            n += y.numel()
            n_correct += int(clean_ok.sum())
            sign = None
            for name in names:
                for i, e in enumerate(grid):
                    if e == 0:
                        ok = clean_ok
                    elif name == "fgsm":
                        if sign is None:
                            sign = loss_gradient(net, x, y).sign_()
                            bar.update(1, images=n, clean_accuracy=n_correct / max(n, 1))
                        with torch.no_grad():
                            ok = class_logits(net, (x + e * sign).clamp_(0, 1)).argmax(1) == y
                    else:
                        a = 2.5 * e / steps if alpha is None else alpha
                        adv = pgd_steps(net, x, y, eps=e, step_size=a, steps=steps, random_start=name == "pgd", generator=generator,
                                        on_step=lambda: bar.update(1, images=n, clean_accuracy=n_correct / max(n, 1)))
                        with torch.no_grad():
                            ok = class_logits(net, adv).argmax(1) == y
                    still[name][i] += int(ok.sum())
                    still_on_correct[name][i] += int((ok & clean_ok).sum())
    if n == 0:
        raise CnnlensError("data holds no images to evaluate", param="data")
    curves = {
        a: Curve(
            a,
            accuracy=[c / n for c in still[a]],
            accuracy_on_correct=[c / n_correct if n_correct else math.nan for c in still_on_correct[a]],
            correct=still[a],
        )
        for a in names
    }
    return RobustnessResult(info, grid, n, n_correct, curves, steps=steps, step_size=alpha, data=description)


def compare_robustness(
    models: Sequence[nn.Module] | Mapping[str, nn.Module],
    data: Any,
    **kwargs: Any,
) -> RobustnessComparison:
    """:func:`robustness` of several models (a normally and an adversarially trained one) on the same
    images and settings, one plot. ``kwargs`` are those of :func:`robustness`; a ``generator`` is
    re-seeded from one draw so that every model gets the same PGD random starts."""
    items = list(models.values()) if isinstance(models, Mapping) else list(models)
    if not items or not all(isinstance(m, nn.Module) for m in items):
        raise CnnlensError("models must be a non-empty list of models", param="models")
    generator = kwargs.pop("generator", None)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device)) if generator is not None else None
    options: dict[str, Any] = {
        "eps": DEFAULT_EPS, "attacks": ("fgsm",), "steps": 10, "step_size": None, "labels": None, "limit": None,
        "batch_size": 64, "preprocessing": None, "progress": True,
    }
    unknown = set(kwargs) - set(options)
    if unknown:
        raise TypeError(f"compare_robustness() got unexpected keyword arguments {sorted(unknown)}")
    options.update(kwargs)
    results = []
    for i, m in enumerate(items):
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        results.append(_evaluate(m, data, generator=g, say_notes=bool(options["progress"]) and i == 0, **options))
    return RobustnessComparison(results)
