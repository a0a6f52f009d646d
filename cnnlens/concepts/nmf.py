"""Non-negative matrix factorisation in torch: ``X ~ W H`` with ``W, H >= 0``.

The solver is HALS (hierarchical alternating least squares, Cichocki & Phan 2009), the exact
coordinate descent that scikit-learn's ``NMF(solver="cd")`` also runs, started from NNDSVDa
(Boutsidis & Gallopoulos 2008: the leading singular vectors with their negative parts cut, zeros
filled with the mean of ``X``; scikit-learn's default start). The objective is
``0.5 * ||X - W H||_F^2``; the run stops when it falls by less than ``tol`` (relative to the
starting objective) over 10 sweeps, as scikit-learn's does, or after ``max_iter`` sweeps.

:func:`project` solves the other half for new rows: the non-negative ``W`` that best rebuilds
``X`` from fixed ``H`` (a concept's activation at a position of a new image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import CnnlensError

__all__ = ["Factorization", "nmf", "project"]

_TINY = 1e-12


@dataclass
class Factorization:
    """``X ~ W H``: ``W`` ``(rows, n)`` the activations of the ``n`` components, ``H`` ``(n, m)`` the
    components (rows of unit length, strongest first); ``objective`` ``0.5 ||X - W H||_F^2``;
    ``relative_error`` ``||X - W H||_F / ||X||_F``; ``iterations`` sweeps run."""

    W: torch.Tensor
    H: torch.Tensor
    objective: float
    relative_error: float
    iterations: int


def _nndsvda(x: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """NNDSVDa from the eigen-decomposition of ``X^T X`` (``m x m``, exact and deterministic)."""
    xd = x.double()
    evals, evecs = torch.linalg.eigh(xd.T @ xd)
    order = torch.argsort(evals, descending=True)[:n]
    s = evals[order].clamp_min(0).sqrt()
    v = evecs[:, order]
    u = (xd @ v) / s.clamp_min(_TINY)
    W = torch.zeros(x.shape[0], n, dtype=torch.float64, device=x.device)
    H = torch.zeros(n, x.shape[1], dtype=torch.float64, device=x.device)
    W[:, 0] = s[0].sqrt() * u[:, 0].abs()
    H[0] = s[0].sqrt() * v[:, 0].abs()
    for j in range(1, n):
        a, b = u[:, j], v[:, j]
        ap, an, bp, bn = a.clamp_min(0), (-a).clamp_min(0), b.clamp_min(0), (-b).clamp_min(0)
        mp = ap.norm() * bp.norm()
        mn = an.norm() * bn.norm()
        if mp >= mn:
            uu, vv, sigma = ap / ap.norm().clamp_min(_TINY), bp / bp.norm().clamp_min(_TINY), mp
        else:
            uu, vv, sigma = an / an.norm().clamp_min(_TINY), bn / bn.norm().clamp_min(_TINY), mn
        lam = (s[j] * sigma).sqrt()
        W[:, j] = lam * uu
        H[j] = lam * vv
    mean = xd.mean()
    W[W < _TINY] = mean
    H[H < _TINY] = mean
    return W.to(x.dtype), H.to(x.dtype)


def _objective(x: torch.Tensor, W: torch.Tensor, H: torch.Tensor) -> float:
    total = 0.0
    for start in range(0, x.shape[0], 65536):  # in chunks: no (rows, m) residual of a large sample
        r = x[start : start + 65536] - W[start : start + 65536] @ H
        total += float(r.double().pow(2).sum())
    return 0.5 * total


def _sweep_h(WtW: torch.Tensor, WtX: torch.Tensor, H: torch.Tensor) -> None:
    for j in range(H.shape[0]):
        H[j] = (H[j] + (WtX[j] - WtW[j] @ H) / WtW[j, j].clamp_min(_TINY)).clamp_min(0)


def _sweep_w(HHt: torch.Tensor, XHt: torch.Tensor, W: torch.Tensor) -> None:
    for j in range(W.shape[1]):
        W[:, j] = (W[:, j] + (XHt[:, j] - W @ HHt[:, j]) / HHt[j, j].clamp_min(_TINY)).clamp_min(0)


def nmf(x: torch.Tensor, n: int, *, max_iter: int = 1000, tol: float = 1e-7) -> Factorization:
    """Factorise the non-negative ``(rows, m)`` matrix ``x`` into ``n`` components (see the module
    docstring). Deterministic: the start is computed, not drawn. Components are returned with unit
    length and ordered by their mean activation (strongest first)."""
    if x.dim() != 2:
        raise CnnlensError(f"nmf needs a (rows, features) matrix, not {tuple(x.shape)}", param="x")
    rows, m = x.shape
    if not 1 <= n <= min(rows, m):
        raise CnnlensError(f"n: {n} components of a {rows} x {m} matrix; give 1..{min(rows, m)}", param="n")
    if bool((x < 0).any()):
        raise CnnlensError("nmf needs a non-negative matrix", param="x")
    x = x.float()
    W, H = _nndsvda(x, n)
    start = _objective(x, W, H)
    previous = start
    iterations = 0
    for it in range(1, max_iter + 1):
        _sweep_h(W.T @ W, W.T @ x, H)
        _sweep_w(H @ H.T, x @ H.T, W)
        iterations = it
        if it % 10 == 0:
            now = _objective(x, W, H)
            if start > 0 and (previous - now) / start < tol:
                break
            previous = now
    scale = H.norm(dim=1).clamp_min(_TINY)
    W, H = W * scale, H / scale[:, None]
    order = torch.argsort(W.mean(0), descending=True, stable=True)
    W, H = W[:, order].contiguous(), H[order].contiguous()
    objective = _objective(x, W, H)
    norm = float(x.double().pow(2).sum())
    return Factorization(W, H, objective, (2 * objective / norm) ** 0.5 if norm > 0 else 0.0, iterations)


def project(x: torch.Tensor, H: torch.Tensor, *, sweeps: int = 50) -> torch.Tensor:
    """The non-negative ``W`` ``(rows, n)`` minimising ``||x - W H||_F`` for fixed components ``H``
    ``(n, m)``: least squares clipped at zero, then ``sweeps`` HALS sweeps. Each row is solved on
    its own, so a row's answer does not depend on the other rows of the batch."""
    H = H.to(x.device, x.dtype)
    HHt = H @ H.T
    XHt = x @ H.T
    W = torch.linalg.lstsq(HHt.double(), XHt.T.double()).solution.T.to(x.dtype).clamp_min(0).contiguous()
    for _ in range(sweeps):
        _sweep_w(HHt, XHt, W)
    return W
