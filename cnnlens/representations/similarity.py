"""Layer-by-layer CKA over a folder of images: :func:`similarity` and its :class:`Similarity` result.

Minibatch CKA (Nguyen, Raghu & Kornblith 2021): for every batch of the global list the HSIC
estimate of every pair of layers (and of every layer with itself) is computed from the batch's Gram
matrices, and the estimates are averaged over batches,

    CKA(a, b) = mean_batches HSIC(K_a, K_b) / sqrt(mean_batches HSIC(K_a, K_a) · mean_batches HSIC(K_b, K_b)).

Memory is the Gram matrices of one batch (``batch_size²`` per layer) whatever the number of images,
and the sums are exact (:class:`cnnlens.distributed.ExactSum`), so processes and shards merge to the
same value as one process. With one batch holding every image the value is the full-batch CKA of
:func:`cnnlens.representations.cka`; with several it averages per-batch estimates: with
``debiased=True`` (the unbiased HSIC estimator) each is unbiased for the population HSIC, whatever
the batch size, which is why Nguyen et al. use it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ..checks import check_int, check_number
from ..distributed import (
    ExactSum,
    Job,
    Partial,
    Sharding,
    fingerprint,
    model_fingerprint,
    register_state,
    run,
)
from ..errors import CnnlensError
from ..folders import select_images
from ..hooks import eval_mode
from ..registry import info_label, model_info
from ..results import Result
from .cka import check_kernel, cka_ratio, gram, hsic_terms, min_examples
from .features import Tap, flat_features, make_tap, read_taps, tap_batches

__all__ = ["Similarity", "SimilarityState", "similarity"]


def similarity(
    model_a: nn.Module,
    images: Any,
    *,
    layers_a: str | Sequence[str] | None = None,
    model_b: nn.Module | None = None,
    layers_b: str | Sequence[str] | None = None,
    kernel: str = "linear",
    threshold: float = 1.0,
    debiased: bool = False,
    batch_size: int = 64,
    limit: int | None = None,
    progress: bool = True,
    sharding: Sharding | None = None,
) -> Similarity | Partial:
    """The CKA matrix between the layers of one model, or of two, over a folder of images.

    Args:
        model_a: a model from :func:`cnnlens.create_model` or any image ``nn.Module``.
        images: a folder, image files or pixels (as :func:`cnnlens.folders.select_images`).
        layers_a: layer names of ``model_a`` (``logits``: its output); default: ten stages spread
            evenly by depth (:func:`cnnlens.default_layers` ``"representations"``).
        model_b: another model (another architecture, other weights, a random initialisation from
            :func:`cnnlens.registry.random_init_like`); ``None``: ``model_a`` itself.
        layers_b: layer names of ``model_b`` (default: its stages; with ``model_b=None``, ``layers_a``).
        kernel: ``"linear"`` or ``"rbf"`` (bandwidth ``threshold`` × the median distance of a batch).
        debiased: the unbiased HSIC estimator in every batch (recommended with many features).
        batch_size: images per batch: the minibatch of the estimate (it must hold at least 4
            images with ``debiased``, 2 otherwise; a shorter last batch is left out and said).
        limit: that many images, spread evenly over the sorted list.
        sharding: torchrun, ``shard="I/N"`` (returns the share's :class:`Partial`) and checkpoints,
            as :class:`cnnlens.distributed.Sharding`.

    Returns:
        :class:`Similarity`: ``matrix`` (layers of ``model_a`` × layers of ``model_b``),
        ``figure()`` (the heatmap), ``to_dict()``, ``to_text()``.

    Example:
        >>> import cnnlens, torch
        >>> model = cnnlens.create_model("squeezenet1_0", seed=0)
        >>> s = cnnlens.similarity(model, torch.rand(8, 3, 64, 64), layers_a=["features.3", "features.5"], progress=False)
        >>> round(s.value("features.3", "features.3"), 6)
        1.0
    """
    kernel = check_kernel(kernel)
    threshold = check_number(threshold, "threshold", low=0.0, low_open=True)
    if not isinstance(debiased, bool):
        raise CnnlensError(f"debiased must be True or False, not {debiased!r}", param="debiased")
    batch_size = check_int(batch_size, "batch_size", low=min_examples(debiased), high=65_536)
    sharding = sharding or Sharding()
    tap_a = make_tap(model_a, layers_a, "layers_a", images=images)
    same = model_b is None or model_b is model_a
    if model_b is None and layers_b is None:
        tap_b = tap_a
    else:
        tap_b = make_tap(model_a if model_b is None else model_b, layers_b, "layers_b", images=images)
    sources = select_images(images, limit)
    n = len(sources)
    last = n - (math.ceil(n / batch_size) - 1) * batch_size
    if n < min_examples(debiased) or (n <= batch_size and last < min_examples(debiased)):
        raise CnnlensError(f"images: CKA needs at least {min_examples(debiased)} images{' (debiased)' if debiased else ''}, got {n}", param="images")
    setup = _Setup(
        layers_a=list(tap_a.layers), layers_b=list(tap_b.layers), info_a=model_info(model_a).to_dict(),
        info_b=model_info(tap_b.model).to_dict(), kernel=kernel, threshold=threshold, debiased=debiased,
        batch_size=batch_size, n_images=n, same_model=same, symmetric=tap_b is tap_a,
    )  # fmt: skip
    part = run(_job(tap_a, tap_b, setup, sources), distributed=sharding.distributed, shard=sharding.shard, checkpoint=sharding.checkpoint, progress=progress)
    if sharding.shard is not None:
        return part
    return setup.result(part.state)


@dataclass(frozen=True)
class _Setup:
    """What a similarity run needs to turn its sums into a :class:`Similarity` (its JSON is part of
    the settings every share must agree on)."""

    layers_a: list[str]
    layers_b: list[str]
    info_a: dict[str, Any]
    info_b: dict[str, Any]
    kernel: str
    threshold: float
    debiased: bool
    batch_size: int
    n_images: int
    same_model: bool
    symmetric: bool

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def rows(self) -> int:
        a, b = len(self.layers_a), len(self.layers_b)
        return a * b + a + b + 1

    @property
    def left_out(self) -> int:
        """Images of a last batch too short for an estimate."""
        last = self.n_images - (math.ceil(self.n_images / self.batch_size) - 1) * self.batch_size
        return last if last < min_examples(self.debiased) else 0

    def result(self, state: SimilarityState) -> Similarity:
        a, b = len(self.layers_a), len(self.layers_b)
        sums = state.sums.means(1)  # the plain sums over batches (the batch count cancels in the ratio)
        cross, self_a, self_b, batches = sums[: a * b], sums[a * b : a * b + a], sums[a * b + a : a * b + a + b], sums[-1]
        matrix = torch.tensor([[cka_ratio(cross[i * b + j], self_a[i], self_b[j]) for j in range(b)] for i in range(a)], dtype=torch.float64)
        return Similarity(
            matrix=matrix, layers_a=list(self.layers_a), layers_b=list(self.layers_b), info_a=dict(self.info_a), info_b=dict(self.info_b),
            kernel=self.kernel, threshold=self.threshold, debiased=self.debiased, batch_size=self.batch_size,
            n_images=self.n_images, n_batches=int(batches), left_out=self.left_out, same_model=self.same_model,
        )  # fmt: skip


@register_state("similarity")
class SimilarityState:
    """The mergeable state of a similarity run: the exact sums over batches of every cross HSIC,
    every self HSIC, and the count of batches."""

    def __init__(self, rows: int) -> None:
        self.sums = ExactSum(rows)

    def merge(self, other: SimilarityState) -> None:
        self.sums.merge(other.sums)

    def to_json(self) -> dict[str, Any]:
        return {"sums": self.sums.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SimilarityState:
        out = cls(0)
        out.sums = ExactSum.from_json(data["sums"])
        return out

    @classmethod
    def result(cls, settings: dict[str, Any], state: SimilarityState) -> Similarity:
        return _Setup(**settings["setup"]).result(state)


def _job(tap_a: Tap, tap_b: Tap, setup: _Setup, sources: dict[str, Any]) -> Job:
    names, paths = list(sources), list(sources.values())
    symmetric = tap_b is tap_a
    taps = [tap_a] if symmetric else [tap_a, tap_b]
    need = min_examples(setup.debiased)

    def settings() -> dict[str, Any]:
        pixels = [p for p in paths if isinstance(p, torch.Tensor)]
        return {
            "setup": setup.to_json(),
            "images_sha256": fingerprint(names, *pixels),
            "models_sha256": [model_fingerprint(t.net) for t in taps],
        }

    def grams(tap: Tap, x: torch.Tensor) -> list[torch.Tensor]:
        return list(read_taps(tap, x, lambda out: gram(flat_features(out), setup.kernel, setup.threshold)).values())

    def steps(state: SimilarityState, items: Sequence[int] | None, bar: Any) -> Iterator[None]:
        assert items is not None
        with contextlib.ExitStack() as stack:
            for net in {id(t.net): t.net for t in taps}.values():
                stack.enter_context(eval_mode(net))
            stack.enter_context(torch.no_grad())
            for index, xs in tap_batches(taps, paths, items, setup.batch_size):
                if len(index) >= need:
                    grams_a = grams(tap_a, xs[0])
                    grams_b = grams_a if symmetric else grams(tap_b, xs[1])
                    cross, self_a, self_b = hsic_terms(grams_a, grams_b, setup.debiased)
                    state.sums.add(torch.cat([cross.flatten(), self_a, self_b, torch.ones(1, dtype=cross.dtype)]).cpu())
                bar.update(len(index))
                yield

    return Job(
        kind="similarity", n_items=len(paths), batch_size=setup.batch_size, settings=settings,
        empty=lambda: SimilarityState(setup.rows), steps=steps, desc="similarity", unit="img",
    )  # fmt: skip


@dataclass(repr=False)
class Similarity(Result):
    """What :func:`similarity` returns: ``matrix[i, j]``, the CKA of ``layers_a[i]`` of model A and
    ``layers_b[j]`` of model B, over ``n_images`` images in batches of ``batch_size``."""

    matrix: torch.Tensor
    layers_a: list[str]
    layers_b: list[str]
    info_a: dict[str, Any]
    info_b: dict[str, Any]
    kernel: str
    threshold: float
    debiased: bool
    batch_size: int
    n_images: int
    n_batches: int
    left_out: int = 0
    same_model: bool = True
    notes: list[str] = field(default_factory=list)

    def value(self, layer_a: str, layer_b: str) -> float:
        """The CKA of ``layer_a`` (model A) and ``layer_b`` (model B)."""
        for name, names, param in ((layer_a, self.layers_a, "layer_a"), (layer_b, self.layers_b, "layer_b")):
            if name not in names:
                from ..errors import did_you_mean

                raise CnnlensError(f"{param} {name!r} was not compared{did_you_mean(name, names)}", param=param)
        return float(self.matrix[self.layers_a.index(layer_a), self.layers_b.index(layer_b)])

    def diagonal(self) -> dict[str, float]:
        """The CKA of each layer with the layer of the same name in model B (layers both have)."""
        return {name: self.value(name, name) for name in self.layers_a if name in self.layers_b}

    @property
    def estimator(self) -> str:
        kernel = "linear" if self.kernel == "linear" else f"RBF (bandwidth {self.threshold:g} x median distance)"
        hsic = "unbiased HSIC (debiased CKA)" if self.debiased else "biased HSIC"
        batches = "one batch (full-batch CKA)" if self.n_batches == 1 else f"minibatch CKA over {self.n_batches} batches of {self.batch_size}"
        return f"{kernel} kernel, {hsic}, {batches}"

    @property
    def warnings(self) -> list[str]:  # type: ignore[override]
        out = list(self.notes)
        if self.left_out:
            out.append(f"the last {self.left_out} image{'s' if self.left_out > 1 else ''} form a batch too short for an HSIC estimate and are left out; "
                       "choose a batch size that leaves at least 4")  # fmt: skip
        bad = sorted({self.layers_a[i] for i, row in enumerate(self.matrix.tolist()) if any(math.isnan(v) for v in row)})
        if bad:
            out.append(f"CKA is undefined (nan) where a layer is constant over the images: {', '.join(bad)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_a": self.info_a,
            "model_b": self.info_b,
            "layers_a": self.layers_a,
            "layers_b": self.layers_b,
            "cka": [[v if math.isfinite(v) else None for v in row] for row in self.matrix.tolist()],
            "kernel": self.kernel,
            "threshold": self.threshold,
            "debiased": self.debiased,
            "batch_size": self.batch_size,
            "n_images": self.n_images,
            "n_batches": self.n_batches,
            "images_left_out": self.left_out,
            "estimator": self.estimator,
        }

    def _summary(self) -> dict[str, Any]:
        return {"model_a": info_label(self.info_a), "model_b": info_label(self.info_b), "layers": f"{len(self.layers_a)} x {len(self.layers_b)}",
                "n_images": self.n_images, "estimator": self.estimator}  # fmt: skip

    def to_text(self) -> str:
        head = f"CKA of {info_label(self.info_a)}" + ("" if self.same_model and self.layers_a == self.layers_b else f" against {info_label(self.info_b)}")
        lines = [f"{head} over {self.n_images} images ({self.estimator})", ""]
        width = max(len(n) for n in self.layers_a) + 2
        cols = [n if len(n) <= 12 else "…" + n[-11:] for n in self.layers_b]
        lines.append(" " * width + " ".join(f"{c:>12}" for c in cols))
        for name, row in zip(self.layers_a, self.matrix.tolist()):
            lines.append(f"{name:<{width}}" + " ".join(f"{v:>12.4f}" if math.isfinite(v) else f"{'nan':>12}" for v in row))
        return "\n".join(lines)

    def figure(self, *, title: str | None = None, annotate: bool | None = None) -> Any:
        """The CKA heatmap: rows the layers of model A (input at the top), columns those of model B."""
        import matplotlib.pyplot as plt

        a, b = len(self.layers_a), len(self.layers_b)
        fig, ax = plt.subplots(figsize=(2.2 + 0.55 * b, 1.8 + 0.5 * a), layout="constrained")
        image = ax.imshow(self.matrix.numpy(), vmin=0.0, vmax=1.0, cmap="magma")
        ax.set_xticks(range(b), self.layers_b, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(a), self.layers_a, fontsize=8)
        ax.set_xlabel(info_label(self.info_b))
        ax.set_ylabel(info_label(self.info_a))
        if annotate if annotate is not None else a * b <= 169:
            for i in range(a):
                for j in range(b):
                    v = float(self.matrix[i, j])
                    text = "nan" if not math.isfinite(v) else f"{v:.2f}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="black" if math.isfinite(v) and v > 0.6 else "white")
        fig.colorbar(image, ax=ax, shrink=0.8, label="CKA")
        ax.set_title(title or f"CKA over {self.n_images} images\n{self.estimator}", fontsize=9)
        return fig

