"""The measures of the physiology, on a grid of responses ``(units, orientations, frequencies, phases)``.

For each unit and each (orientation, frequency) the responses over ``P`` evenly spaced spatial
phases give

- ``F0``: the mean response above the blank (the response to the grey screen, the unit's
  "spontaneous rate");
- ``F1``: the amplitude of the first harmonic, ``(2 / P) |sum_k r_k exp(-i phi_k)|``;
- the tuning response ``R = max(F0 + F1, 0)``: the peak of the fitted sinusoid above the blank. It
  is the amplitude of a linear unit, the mean of a phase-invariant one, and does not depend on which
  phase the grid happens to sample.

The preferred orientation and frequency are the grid point with the largest ``R``; the orientation
tuning curve is ``R`` over orientations at the preferred frequency, the spatial-frequency curve ``R``
over frequencies at the preferred orientation. Then

- orientation selectivity ``OSI = 1 - circular variance = |sum_o R_o exp(2i theta_o)| / sum_o R_o``
  (Ringach, Shapley & Hawken 2002), 0 for a unit that responds equally at every orientation, 1
  for one that responds at one orientation only; the angle of that sum, halved, is the vector-average
  orientation;
- the modulation ratio ``F1 / F0`` at the preferred grating (De Valois, Albrecht & Thorell 1982;
  Skottun et al. 1991): a half-wave rectified linear unit gives pi/2 (more with a threshold), an
  energy (phase-invariant) unit 0. Above 1 is a simple cell, below 1 a complex cell. It is clipped to
  [0, 2], the range of a rectified sinusoid (a unit whose mean does not rise above the blank while it
  modulates gets 2).
- classification: ``"unselective"`` when the unit does not respond (``R`` is 0 everywhere) or its
  OSI is below ``osi_threshold``; else ``"simple"`` (F1/F0 > 1) or ``"complex"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "CLASSES",
    "MAX_RATIO",
    "OSI_THRESHOLD",
    "Measures",
    "c50",
    "classify",
    "harmonics",
    "measure",
    "modulation_ratio",
    "orientation_selectivity",
]

CLASSES = ("simple", "complex", "unselective")
OSI_THRESHOLD = 0.2
MAX_RATIO = 2.0
RESPONSIVE = 1e-5  # R above this share of the unit's response scale counts as a response


def harmonics(responses: torch.Tensor, blank: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(F0, F1)`` over the last dimension (evenly spaced phases): mean above ``blank`` and
    first-harmonic amplitude. ``blank`` broadcasts against ``responses[..., 0]``."""
    r = responses.double()
    n = r.shape[-1]
    phi = torch.arange(n, dtype=torch.float64, device=r.device) * (2 * math.pi / n)
    re = (r * torch.cos(phi)).sum(-1)
    im = (r * torch.sin(phi)).sum(-1)
    f1 = (2.0 / n) * torch.sqrt(re**2 + im**2)
    f0 = r.mean(-1) - torch.as_tensor(blank, dtype=torch.float64, device=r.device)
    return f0, f1


