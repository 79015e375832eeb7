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


def thin_svd(w: Any) -> tuple[Any, Any, Any]:
    """Thin SVD ``W = U diag(s) V^T`` in float64 through the Gram matrix, on ``w``'s device.

    For ``W`` of shape d1 x d2 with d1 <= d2: ``W W^T = U diag(s^2) U^T`` (a symmetric
    eigenproblem of size d1), then ``W^T U = V diag(s)``, whose orthonormal factor is taken
    by a QR decomposition (signs fixed so that ``diag(R) >= 0``); d1 > d2 is the transpose.
    Returns ``(U, s, V)`` with ``s`` in decreasing order (``V``, not ``V^T``).

    Why not a library SVD: at MovieLens' 943 x 1682 cuSOLVER's thin SVD takes 53 ms on an
    H200 and a whole record this way 22 ms, and the dynamics runs pay it every record. In
    float64 the Gram matrix loses nothing a float32 ``W`` holds: the singular values come out
    with absolute error ~1e-16 sigma_1^2 / sigma_r on sigma_r, below float32's own rounding
    of ``W`` (~1e-7 sigma_1). Singular vectors of (nearly) equal singular values are any
    orthonormal basis of their space, as with any SVD; ``W^T U``'s QR keeps ``V`` paired
    with ``U`` (``u_r^T W v_r = s_r``) even there, and orthonormal where ``s_r`` is ~0.
    """
    xp = namespace_of(w)
    w64 = w.astype(np.float64) if xp is np else w.to(dtype=xp.float64)
    flip = w64.shape[0] > w64.shape[1]
    a = w64.T if flip else w64
    eigenvalues, u = xp.linalg.eigh(a @ a.T)
    eigenvalues, u = xp.flip(eigenvalues, (0,)), xp.flip(u, (1,))  # decreasing
    s = xp.sqrt(xp.clip(eigenvalues, 0.0, None))
    q, r = xp.linalg.qr(a.T @ u)
    signs = xp.where(xp.diagonal(r) < 0, -1.0, 1.0)
    v = q * signs
    return (v, s, u) if flip else (u, s, v)


def alignment_statistics(w: Any, grad_w: Any) -> dict[str, float]:
    """Mean and std of ``|diag|`` and ``|off-diag|`` entries of ``M = U^T grad l(W) V``.

    ``U, V`` are the (thin) singular vectors of ``W`` (:func:`thin_svd`, float64); ``M`` is
    r x r with r = min(d1, d2). Std is the sample standard deviation (ddof=1), as in the
    paper's code. Returns the singular values too (under key ``"sigma"``), since they come
    from the same SVD, and the signed diagonal ``u_r^T grad l(W) v_r`` (under
    ``"projection"``: Theorem 3's factor; it does not depend on the SVD's sign choice, which
    flips ``u_r`` and ``v_r`` together).
    """
    u, s, v = thin_svd(w)
    g64 = grad_w.astype(np.float64) if isinstance(grad_w, np.ndarray) else grad_w.to(dtype=u.dtype)
    signed = to_numpy(u.T @ g64 @ v)
    m = np.abs(signed)
    diag = np.diag(m)
    off = m[~np.eye(*m.shape, dtype=bool)]
    return {
        "diag_mean": float(diag.mean()),
        "diag_std": float(diag.std(ddof=1)) if diag.size > 1 else 0.0,
        "offdiag_mean": float(off.mean()) if off.size else 0.0,
        "offdiag_std": float(off.std(ddof=1)) if off.size > 1 else 0.0,
        "sigma": to_numpy(s),
        "projection": np.diag(signed).copy(),
    }


def predicted_rate(sigma: np.ndarray, projection: np.ndarray, depth: int) -> np.ndarray:
    """Theorem 3: ``d sigma_r / dt = -N (sigma_r^2)^(1 - 1/N) <grad l(W), u_r v_r^T>`` for
    balanced factors under gradient flow (``t``: gradient-flow time)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    return -depth * (sigma**2) ** (1.0 - 1.0 / depth) * np.asarray(projection, dtype=np.float64)

