"""Circuits: which units build a unit, and which units and classes use it.

Two ways to weigh a connection between a unit and the channels of an earlier layer:

- **expanded weights** (Olah et al. 2020, "Visualizing Weights"): the effective linear map between
  the two layers across BatchNorm, residual adds, concatenations and pooling, the nonlinearities
  between them set aside (:func:`expanded_weights`);
- **contributions** on images (the unit's own top images): activation × gradient of the unit at the
  earlier layer, summed over positions (:func:`contributions`).
"""

from __future__ import annotations

from .connections import (
    Circuit,
    Connections,
    circuit,
    contributions,
    inputs,
    neighbour_stage,
    outputs,
)
from .linear import LinearizedMode, class_weights, expanded_weights, linear_map

__all__ = [
    "Circuit",
    "Connections",
    "LinearizedMode",
    "circuit",
    "class_weights",
    "contributions",
    "expanded_weights",
    "inputs",
    "linear_map",
    "neighbour_stage",
    "outputs",
]