def orientation_selectivity(curve: torch.Tensor, orientations_deg: Sequence[float] | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(OSI, vector-average orientation in degrees)`` of tuning curves ``(..., O)`` (non-negative).

    OSI is ``1 - circular variance`` (Ringach et al. 2002); 0 where the curve is 0 everywhere (the
    orientation is then NaN).
    """
    theta = torch.deg2rad(torch.as_tensor(orientations_deg, dtype=torch.float64, device=curve.device))
    c = curve.double().clamp_min(0)
    re = (c * torch.cos(2 * theta)).sum(-1)
    im = (c * torch.sin(2 * theta)).sum(-1)
    total = c.sum(-1)
    osi = torch.where(total > 0, torch.sqrt(re**2 + im**2) / total.clamp_min(1e-300), torch.zeros_like(total))
    angle = torch.rad2deg(torch.atan2(im, re) / 2) % 180.0
    angle = torch.where(angle > 180.0 - 1e-6, angle - 180.0, angle)  # -0.0000001 is 0, not 180
    angle = torch.where(total > 0, angle, torch.full_like(angle, float("nan")))
    return osi.clamp(0, 1), angle


def modulation_ratio(f0: torch.Tensor, f1: torch.Tensor) -> torch.Tensor:
    """``F1 / F0`` clipped to [0, 2]; 2 where ``F0 <= 0 < F1``; NaN where both are 0."""
    f0, f1 = f0.double(), f1.double()
    ratio = torch.where(f0 > 0, f1 / f0.clamp_min(1e-300), torch.where(f1 > 0, torch.full_like(f1, MAX_RATIO), torch.full_like(f1, float("nan"))))
    return ratio.clamp(0, MAX_RATIO)


def classify(osi: torch.Tensor, ratio: torch.Tensor, responsive: torch.Tensor, osi_threshold: float = OSI_THRESHOLD) -> list[str]:
    """``"simple"`` / ``"complex"`` / ``"unselective"`` per unit (see the module docstring)."""
    out = []
    for s, m, ok in zip(osi.tolist(), ratio.tolist(), responsive.tolist()):
        if not ok or s < osi_threshold or math.isnan(m):
            out.append("unselective")
        else:
            out.append("simple" if m > 1.0 else "complex")
    return out


def c50(responses: torch.Tensor, contrasts: Sequence[float]) -> list[float | None]:
    """Per unit, the contrast at which the response first reaches half its largest value
    (interpolated on a log-contrast axis); ``None`` for a unit that never responds."""
    out: list[float | None] = []
    cs = [float(c) for c in contrasts]
    for row in responses.double().tolist():
        top = max(row) if row else 0.0
        if top <= 0:
            out.append(None)
            continue
        half = top / 2
        k = next(i for i, v in enumerate(row) if v >= half)
        if k == 0 or cs[k - 1] <= 0:
            out.append(cs[k])
            continue
        lo, hi = row[k - 1], row[k]
        t = (half - lo) / (hi - lo) if hi > lo else 1.0
        out.append(math.exp(math.log(cs[k - 1]) + t * (math.log(cs[k]) - math.log(cs[k - 1]))))
    return out


@dataclass(frozen=True)
class Measures:
    """The measures of ``U`` units (tensors of length ``U`` unless noted; float64 on the CPU)."""

    amplitude: torch.Tensor  # (U, O, F): R = max(F0 + F1, 0)
    f0: torch.Tensor  # (U, O, F)
    f1: torch.Tensor  # (U, O, F)
    best_orientation: torch.Tensor  # (U,) index
    best_frequency: torch.Tensor  # (U,) index
    best_phase: torch.Tensor  # (U,) index of the largest response at the preferred grating
    osi: torch.Tensor
    vector_orientation: torch.Tensor  # degrees
    ratio: torch.Tensor
    responsive: torch.Tensor  # bool
    peak: torch.Tensor  # the largest R
    classes: list[str]

    @property
    def orientation_curve(self) -> torch.Tensor:
        """``(U, O)``: R over orientations at each unit's preferred frequency."""
        idx = self.best_frequency.view(-1, 1, 1).expand(-1, self.amplitude.shape[1], 1)
        return self.amplitude.gather(2, idx).squeeze(2)

    @property
    def frequency_curve(self) -> torch.Tensor:
        """``(U, F)``: R over frequencies at each unit's preferred orientation."""
        idx = self.best_orientation.view(-1, 1, 1).expand(-1, 1, self.amplitude.shape[2])
        return self.amplitude.gather(1, idx).squeeze(1)


def measure(
    responses: torch.Tensor,
    blank: torch.Tensor,
    orientations_deg: Sequence[float],
    *,
    osi_threshold: float = OSI_THRESHOLD,
) -> Measures:
    """All measures of responses ``(U, O, F, P)`` (already rectified if wanted) and blank responses ``(U,)``."""
    r = responses.double().cpu()
    b = blank.double().cpu()
    u, o, f, p = r.shape
    f0, f1 = harmonics(r, b.view(u, 1, 1))
    amp = (f0 + f1).clamp_min(0)
    flat = amp.reshape(u, o * f)
    best = flat.argmax(1)
    bo, bf = best // f, best % f
    peak = flat.gather(1, best.view(-1, 1)).squeeze(1)
    scale = torch.maximum(r.abs().reshape(u, -1).amax(1), b.abs()).clamp_min(1.0)
    responsive = peak > RESPONSIVE * scale
    idx = torch.arange(u)
    curve = amp[idx, :, bf]
    osi, vector = orientation_selectivity(curve, orientations_deg)
    osi = torch.where(responsive, osi, torch.zeros_like(osi))
    ratio = modulation_ratio(f0[idx, bo, bf], f1[idx, bo, bf])
    ratio = torch.where(responsive, ratio, torch.full_like(ratio, float("nan")))
    phase = r[idx, bo, bf].argmax(1)
    return Measures(amp, f0, f1, bo, bf, phase, osi, vector, ratio, responsive, peak, classify(osi, ratio, responsive, osi_threshold))
