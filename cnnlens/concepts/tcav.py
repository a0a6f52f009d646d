"""Testing with Concept Activation Vectors (TCAV, Kim et al. 2018): does a human concept, given by
example images, raise a class's logit at a layer?

1. **CAV.** A linear classifier (L2-regularised logistic regression, fitted by L-BFGS in torch,
   deterministic) separates the layer's activations (flattened, as in Kim et al.) of the concept's
   images from those of random images; the CAV is its unit normal, pointing to the concept.
2. **TCAV score.** On images of the class (``images``), the directional derivative of the class
   logit along the CAV, ``grad_a logit . v``; the score is the share of images where it is positive.
3. **Test.** Steps 1-2 are repeated against ``n_random`` (>= 10) disjoint sets of random images
   ``N_1 .. N_R``, giving the concept's scores ``s_1 .. s_R``; ``R`` *random concepts* -- ``R``
   more disjoint random sets ``P_1 .. P_R`` -- give the null scores ``r_i`` of ``P_i`` against
   ``N_i``. The concept survives when its mean score lies outside the random concepts' scores: a
   two-sided t-test with ``R - 1`` degrees of freedom of ``t = (mean(s) - mean(r)) / (sd(r) *
   sqrt(1 + 1/R))`` (the prediction test of one new draw against a sample), ``p < alpha``.

   Kim et al. compare ``s`` and ``r`` as two samples (Welch's t-test; ``p_value_welch``, reported
   beside). The concept's ``R`` scores all share its one set of images, so they are not independent
   draws and vary less than the random concepts' scores; that test then calls random concepts
   significant far more often than ``alpha`` (measured in docs/concepts.md). The prediction test
   only assumes the concept's mean varies no more than one random concept's score, which holds.

Concepts are folders, image lists or pixels, or one of cnnlens' own stimuli (:data:`STIMULI`):
``"striped"`` (black-and-white square-wave gratings of random orientation, period and phase) and
``"gratings"`` (the sinusoidal gratings of :mod:`cnnlens.stimuli`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..checks import check_int, check_number
from ..errors import CnnlensError, did_you_mean
from ..folders import iter_batches, select_images
from ..gradients import layer_gradient
from ..hooks import eval_mode, forward_until
from ..layers import get_layer, model_device, model_dtype
from ..pixelnet import image_preprocessing, pixel_model, unwrap
from ..progress import progress_bar
from ..registry import model_info
from ..results import Result
from ..seeds import generator
from ..stimuli import gratings

__all__ = ["STIMULI", "TCAVResult", "cav", "stimulus_images", "tcav"]

STIMULI = ("striped", "gratings")


def stimulus_images(name: str, n: int, size: int, *, seed: int | None = None) -> torch.Tensor:
    """``n`` images ``(n, 3, size, size)`` of a built-in concept (:data:`STIMULI`): orientations
    uniform in [0, 180) degrees, periods 4 to 32 px (log-uniform), phases uniform; ``"striped"`` is
    the square wave of the same grating (black and white stripes)."""
    if name not in STIMULI:
        raise CnnlensError(f"concept: {name!r} is not a built-in concept ({', '.join(STIMULI)}){did_you_mean(name, list(STIMULI))}", param="concept")
    g = generator(seed)
    orientation = torch.rand(n, generator=g) * 180
    period = torch.exp(torch.empty(n).uniform_(math.log(4), math.log(32), generator=g))
    phase = torch.rand(n, generator=g) * 360
    img = gratings(orientation.tolist(), (1 / period).tolist(), phase.tolist(), size=size)
    if name == "striped":
        img = (img >= 0.5).float()
    return img.expand(-1, 3, -1, -1).contiguous()


def cav(positive: torch.Tensor, negative: torch.Tensor, *, l2: float = 0.01, steps: int = 100) -> tuple[torch.Tensor, float]:
    """The concept activation vector of ``positive`` ``(p, D)`` against ``negative`` ``(q, D)``:
    the unit normal of an L2-regularised logistic regression (features scaled by one common
    factor, the mean norm), and the classifier's accuracy on these examples."""
    x = torch.cat([positive, negative]).double()
    y = torch.cat([torch.ones(len(positive)), torch.zeros(len(negative))]).double().to(x.device)
    scale = x.norm(dim=1).mean().clamp_min(1e-12)
    x = x / scale
    w = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=steps, line_search_fn="strong_wolfe", tolerance_grad=1e-10, tolerance_change=1e-12)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    w = w.detach()
    accuracy = float((((x @ w + b.detach()) > 0).double() == y).double().mean())
    return (w / w.norm().clamp_min(1e-30)).float(), accuracy


