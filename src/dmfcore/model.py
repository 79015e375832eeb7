"""Deep matrix factorization ``W = W_N ... W_1``: initializations, product, hand-written gradients.

Shapes: ``W_1`` is (h, d2), ``W_j`` (h, h) for 1 < j < N, ``W_N`` (d1, h), where the
hidden width ``h`` defaults to ``min(d1, d2)`` (full-dimensional factorization, as in
the paper). Depth ``N = 1`` trains ``W`` itself.

Gradients (backpropagation through the chain of products). With prefix products
``P_j = W_j ... W_1`` (``P_0 = I``, ``P_N = W``) and ``dP_N = grad l(W)``::

    grad_{W_j} = dP_j P_{j-1}^T,      dP_{j-1} = W_j^T dP_j,

which costs ``N - 1`` products forward and ``2(N - 1)`` backward: ``3(N - 1)`` matrix
products per step, the minimum for this chain.

Layout: the backward pass runs on transposes, ``dP_{j-1}^T = dP_j^T W_j`` and
``grad_{W_j}^T = P_{j-1} dP_j^T``, so that every product is ``A @ B`` with ``B``
row-major: OpenBLAS runs ``A @ B.T`` about 30% slower at d = 100. The gradients are
returned as transposed views of those row-major buffers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .backend import Backend, backend_of, namespace_of

INITS = ("gaussian", "identity", "orthogonal", "balanced", "normal_posdet", "normal_negdet", "balanced_posdet")
# The inits drawn again until the end-to-end matrix's determinant has a sign (Razin & Cohen 2020):
# init -> (the init drawn, the sign wanted).
DET_CONDITIONED = {"normal_posdet": ("normal", 1), "normal_negdet": ("normal", -1), "balanced_posdet": ("balanced", 1)}
# Draws tried before such an init gives up (each has probability about 1/2).
MAX_INIT_DRAWS = 1000


def factor_shapes(shape: tuple[int, int], depth: int, width: int | None = None) -> list[tuple[int, int]]:
    """Shapes of ``W_1, ..., W_N`` for an end-to-end ``shape`` = (d1, d2) matrix."""
    d1, d2 = shape
    if not isinstance(depth, (int, np.integer)) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    h = min(d1, d2) if width is None else width
    if h < 1:
        raise ValueError(f"width must be >= 1, got {h}")
    if depth == 1:
        return [(d1, d2)]
    return [(h, d2)] + [(h, h)] * (depth - 2) + [(d1, h)]


def _random_orthogonal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (QR of a Gaussian, sign-fixed)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if rows >= cols else q.T


def init_factors(
    shape: tuple[int, int],
    depth: int,
    init: str = "gaussian",
    init_scale: float = 1e-3,
    seed: int = 0,
    width: int | None = None,
) -> list[np.ndarray]:
    """Initial factors ``[W_1, ..., W_N]`` (float64 NumPy; cast by the caller).

    - ``gaussian`` (the paper's code): every entry iid ``N(0, s^2)``,
      ``s = init_scale^(1/N) / sqrt(h)``, so ``E ||W(0)||_F^2 = init_scale^2 d1 d2 / h``
      (``||W(0)||_F ~ init_scale sqrt(d)`` for square d x d).
    - ``identity``: ``W_j = init_scale^(1/N) I`` (rectangular identity when not square).
    - ``orthogonal`` (the paper's code): ``W_j = c Q_j`` with ``Q_j`` random orthogonal and
      ``c = (init_scale sqrt(d1))^(1/N)``.
    - ``balanced``: a Gaussian end-to-end matrix ``W0`` with ``||W0||_F = init_scale sqrt(h)``,
      SVD ``W0 = U S V^T``, and ``W_1 = Q_1 S^(1/N) V^T``, ``W_j = Q_j S^(1/N) Q_{j-1}^T``,
      ``W_N = U S^(1/N) Q_{N-1}^T`` with random orthogonal ``Q_j``; then ``W_N ... W_1 = W0``
      and ``W_{j+1}^T W_{j+1} = W_j W_j^T`` for every j (Arora et al. 2018).
    - ``normal_posdet``, ``normal_negdet`` (Razin & Cohen's code): every factor entry iid
      ``N(0, init_scale^2)``, drawn again until ``det(W(0))`` is positive (negative); square
      matrices only. ``balanced_posdet``: ``balanced``, drawn again until ``det(W(0)) > 0``.
    """
    return init_factors_and_draws(shape, depth, init, init_scale, seed, width)[0]


def init_factors_and_draws(
    shape: tuple[int, int],
    depth: int,
    init: str = "gaussian",
    init_scale: float = 1e-3,
    seed: int = 0,
    width: int | None = None,
) -> tuple[list[np.ndarray], int]:
    """:func:`init_factors`, with how many draws it took (1 but for the determinant-conditioned
    inits of :data:`DET_CONDITIONED`, which draw from one random stream until ``det(W(0))`` has
    the sign they want)."""
    if init in DET_CONDITIONED:
        base, sign = DET_CONDITIONED[init]
        if shape[0] != shape[1]:
            raise ValueError(f"init {init!r} conditions det(W(0)): it needs a square matrix, got {shape}")
        rng = np.random.default_rng(seed)
        for draw in range(1, MAX_INIT_DRAWS + 1):
            factors = _draw_factors(shape, depth, base, init_scale, rng, width)
            if sign * np.linalg.det(end_to_end(factors)) > 0:
                return factors, draw
        raise ValueError(f"init {init!r}: no draw in {MAX_INIT_DRAWS} had det(W(0)) of sign {sign:+d}")
    return _draw_factors(shape, depth, init, init_scale, np.random.default_rng(seed), width), 1


def _draw_factors(
    shape: tuple[int, int], depth: int, init: str, init_scale: float, rng: np.random.Generator, width: int | None
) -> list[np.ndarray]:
    shapes = factor_shapes(shape, depth, width)
    if not (isinstance(init_scale, (int, float)) and init_scale > 0 and math.isfinite(init_scale)):
        raise ValueError(f"init_scale must be a positive finite number, got {init_scale!r}")
    n = depth
    h = shapes[0][0] if depth > 1 else min(shape)
    if init == "gaussian":
        s = init_scale ** (1.0 / n) / math.sqrt(h)
        return [rng.standard_normal(sh) * s for sh in shapes]
    if init == "normal":  # Razin & Cohen's code: every factor entry iid N(0, init_scale^2)
        return [rng.standard_normal(sh) * init_scale for sh in shapes]
    if init == "identity":
        c = init_scale ** (1.0 / n)
        return [np.eye(*sh) * c for sh in shapes]
    if init == "orthogonal":
        c = (init_scale * math.sqrt(shape[0])) ** (1.0 / n)
        return [_random_orthogonal(rng, *sh) * c for sh in shapes]
    if init == "balanced":
        if width is not None and width != min(shape):
            raise ValueError("balanced init needs the full width min(d1, d2)")
        w0 = rng.standard_normal(shape)
        w0 *= init_scale * math.sqrt(h) / np.linalg.norm(w0)
        u, s, vt = np.linalg.svd(w0, full_matrices=False)
        root = s ** (1.0 / n)
        if n == 1:
            return [w0]
        q = [_random_orthogonal(rng, h, h) for _ in range(n - 1)]
        factors = [q[0] * root @ vt]
        factors += [q[j] * root @ q[j - 1].T for j in range(1, n - 1)]
        factors.append(u * root @ q[n - 2].T)
        return factors
    raise ValueError(f"init must be one of {INITS}, got {init!r}")


def end_to_end(factors: Sequence[Any]) -> Any:
    """The product ``W_N ... W_1``."""
    w = factors[0]
    for f in factors[1:]:
        w = f @ w
    return w


@dataclass
class Workspace:
    """Preallocated buffers for one deep factorization."""

    prefix: list[Any]  # P_1 .. P_N (P_1 is W_1 itself, not copied)
    grads_t: list[Any]  # grad_{W_j}^T, row-major views into grad_flat
    grad_flat: Any  # every factor's gradient entries in one buffer: one norm, one scaling per step
    dp_t: list[Any]  # two ping-pong buffers for dP_j^T (d2 x h)
    grad_w_t: Any  # grad l(W)^T, (d2, d1): objectives write the gradient through its .T view

    @property
    def grad_w(self) -> Any:
        """``grad l(W)`` as a (d1, d2) view."""
        return self.grad_w_t.T


def make_workspace(factors: Sequence[Any], backend: Backend) -> Workspace:
    n = len(factors)
    d2 = factors[0].shape[1]
    d1 = factors[-1].shape[0]
    h = factors[0].shape[0]
    prefix = [factors[0]] + [backend.empty((f.shape[0], d2)) for f in factors[1:]]
    sizes = [f.shape[0] * f.shape[1] for f in factors]
    grad_flat = backend.empty((sum(sizes),))
    offsets = np.cumsum([0] + sizes)
    grads_t = [grad_flat[a:b].reshape(f.shape[1], f.shape[0]) for a, b, f in zip(offsets, offsets[1:], factors)]
    dp_t = [backend.empty((d2, h)) for _ in range(2 if n > 2 else 0)]
    return Workspace(prefix, grads_t, grad_flat, dp_t, backend.empty((d2, d1)))


def forward(factors: Sequence[Any], ws: Workspace) -> Any:
    """Fill the prefix products ``P_j = W_j P_{j-1}`` and return ``W = P_N``."""
    xp = namespace_of(factors[0])
    ws.prefix[0] = factors[0]
    for j in range(1, len(factors)):
        xp.matmul(factors[j], ws.prefix[j - 1], out=ws.prefix[j])
    return ws.prefix[-1]


def backward(factors: Sequence[Any], ws: Workspace) -> list[Any]:
    """Gradients of ``l`` with respect to every factor, from ``ws.grad_w`` (after :func:`forward`).

    Returns views ``grad_{W_j}`` (transposes of the row-major ``ws.grads_t``, overwritten
    on the next call).
    """
    xp = namespace_of(ws.grad_w_t)
    n = len(factors)
    if n == 1:
        ws.grads_t[0][...] = ws.grad_w_t
        return [ws.grads_t[0].T]
    dp_t = ws.grad_w_t
    for j in range(n - 1, 0, -1):  # 0-based j: factor W_{j+1}
        xp.matmul(ws.prefix[j - 1], dp_t, out=ws.grads_t[j])
        nxt = ws.grads_t[0] if j == 1 else ws.dp_t[j % 2]
        xp.matmul(dp_t, factors[j], out=nxt)
        dp_t = nxt
    return [g.T for g in ws.grads_t]


def factor_gradients(factors: Sequence[Any], grad_w: Any) -> list[Any]:
    """Allocating version of :func:`forward` + :func:`backward` (for tests and one-off use)."""
    ws = make_workspace(factors, backend_of(factors[0]))
    forward(factors, ws)
    ws.grad_w_t[...] = grad_w.T
    return [g.copy() if isinstance(g, np.ndarray) else g.clone() for g in backward(factors, ws)]


def step_flops(shape: tuple[int, int], depth: int, width: int | None = None) -> float:
    """Floating-point operations of one training step (the ``3(N - 1)`` matrix products of
    :func:`forward` and :func:`backward`; the objective's own cost is not counted)."""
    shapes = factor_shapes(shape, depth, width)
    d2 = shape[1]
    # forward: P_j = W_j P_{j-1}; backward: grad_{W_j}^T = P_{j-1} dP_j^T and dP_{j-1}^T = dP_j^T W_j,
    # each a (rows(W_j) x cols(W_j)) by (cols(W_j) x d2) product: 2 * rows * cols * d2 flops
    return float(sum(3 * 2 * rows * cols * d2 for rows, cols in shapes[1:]))
