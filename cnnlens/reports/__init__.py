"""Per-layer report: output shape, parameters, MACs/FLOPs, activation memory, receptive field.

:func:`report` (``cnnlens.report``) takes any name of the model registry (``cnnlens.list_models()``,
``path/file.py:Class``, ``timm/NAME``) or any ``nn.Module`` and returns a :class:`Report`, a
:class:`~cnnlens.results.Result`. Everything is computed on the meta device, without weights:

- :mod:`cnnlens.reports.engine` runs the two passes (eval: shapes, FLOPs, receptive fields; train: the
  tensors autograd saves for backward);
- :mod:`cnnlens.reports.memo` keeps them at about the cost of one forward pass of torchinfo's;
- :mod:`cnnlens.reports.result` is the :class:`Report` and its table, CSV, Markdown, JSON and figure.
"""

from __future__ import annotations

from .engine import receptive_fields, report
from .result import REPORT_SUFFIXES, LayerRow, Report, Totals

__all__ = ["REPORT_SUFFIXES", "LayerRow", "Report", "Totals", "receptive_fields", "report"]
