"""Metrics of a recovered matrix (NumPy, float64 internally).

- reconstruction error (the paper's test error on synthetic data): ``mean_{ij} (W_ij - W*_ij)^2``;
- test error (real data): mean squared error on the held-out ratings;
- nuclear norm ``||W||_* = sum_i sigma_i``;
- effective rank (Roy and Vetterli 2007): ``exp(H(p))`` with ``p_i = sigma_i / sum_k sigma_k``
  and ``H(p) = -sum_i p_i log p_i`` (``0 log 0 = 0``);
- Schatten-p quasi-norm to the power p: ``sum_i sigma_i^p``;
- numerical rank: number of ``sigma_i > tol * sigma_1``, by default ``tol = 1e-2``
  (:data:`NUMERICAL_RANK_TOL`): training stops at a train loss of 1e-6, which leaves residue
  of up to ~1e-3 ``sigma_1`` in the directions it never moved; above 1% only what was learned
  counts (a recovered rank-5 matrix reads 5, where 1e-6 read 70-100).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .problems import CompletionObservations


def singular_values(w: np.ndarray) -> np.ndarray:
    """Singular values in decreasing order (float64)."""
    return np.linalg.svd(np.asarray(w, dtype=np.float64), compute_uv=False)


def reconstruction_error(w: np.ndarray, w_star: np.ndarray) -> float:
    """``mean_{ij} (W_ij - W*_ij)^2`` over all d1*d2 entries."""
    w = np.asarray(w, dtype=np.float64)
    w_star = np.asarray(w_star, dtype=np.float64)
    if w.shape != w_star.shape:
        raise ValueError(f"shape mismatch: {w.shape} vs ground truth {w_star.shape}")
    return float(np.mean((w - w_star) ** 2))


def nuclear_norm(w: np.ndarray) -> float:
    return float(np.sum(singular_values(w)))


def effective_rank(w: np.ndarray | None = None, *, sigma: np.ndarray | None = None) -> float:
    """``exp`` of the Shannon entropy of the normalized singular values (0 for the zero matrix)."""
    s = singular_values(w) if sigma is None else np.asarray(sigma, dtype=np.float64)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s[s > 0] / total
    return float(np.exp(-np.sum(p * np.log(p))))


def schatten_p(w: np.ndarray, p: float) -> float:
    """``sum_i sigma_i^p`` (Schatten-p quasi-norm to the power p, for 0 < p)."""
    if p <= 0:
        raise ValueError(f"p must be positive, got {p}")
    s = singular_values(w)
    return float(np.sum(s[s > 0] ** p))


NUMERICAL_RANK_TOL = 1e-2


def numerical_rank(w: np.ndarray, tol: float = NUMERICAL_RANK_TOL) -> int:
    """Number of singular values above ``tol * sigma_max``."""
    s = singular_values(w)
    if s.size == 0 or s[0] == 0:
        return 0
    return int(np.sum(s > tol * s[0]))


def held_out_error(w: np.ndarray, test: "CompletionObservations") -> float:
    """Mean squared error on held-out entries: ``mean_k (W[i_k, j_k] - y_k)^2``."""
    w = np.asarray(w, dtype=np.float64)
    return float(np.mean((w[test.rows, test.cols] - test.values) ** 2))


def summary(w: np.ndarray, w_star: np.ndarray | None = None) -> dict[str, float]:
    """The per-run metrics recorded in the tables (one SVD); the reconstruction error only
    where there is a ground truth."""
    s = singular_values(w)
    return {
        **({"recon_error": reconstruction_error(w, w_star)} if w_star is not None else {}),
        "nuclear_norm": float(s.sum()),
        "effective_rank": effective_rank(sigma=s),
        "numerical_rank": int(np.sum(s > NUMERICAL_RANK_TOL * s[0])) if s[0] > 0 else 0,
        "spectral_norm": float(s[0]),
    }


def first_passage(losses: Any, values: Any, levels: Any) -> np.ndarray:
    """Each ``values[k]`` at the first record whose loss is at most each of ``levels`` (NaN
    where the loss never got there): first passage, so that a trajectory's later ups and downs do
    not count. A path stopped at a threshold ends a hair above it (an ODE event, a step's
    rounding): 1e-6 relative counts."""
    reached = np.fmin.accumulate(np.asarray(losses, dtype=np.float64))  # the lowest loss so far
    levels = np.asarray(levels, dtype=np.float64)
    index = np.searchsorted(-reached, -levels * (1 + 1e-6), side="left")  # first record at or below
    out = np.full(levels.shape, np.nan)
    ok = index < len(reached)
    out[ok] = np.asarray(values, dtype=np.float64)[index[ok]]
    return out