@dataclass(repr=False)
class TCAVResult(Result):
    """What :func:`tcav` measured: per random set ``scores`` (the concept's TCAV scores) and
    ``null`` (a random concept's), their two-sided t-test (``p_value``), and ``significant``
    (``p_value < alpha``); ``accuracies`` of the concept's CAVs."""

    concept: str
    layer: str
    target: int
    target_name: str | None
    scores: list[float]
    null: list[float]
    accuracies: list[float]
    p_value: float
    p_value_welch: float
    alpha: float
    n_concept: int
    n_per_random: int
    n_images: int
    images_rule: str
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def score(self) -> float:
        return sum(self.scores) / len(self.scores)

    @property
    def null_score(self) -> float:
        return sum(self.null) / len(self.null)

    @property
    def significant(self) -> bool:
        return bool(self.p_value < self.alpha)

    @property
    def direction(self) -> str:
        """``"raises"`` when the concept's mean score is above the random concepts', else ``"lowers"``."""
        return "raises" if self.score > self.null_score else "lowers"

    @property
    def class_label(self) -> str:
        return f"{self.target} ({self.target_name})" if self.target_name else str(self.target)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.info,
            "concept": self.concept, "layer": self.layer, "target": self.target, "target_name": self.target_name,
            "score": self.score, "null_score": self.null_score, "scores": self.scores, "null": self.null,
            "p_value": self.p_value, "p_value_welch": self.p_value_welch, "alpha": self.alpha, "significant": self.significant,
            "direction": self.direction,
            "test": "two-sided prediction t-test of the concept's mean score against the random concepts' scores, R - 1 degrees of freedom",
            "cav_accuracy": self.accuracies, "n_random": len(self.scores), "n_concept": self.n_concept, "n_per_random": self.n_per_random,
            "n_images": self.n_images, "images": self.images_rule, "warnings": list(self.warnings),
        }  # fmt: skip

    def to_text(self) -> str:
        sd = _std(self.scores)
        verdict = f"significant (it {self.direction} the class logit more often than random concepts)" if self.significant else "not significant"
        return (
            f"TCAV of {self.concept!r} for class {self.class_label} at {self.layer}: score {self.score:.3f} +- {sd:.3f} "
            f"(random concepts {self.null_score:.3f} +- {_std(self.null):.3f}) over {len(self.scores)} random sets; "
            f"p = {self.p_value:.3g} (Kim et al.'s Welch test: {self.p_value_welch:.3g}): {verdict} at alpha {self.alpha:g}\n"
            f"  CAV accuracy {min(self.accuracies):.2f}..{max(self.accuracies):.2f}; {self.n_images} class images ({self.images_rule})"
        )

    def figure(self) -> Any:
        from .plots import plot_tcav

        return plot_tcav(self)

    def _summary(self) -> dict[str, Any]:
        return {"concept": self.concept, "target": self.target, "score": round(self.score, 3), "p_value": self.p_value, "significant": self.significant}


def _std(values: Sequence[float]) -> float:
    if len(values) < 2:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def _prediction_p(scores: Sequence[float], null: Sequence[float]) -> float:
    """Two-sided p of the mean of ``scores`` as one new draw from the distribution of ``null``."""
    from scipy import stats

    r = len(null)
    sd = _std(null)
    diff = sum(scores) / len(scores) - sum(null) / r
    if sd == 0:
        return 1.0 if diff == 0 else 0.0
    t = diff / (sd * math.sqrt(1 + 1 / r))
    return float(2 * stats.t.sf(abs(t), r - 1))


def _welch_p(a: Sequence[float], b: Sequence[float]) -> float:
    from scipy import stats

    import warnings

    if _std(a) < 1e-12 and _std(b) < 1e-12:
        return 1.0 if abs(sum(a) / len(a) - sum(b) / len(b)) < 1e-12 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # near-identical scores: the p-value is still what it is
        return float(stats.ttest_ind(a, b, equal_var=False).pvalue)


def _sources(images: Any, param: str) -> list[Any]:
    if isinstance(images, torch.Tensor):
        return list(images)
    try:
        return list(select_images(images).values())
    except CnnlensError as exc:
        raise CnnlensError(f"{param}: {exc}", param=param) from None


