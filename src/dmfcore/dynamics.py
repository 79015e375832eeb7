"""Training dynamics: singular values and the alignment of singular vectors with the gradient.

Corollary 1 of the paper: under gradient flow from a balanced initialization, the singular
vectors of the end-to-end matrix ``W = U S V^T`` stay (approximately) aligned with the
gradient, i.e. ``U^T grad l(W) V`` is nearly diagonal, and the singular values move as

    d sigma_r / dt = -N sigma_r^(2 - 2/N) <grad l(W), u_r v_r^T>,

so large singular values move faster the deeper the factorization (rate ~ sigma^(2-2/N)).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .backend import namespace_of, to_numpy


def alignment_statistics(w: Any, grad_w: Any) -> dict[str, float]:
    """Mean and std of ``|diag|`` and ``|off-diag|`` entries of ``M = U^T grad l(W) V``.

    ``U, V`` are the (thin) singular vectors of ``W``; ``M`` is r x r with r = min(d1, d2).
    Std is the sample standard deviation (ddof=1), as in the paper's code. Returns the
    singular values too (under key ``"sigma"``), since they come from the same SVD, and the
    signed diagonal ``u_r^T grad l(W) v_r`` (under ``"projection"``: Theorem 3's factor; it
    does not depend on the SVD's sign choice, which flips ``u_r`` and ``v_r`` together).
    """
    xp = namespace_of(w)
    u, s, vh = xp.linalg.svd(w, full_matrices=False)
    signed = to_numpy(u.T @ grad_w @ vh.T).astype(np.float64)
    m = np.abs(signed)
    diag = np.diag(m)
    off = m[~np.eye(*m.shape, dtype=bool)]
    return {
        "diag_mean": float(diag.mean()),
        "diag_std": float(diag.std(ddof=1)) if diag.size > 1 else 0.0,
        "offdiag_mean": float(off.mean()) if off.size else 0.0,
        "offdiag_std": float(off.std(ddof=1)) if off.size > 1 else 0.0,
        "sigma": to_numpy(s).astype(np.float64),
        "projection": np.diag(signed).copy(),
    }


def predicted_rate(sigma: np.ndarray, projection: np.ndarray, depth: int) -> np.ndarray:
    """Theorem 3: ``d sigma_r / dt = -N (sigma_r^2)^(1 - 1/N) <grad l(W), u_r v_r^T>`` for
    balanced factors under gradient flow (``t``: gradient-flow time)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    return -depth * (sigma**2) ** (1.0 - 1.0 / depth) * np.asarray(projection, dtype=np.float64)

