"""LRP rules for one linear call (convolution or fully connected) and the composites that assign them.

Every rule redistributes the relevance ``r`` of a linear call's outputs ``z = W x + b`` onto its
inputs (Bach et al. 2015; Montavon et al. 2019, "Layer-Wise Relevance Propagation: An Overview"):

==============  =======================================================================================
``epsilon``     ``R_i = x_i sum_j w_ji r_j / (z_j + eps sign(z_j))``  (LRP-eps; LRP-0 at ``eps = 0``)
``zplus``       the positive contributions only: ``z+ = W+ x+ + W- x- + b+`` (alpha 1, beta 0)
``alpha-beta``  ``alpha`` times the positive, minus ``beta`` times the negative contributions (2, 1)
``gamma``       the positive contributions weighed ``1 + gamma`` (Andeol et al.'s generalisation)
``flat``        every input of the window gets an equal share (Lapuschkin et al. 2019)
``zbox``        z^B for an input bounded in ``[low, high]`` (Montavon et al. 2017), the image layer
==============  =======================================================================================

The definitions, the stabiliser ``z + eps (sign(z) + [z = 0])`` and its default 1e-6 follow zennit
(Anders et al.), so cnnlens' heatmaps equal zennit's where both apply. Each rule also returns how much
relevance its bias and its stabiliser absorb, so that conservation can be checked layer by layer:
``sum(R_in) = sum(r) - bias_term - stabiliser_term``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import CnnlensError, did_you_mean

__all__ = ["COMPOSITES", "DEFAULT_COMPOSITE", "RULES", "Composite", "LinearRule", "Share", "composite", "stabilize"]

LinearOp = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
RULES = ("epsilon", "zplus", "alpha-beta", "gamma", "flat", "zbox")


def stabilize(z: torch.Tensor, eps: float) -> torch.Tensor:
    """``z + eps * sign(z)``, zeros moved to ``+eps`` (zennit's stabiliser, the same numbers)."""
    return torch.where(z >= 0, z + eps, z - eps)


Transpose = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (s, weight) -> W^T s, the shape of the input


def _vjp(op: LinearOp, x: torch.Tensor, weight: torch.Tensor, s: torch.Tensor, transpose: Transpose | None = None) -> torch.Tensor:
    """``W^T s``: the gradient of ``op(x, weight)`` in ``x`` against ``s`` (independent of ``x``);
    ``transpose`` computes it directly (a transposed convolution), else autograd does."""
    transpose = transpose or getattr(op, "transpose", None)
    if transpose is not None:
        return transpose(s, weight)
    with torch.enable_grad():
        v = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(op(v, weight, None), v, s)
    return g


def _bias_map(z: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor | float:
    if bias is None:
        return 0.0
    return bias.view(1, -1, *([1] * (z.dim() - 2))) if z.dim() > 2 else bias.view(1, -1)


class _WithTranspose:
    """Attaches a transpose to an op so that the rules' ``_vjp`` can use it."""

    def __init__(self, transpose: Transpose | None) -> None:
        self.transpose = transpose

    def wrap(self, op: LinearOp) -> LinearOp:
        if self.transpose is None:
            return op
        transpose = self.transpose

        def with_transpose(v: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
            return op(v, w, b)

        with_transpose.transpose = transpose  # type: ignore[attr-defined]
        return with_transpose


@dataclass(frozen=True)
class Share:
    """A rule's answer: the input relevance and the relevance absorbed by the bias and the stabiliser."""

    relevance: torch.Tensor
    bias_term: float
    stabilizer_term: float


@dataclass(frozen=True)
class LinearRule:
    """One LRP rule with its parameters (``epsilon``: the stabiliser; ``gamma``; ``alpha``/``beta``;
    ``low``/``high``: z^B's bounds, broadcast against the input)."""

    name: str
    epsilon: float = 1e-6
    gamma: float = 0.25
    alpha: float = 2.0
    beta: float = 1.0
    low: torch.Tensor | float = 0.0
    high: torch.Tensor | float = 1.0
    terms: bool = True  # compute the bias and stabiliser terms (NaN when not: a pass that keeps no records)

    def __call__(self, op: LinearOp, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, r: torch.Tensor, transpose: Transpose | None = None) -> Share:
        """The input relevance of ``op(x, weight, bias)`` (a linear call) given its outputs' ``r``;
        ``transpose(s, weight)``, when given, is ``op``'s transpose (saves a forward per product)."""
        self_t = _WithTranspose(transpose)
        return getattr(self, "_" + self.name.replace("-", "_"))(self_t.wrap(op), x, weight, bias, r)

    # each rule: z (its denominator), s = r / stab(z), R_in, and the two terms that leave the sum

    def _terms(self, s: torch.Tensor, z: torch.Tensor, stab: torch.Tensor, bias: torch.Tensor | float) -> tuple[float, float]:
        if not self.terms:
            return math.nan, math.nan
        return float((s * bias).sum()) if not isinstance(bias, float) else 0.0, float((s * (stab - z)).sum())

    def _epsilon(self, op: LinearOp, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, r: torch.Tensor) -> Share:
        z = op(x, w, b)
        stab = stabilize(z, self.epsilon)
        s = r / stab
        rel = x * _vjp(op, x, w, s)
        return Share(rel, *self._terms(s, z, stab, _bias_map(z, b)))

    def _zplus(self, op: LinearOp, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, r: torch.Tensor) -> Share:
        wp = w.clamp(min=0)
        bp = None if b is None else b.clamp(min=0)
        negative = bool((x < 0).any())  # after a ReLU there is no negative input: half the work
        xp = x.clamp(min=0) if negative else x
        z = op(xp, wp, bp)
        if negative:
            wn = w.clamp(max=0)
            xn = x.clamp(max=0)
            z = z + op(xn, wn, None)
        stab = stabilize(z, self.epsilon)
        s = r / stab
        rel = xp * _vjp(op, xp, wp, s)
        if negative:
            rel = rel + xn * _vjp(op, xn, wn, s)
        return Share(rel, *self._terms(s, z, stab, _bias_map(z, bp)))

    def _alpha_beta(self, op: LinearOp, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, r: torch.Tensor) -> Share:
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        bp = None if b is None else b.clamp(min=0)
        bn = None if b is None else b.clamp(max=0)
        zp = op(xp, wp, bp) + op(xn, wn, None)
        zn = op(xp, wn, bn) + op(xn, wp, None)
        stp, stn = stabilize(zp, self.epsilon), stabilize(zn, self.epsilon)
        sp, sn = r / stp, r / stn
        rel = self.alpha * (xp * _vjp(op, xp, wp, sp) + xn * _vjp(op, xn, wn, sp))
        rel = rel - self.beta * (xp * _vjp(op, xp, wn, sn) + xn * _vjp(op, xn, wp, sn))
        bias_p, stab_p = self._terms(sp, zp, stp, _bias_map(zp, bp))
        bias_n, stab_n = self._terms(sn, zn, stn, _bias_map(zn, bn))
        return Share(rel, self.alpha * bias_p - self.beta * bias_n, self.alpha * stab_p - self.beta * stab_n)

    def _gamma(self, op: LinearOp, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, r: torch.Tensor) -> Share:
        g = self.gamma
        w_up, w_dn = w + g * w.clamp(min=0), w + g * w.clamp(max=0)
        b_up = None if b is None else b + g * b.clamp(min=0)
        b_dn = None if b is None else b + g * b.clamp(max=0)
        xp, xn = x.clamp(min=0), x.clamp(max=0)
        z = op(x, w, b)
        zp = op(xp, w_up, b_up) + op(xn, w_dn, None)  # where z > 0
        zn = op(xp, w_dn, b_dn) + op(xn, w_up, None)  # where z < 0
        stp, stn = stabilize(zp, self.epsilon), stabilize(zn, self.epsilon)
        sp, sn = (z > 0).to(r) * r / stp, (z < 0).to(r) * r / stn
        rel = xp * _vjp(op, xp, w_up, sp) + xn * _vjp(op, xn, w_dn, sp) + xp * _vjp(op, xp, w_dn, sn) + xn * _vjp(op, xn, w_up, sn)
        bias_p, stab_p = self._terms(sp, zp, stp, _bias_map(zp, b_up))
        bias_n, stab_n = self._terms(sn, zn, stn, _bias_map(zn, b_dn))
        dropped = float((r * (z == 0).to(r)).sum()) if self.terms else math.nan  # outputs at exactly 0 pass nothing on
        return Share(rel, bias_p + bias_n, stab_p + stab_n + dropped)

    def _flat(self, op: LinearOp, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, r: torch.Tensor) -> Share:
        ones, w1 = torch.ones_like(x), torch.ones_like(w)
        z = op(ones, w1, None)
        stab = stabilize(z, self.epsilon)
        s = r / stab
        return Share(_vjp(op, ones, w1, s), 0.0, float((s * (stab - z)).sum()) if self.terms else math.nan)

    def _zbox(self, op: LinearOp, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, r: torch.Tensor) -> Share:
        low = torch.as_tensor(self.low, dtype=x.dtype, device=x.device).expand_as(x)
        high = torch.as_tensor(self.high, dtype=x.dtype, device=x.device).expand_as(x)
        wp, wn = w.clamp(min=0), w.clamp(max=0)
        z = op(x, w, None) - op(low, wp, None) - op(high, wn, None)
        stab = stabilize(z, self.epsilon)
        s = r / stab
        rel = x * _vjp(op, x, w, s) - low * _vjp(op, low, wp, s) - high * _vjp(op, high, wn, s)
        return Share(rel, 0.0, float((s * (stab - z)).sum()) if self.terms else math.nan)


@dataclass(frozen=True)
class Composite:
    """Which rule each linear call gets: ``first`` for the first convolution or fully connected call
    of the forward pass (the layer that reads the image), ``conv`` for the other convolutions,
    ``linear`` for the other fully connected calls. Sums (residual adds, average pooling, means) use
    the epsilon rule with the stabiliser alone (zennit's ``Norm``); activations pass relevance on
    unchanged; max pooling passes it to the winner; BatchNorm is folded into the convolution before it."""

    name: str
    first: LinearRule
    conv: LinearRule
    linear: LinearRule
    stabilizer: float = 1e-6

    def describe(self) -> str:
        return f"{self.name}: first layer {self.first.name}, convolutions {self.conv.name}, fully connected {self.linear.name}"


COMPOSITES = ("epsilon-plus-flat", "epsilon-plus", "epsilon-gamma-box", "epsilon-alpha2-beta1", "epsilon-alpha2-beta1-flat", "epsilon")
DEFAULT_COMPOSITE = "epsilon-plus-flat"


def composite(
    name: str = DEFAULT_COMPOSITE,
    *,
    epsilon: float = 1e-6,
    gamma: float = 0.25,
    low: torch.Tensor | float = 0.0,
    high: torch.Tensor | float = 1.0,
    stabilizer: float = 1e-6,
) -> Composite:
    """The composite ``name`` (zennit's of the same name; ``epsilon`` is LRP-eps everywhere).

    ``epsilon`` is the fully connected layers' epsilon (all layers' for ``"epsilon"``); ``stabilizer``
    the other rules'; ``low``/``high`` the bounds of z^B (the normalized image's range).
    """
    key = name.strip().lower().replace("_", "-")
    eps = LinearRule("epsilon", epsilon=epsilon)
    plus = LinearRule("zplus", epsilon=stabilizer)
    flat = LinearRule("flat", epsilon=stabilizer)
    ab = LinearRule("alpha-beta", epsilon=stabilizer)
    if key == "epsilon-plus-flat":
        return Composite(key, flat, plus, eps, stabilizer)
    if key == "epsilon-plus":
        return Composite(key, plus, plus, eps, stabilizer)
    if key == "epsilon-gamma-box":
        box = LinearRule("zbox", epsilon=stabilizer, low=low, high=high)
        return Composite(key, box, LinearRule("gamma", epsilon=stabilizer, gamma=gamma), eps, stabilizer)
    if key == "epsilon-alpha2-beta1":
        return Composite(key, ab, ab, eps, stabilizer)
    if key == "epsilon-alpha2-beta1-flat":
        return Composite(key, flat, ab, eps, stabilizer)
    if key == "epsilon":
        return Composite(key, eps, eps, eps, stabilizer)
    raise CnnlensError(f"composite: unknown {name!r}{did_you_mean(key, COMPOSITES)}; one of {', '.join(COMPOSITES)}", param="composite")