def tcav(
    model: nn.Module,
    concept_images: Any,
    random_images: Any,
    *,
    layer: str,
    target: int,
    images: Any = None,
    n_random: int = 10,
    size: int | None = None,
    alpha: float = 0.05,
    seed: int | None = None,
    progress: bool = True,
) -> TCAVResult:
    """TCAV of a concept for class ``target`` at ``layer`` (see the module docstring).

    Args:
        model: any CNN; left exactly as it was.
        concept_images: the concept: a folder, image files, pixels ``(N, 3, H, W)`` in [0, 1], or a
            built-in stimulus name (:data:`STIMULI`, 50 images drawn from ``seed``).
        random_images: a folder (or list, or pixels) of unrelated images, split at random (from
            ``seed``) into ``2 * n_random`` disjoint sets of ``m`` images each, ``m`` the concept's
            image count or what the folder allows: half are the negatives of the CAVs, half the
            random concepts.
        layer: the layer whose activations hold the concept.
        target: the class index.
        images: the images of the class on which the directional derivatives are taken (Kim et al.);
            ``None``: all the random images (how the concept moves the class logit on unrelated
            images; stated in the result).
        n_random: random sets (>= 10, Kim et al.'s practice: a t-test needs them).
        size: square side images are resized and cropped to (default: the weights').
        alpha: significance level of the two-sided t-test.
        seed: the split of the random images and the built-in stimuli come from it.
        progress: a line per stage on stderr.

    Raises:
        CnnlensError: an unknown layer or stimulus, a class out of range, too few random images for
            ``n_random + 1`` sets of at least 2 -- before any image is read.
    """
    n_random = check_int(n_random, "n_random", low=10, high=1000)
    alpha = check_number(alpha, "alpha", low=0.0, high=1.0, low_open=True)
    target = check_int(target, "target", low=0)
    net, _ = unwrap(model)
    try:
        get_layer(net, layer)
    except CnnlensError as exc:
        raise CnnlensError(f"layer: {exc}", param="layer") from None
    info = model_info(model)
    cats = list(info.categories or [])
    if cats and target >= len(cats):
        raise CnnlensError(f"target: class {target} out of range, the model has classes 0..{len(cats) - 1}", param="target")
    prep = image_preprocessing(model, None, size)
    side = int(prep.crop_size)  # type: ignore[arg-type]
    g = generator(seed)
    if isinstance(concept_images, str) and concept_images in STIMULI:
        concept_name = concept_images
        concept = _sources(stimulus_images(concept_images, 50, side, seed=None if seed is None else seed), "concept_images")
    else:
        concept_name = str(concept_images) if isinstance(concept_images, (str, Path)) else "concept images"
        concept = _sources(concept_images, "concept_images")
    randoms = _sources(random_images, "random_images")
    n_sets = 2 * n_random
    m = min(len(concept), len(randoms) // n_sets)
    if m < 2:
        raise CnnlensError(
            f"random_images: {len(randoms)} images make {n_sets} sets of fewer than 2; give at least {2 * n_sets} random images or fewer random sets",
            param="random_images",
        )
    if len(concept) < 2:
        raise CnnlensError(f"concept_images: {len(concept)} image; a CAV needs at least 2", param="concept_images")
    order = torch.randperm(len(randoms), generator=g).tolist()
    sets = [[randoms[i] for i in order[j * m : (j + 1) * m]] for j in range(n_sets)]
    concept = concept[:m] if len(concept) > m else concept
    if images is None:
        targets_src, images_rule = randoms, "the random images"
    else:
        targets_src, images_rule = _sources(images, "images"), "the class images given"
    show = progress
    device, dtype = model_device(net), model_dtype(net)

    def acts(sources: list[Any]) -> torch.Tensor:
        out = []
        with eval_mode(net), torch.no_grad():
            for _, x in iter_batches(sources, prep, batch_size=32):
                a = forward_until(net, prep.normalize(x.to(device, dtype=dtype)), [layer])[layer]
                out.append(a.flatten(1).float().cpu())
        return torch.cat(out)

    with progress_bar(len(concept) + m * n_sets + len(targets_src), f"tcav {concept_name} at {layer}", enabled=show, unit="img") as bar:
        concept_acts = acts(concept)
        bar.update(len(concept))
        random_acts = []
        for s in sets:
            random_acts.append(acts(s))
            bar.update(len(s))
        pixnet = pixel_model(model, prep)
        grads = []
        for _, x in iter_batches(targets_src, prep, batch_size=32):
            t = torch.full((x.shape[0],), target, dtype=torch.long)
            got = layer_gradient(net, pixnet, x.to(device, dtype=dtype), layer, t)
            grads.append(got.gradient.flatten(1).float().cpu())
            bar.update(x.shape[0])
        grad = torch.cat(grads)
    scores, null, accuracies = [], [], []
    negatives, positives = random_acts[:n_random], random_acts[n_random:]
    for negative, positive in zip(negatives, positives):
        v, acc = cav(concept_acts, negative)
        scores.append(float(((grad @ v) > 0).float().mean()))
        accuracies.append(acc)
        v0, _ = cav(positive, negative)
        null.append(float(((grad @ v0) > 0).float().mean()))
    warnings = []
    if min(accuracies) < 0.7:
        warnings.append(f"some CAVs separate the concept from random images poorly (accuracy {min(accuracies):.2f}): {layer} may not hold it")
    return TCAVResult(
        concept=concept_name, layer=layer, target=target, target_name=cats[target] if target < len(cats) else None, scores=scores, null=null,
        accuracies=accuracies, p_value=_prediction_p(scores, null), p_value_welch=_welch_p(scores, null), alpha=alpha, n_concept=len(concept), n_per_random=m,
        n_images=len(targets_src), images_rule=images_rule, info=info.to_dict(), warnings=warnings,
    )  # fmt: skip
