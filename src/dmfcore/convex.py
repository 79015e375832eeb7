"""The minimum nuclear norm baseline: ``min ||W||_*  s.t.  A(W) = y``.

:func:`min_nuclear_norm` picks the solver by size (:func:`choose_solver`):

- completion: ``admm-ipm``, the certified first-order solver of :mod:`dmfcore.nuclear_admm`
  (it certifies the easy instances in a few hundred iterations), for as long as its gap,
  extrapolated at its recent rate (:func:`iterations_to_tol`), would reach the tolerance sooner
  than the certified interior-point method of :mod:`dmfcore.nuclear_ipm` is expected to finish
  from scratch (:func:`ipm_seconds`); then that method (it reaches 1e-8 at the recovery
  threshold, where the first-order solver slows to a crawl). Large matrices
  (``d1 d2 > SCS_COMPLETION_MAX_ENTRIES``) go to the interior-point method directly while its dense m x m Schur complement fits
  (``m <= IPM_MAX_OBS``), else to the first-order solver. Measured: docs/performance.md.
- sensing: the first-order solver, certified on every sensing instance of the default and
  paper grids and faster than SCS at every size measured (20 x 20, rank 1, m = 40-170: 0.04 s
  against 0.12 s a solve, without cvxpy's ~1 s import; 50 x 50, rank 3, m = 300-600: 8.5x less
  CPU time), which also runs out of memory at d = 100 (2.2 GB and ~22 s at m = 1000, 6.6 GB and
  ~130 s at m = 2000, over 11 GB at m = 5000). SCS stays selectable (``cvxpy-scs``).

Completion is solved with cvxpy + SCS with *equality* constraints and ``eps_abs = eps_rel = 1e-8``.
(The paper's code relaxes the constraints to ``|W_ij - y_ij| <= 1e-3``, which biases the
optimum low by about 1e-3 relative; we do not copy that.) The returned matrix is
projected onto the exact constraint set (observed entries overwritten by their values),
so it is exactly feasible, and its nuclear norm is reported after that projection with
the solver's max constraint residual before it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .metrics import singular_values
from .problems import CompletionObservations, Observations, SensingObservations, max_constraint_residual

SOLVERS = ("auto", "cvxpy-scs", "admm-svt", "ipm", "admm-ipm")
# completion matrices with more entries than this go to the first-order solver too: SCS's
# semidefinite formulation has a (d1 + d2)^2 matrix variable (MovieLens 100K: 2625^2)
SCS_COMPLETION_MAX_ENTRIES = 250_000
# admm-ipm: first-order iterations before the interior-point method may take over (the easy
# 100 x 100 instances certify to 1e-8 in 100-600 iterations, 0.1-0.8 s; near the recovery
# threshold the first-order solver needs 2,000-10,000 and more, and stalls at it)
ADMM_MIN_ITERS = 500
# admm-ipm's cost model, one core (measured on this project's 2-core machine, docs/performance.md):
# a first-order iteration (an eigendecomposition, certificates every 10) 0.07-0.10 ms at 30 x 30,
# 0.74 ms at 100 x 100, 3.4 ms at 200 x 200 and 8.6 ms at 300 x 300 (fitted at 100 x 100, so it
# overprices the larger ones: the interior-point method takes over a little early there); the
# interior-point method, an m x m Cholesky factor in each of its 10-15 iterations, 0.02-0.12 s at
# 30 x 30 (m = 175-500) and 2.4-8.8 s at 100 x 100 (m = 2,500-4,000)
ADMM_SECONDS_PER_ITERATION = (1e-4, 6.5e-10)  # + per short side^2 x long side
IPM_SECONDS = (0.1, 1.5e-10)  # + per m^3
# the interior-point method's Schur complement is a dense m x m float64 matrix (800 MB at
# MovieLens 100K's m = 10,000); above this many observations completion stays first order
IPM_MAX_OBS = 15_000


@dataclass(frozen=True)
class ConvexResult:
    w: np.ndarray  # exactly feasible solution (float64)
    nuclear_norm: float  # of ``w``
    max_residual: float  # max |pred - y| of the solver's raw answer, before projection
    solver: str
    status: str
    wall_seconds: float
    lower_bound: float | None = None  # certified lower bound on the optimum (first-order solver)
    relative_gap: float | None = None  # (nuclear_norm - lower_bound) / nuclear_norm
    iterations: int | None = None


def min_nuclear_norm_completion(
    obs: CompletionObservations, eps: float = 1e-8, max_iters: int = 100_000, verbose: bool = False
) -> ConvexResult:
    """Minimum nuclear norm matrix agreeing with the observed entries (cvxpy + SCS)."""
    return _solve_scs(obs, eps, max_iters, verbose)


def _solve_scs(obs: Observations, eps: float, max_iters: int, verbose: bool) -> ConvexResult:
    import cvxpy as cp

    d1, d2 = obs.shape
    start = time.perf_counter()
    x = cp.Variable((d1, d2))
    if isinstance(obs, CompletionObservations):
        constraints = [x[obs.rows, obs.cols] == obs.values]
    else:
        a = obs.A.reshape(obs.m, d1 * d2).astype(np.float64)
        constraints = [a @ cp.vec(x, order="C") == obs.y]
    problem = cp.Problem(cp.Minimize(cp.normNuc(x)), constraints)
    problem.solve(
        solver=cp.SCS, eps_abs=eps, eps_rel=eps, max_iters=max_iters, verbose=verbose
    )
    wall = time.perf_counter() - start
    if x.value is None:
        raise RuntimeError(f"SCS returned no solution (status {problem.status!r})")
    raw = np.asarray(x.value, dtype=np.float64)
    residual = max_constraint_residual(raw, obs)
    if isinstance(obs, CompletionObservations):
        w = raw.copy()
        w[obs.rows, obs.cols] = obs.values
    else:
        from .nuclear_admm import measurement_map

        w = measurement_map(obs).project(raw)[0]
    return ConvexResult(
        w, float(singular_values(w).sum()), residual, "cvxpy-scs", str(problem.status), wall
    )


# The relative duality gap at which the first-order solver stops: the project's one default
# (the workflow's `nuclear_norm_tol`, the command line and the library all take it from here).
NUCLEAR_NORM_TOL = 1e-8


def choose_solver(obs: Observations) -> str:
    """Completion: ``admm-ipm`` (``ipm`` for large matrices, ``admm-svt`` above ``IPM_MAX_OBS``
    observations); sensing: ``admm-svt`` (see the measurements above)."""
    d1, d2 = obs.shape
    if isinstance(obs, CompletionObservations):
        if obs.m > IPM_MAX_OBS:
            return "admm-svt"
        return "ipm" if d1 * d2 > SCS_COMPLETION_MAX_ENTRIES else "admm-ipm"
    return "admm-svt"


def ipm_seconds(m: int) -> float:
    """Expected CPU seconds of the interior-point method on ``m`` observed entries (one core)."""
    base, per_cube = IPM_SECONDS
    return base + per_cube * float(m) ** 3


def admm_iteration_seconds(shape: tuple[int, int]) -> float:
    """Expected CPU seconds of one first-order iteration on a ``d1 x d2`` matrix (one core)."""
    short, long = sorted(shape)
    base, per_entry = ADMM_SECONDS_PER_ITERATION
    return base + per_entry * float(short) ** 2 * long


def iterations_to_tol(history: Sequence[tuple[int, float]], tol: float) -> float:
    """Iterations a certified solver still needs to reach the relative gap ``tol``, from its
    certificates so far, ``(iteration, gap)`` pairs with the gap non-increasing: the gap's decline
    over the second half of the run, ``rate = log10(gap(h) / gap(k)) / (k - h)`` decades an
    iteration (``h`` the last certificate at or before half the ``k`` iterations so far),
    extrapolated: ``log10(gap(k) / tol) / rate``. Infinite where the gap did not fall, NaN where
    no certificate is that old yet (too early to tell)."""
    k, gap = history[-1]
    if gap <= tol:
        return 0.0
    older = [(i, g) for i, g in history if i <= k / 2]
    if not older:
        return math.nan
    k_half, gap_half = older[-1]
    if not gap_half > gap:
        return math.inf
    rate = math.log10(gap_half / gap) / (k - k_half)
    return math.log10(gap / tol) / rate


def default_check_every(obs: Observations) -> int:
    """Iterations between the first-order solver's certificates (two full SVDs and a top
    singular value each): every 10 at the paper's sizes (against every 5: 17% less CPU time on
    the default run's five slowest 100 x 100 instances, at most 9 iterations more on an easy
    one), every 50 where a certificate costs several iterations (MovieLens 100K: ~1 s against
    ~0.1 s for an iteration)."""
    d1, d2 = obs.shape
    return 50 if d1 * d2 > SCS_COMPLETION_MAX_ENTRIES else 10


def min_nuclear_norm(
    obs: Observations,
    solver: str = "auto",
    tol: float = NUCLEAR_NORM_TOL,
    check_every: int | None = None,
) -> ConvexResult:
    """Minimum nuclear norm solution with the given (or automatically chosen) solver.

    ``tol`` is the certified solvers' relative duality gap; SCS runs at eps 1e-8.
    ``check_every`` (first-order solver only) is the number of iterations between duality-gap
    certificates; None picks :func:`default_check_every`.

    ``ipm`` and ``admm-ipm`` take completion only. ``admm-ipm`` runs ``admm-svt`` for at least
    ``ADMM_MIN_ITERS`` iterations, then while the time its remaining iterations are expected to
    take (:func:`iterations_to_tol` times :func:`admm_iteration_seconds`) is at most
    :func:`ipm_seconds`; if that ends uncertified, the interior-point method from scratch. The
    choice depends on iteration counts and sizes, not on clocks: the same data give the same
    answer. Its result names the solver that certified it (``admm-svt``, or ``admm-svt+ipm`` with the
    interior-point iterations and both solvers' wall time).
    """
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}")
    if solver == "auto":
        solver = choose_solver(obs)
    if solver == "cvxpy-scs":
        return _solve_scs(obs, 1e-8, 100_000, False)
    if solver in ("ipm", "admm-ipm") and not isinstance(obs, CompletionObservations):
        raise ValueError(f"solver {solver!r} handles completion only (use admm-svt or cvxpy-scs)")
    from .nuclear_admm import min_nuclear_norm_admm
    from .nuclear_ipm import min_nuclear_norm_ipm

    if solver == "ipm":
        return _convex_result(min_nuclear_norm_ipm(obs, tol=tol))
    if check_every is None:
        check_every = default_check_every(obs)
    if solver == "admm-svt":
        return _convex_result(min_nuclear_norm_admm(obs, tol=tol, check_every=check_every))
    history: list[tuple[int, float]] = []
    ipm_iterations = ipm_seconds(obs.m) / admm_iteration_seconds(obs.shape)  # as many first-order ones

    def switch_to_ipm(iterations: int, gap: float, seconds: float) -> bool:
        history.append((iterations, gap))
        return iterations >= ADMM_MIN_ITERS and iterations_to_tol(history, tol) > ipm_iterations  # NaN: go on

    first = min_nuclear_norm_admm(obs, tol=tol, check_every=check_every, stop_early=switch_to_ipm)
    if first.status == "optimal":
        return _convex_result(first)
    second = min_nuclear_norm_ipm(obs, tol=tol)
    best = second if second.relative_gap <= first.relative_gap else first  # the better certificate
    return _convex_result(best, "admm-svt+ipm", first.wall_seconds + second.wall_seconds - best.wall_seconds)


def _convex_result(res, solver: str | None = None, extra_seconds: float = 0.0) -> ConvexResult:
    return ConvexResult(
        res.w, res.nuclear_norm, res.max_residual, solver or res.solver, res.status,
        res.wall_seconds + extra_seconds, res.lower_bound, res.relative_gap, res.iterations,
    )
