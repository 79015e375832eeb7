"""The paper's theory measured on our own trajectories (Arora, Cohen, Hu, Luo 2019).

Each check returns two tables: a summary (one row per case) and the points or curves its
figure draws.

1. **Theorem 3** (:func:`rate_check`): for balanced factors under gradient flow the singular
   values of ``W = W_N ... W_1`` move as

       d sigma_r / dt = -N (sigma_r^2)^(1 - 1/N) <grad l(W), u_r v_r^T>.

   We train with gradient descent at a fixed step ``eta`` (flow time ``t = k eta``),
   recording every step, and compare the *measured* rate (central difference of the recorded
   ``sigma_r`` in flow time) with the *predicted* one (the right-hand side from the recorded
   ``sigma_r`` and ``u_r^T grad l(W) v_r``). A point counts while the singular value is
   *moving*: its measured ``|rate|`` is at least 1% of the largest ``|rate|`` of the run,
   and it is not within 1% of ``sigma_1`` of a neighbouring singular value (where sorted
   singular values swap identities, their derivative jumps). The relative error
   ``|measured - predicted| / |predicted|`` is a discretization error, O(eta): gradient
   descent is Euler's method for the flow and keeps balancedness only to O(eta^2) a step.

2. **One sensing measurement** (:func:`single_measurement`), ``l(W) = 1/2 (<A, W> - y)^2``
   with ``A = diag(a_1, a_2)``, from diagonal balanced factors: W stays diagonal, its entries
   ``w_i`` are signed singular values, and ``dw_i/dt = -N |w_i|^(2 - 2/N) a_i (<A, W> - y)``.
   Dividing the two equations, ``F_N(w_1) / a_1 - F_N(w_2) / a_2`` is constant along the
   trajectory (the paper's closed-form curves), with ``F_N(w) = sign(w) G_N(|w|)``,
   ``G_1(s) = s``, ``G_2(s) = ln s`` and ``G_N(s) = s^(2/N - 1) / (2/N - 1)`` for N >= 3:
   a straight line for N = 1, ever more L-shaped with depth. (Our loss is the mean squared
   error, ``2 l``: the same curves at twice the speed.)

3. **Theorem 2 / Proposition 1** (:func:`commuting_measurements`, :func:`proposition1`):
   with symmetric, commuting measurement matrices and identity initialization ``alpha I``
   at depth 3, the product tends, as ``alpha -> 0``, to a minimum nuclear norm solution over
   PSD matrices (computed independently with cvxpy). Proposition 1's instance: measurements
   of the entries (1, 1) and (2, 2) only, both equal to 1; gradient descent tends to
   ``diag(1, 1, 0, ..., 0)``, while adding ``epsilon`` to the entries (1, 2) and (2, 1)
   keeps every measurement and lowers the Schatten-p quasi-norm ``sum_i sigma_i^p`` for every
   ``0 < p < 1``: the limit does not minimize any Schatten quasi-norm.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from .backend import resolve_backend
from .dynamics import predicted_rate
from .seeds import stream_seed
from .metrics import schatten_p
from .model import init_factors
from .norm_growth import norms_flow_check
from .optimizers import gd
from .problems import SensingObservations, low_rank_ground_truth, make_objective, sample_completion, sample_sensing
from .training import train

MOVING = 0.01  # a point counts while |rate| >= 1% of the run's largest |rate|
NEIGHBOUR_GAP = 0.01  # ... and no neighbouring singular value is within 1% of sigma_1


# ----------------------------------------------------------------------------------------
# 1. Theorem 3


def rate_points(trajectory: dict[str, list], depth: int, top_k: int) -> pd.DataFrame:
    """Measured and predicted rates of ``sigma_1..sigma_k`` at every interior recorded step.

    The trajectory must be recorded at every step (``record_every = 1``); ``moving`` marks
    the points that count (see the module docstring).
    """
    traj = pd.DataFrame(trajectory)
    t = traj["flow_time"].to_numpy()
    sigma = traj[[f"sigma_{r}" for r in range(1, top_k + 1)]].to_numpy()
    proj = traj[[f"proj_{r}" for r in range(1, top_k + 1)]].to_numpy()
    measured = (sigma[2:] - sigma[:-2]) / (t[2:] - t[:-2])[:, None]
    predicted = predicted_rate(sigma[1:-1], proj[1:-1], depth)
    gaps = np.full_like(sigma[1:-1], np.inf)
    diffs = np.abs(np.diff(sigma[1:-1], axis=1))
    gaps[:, :-1] = np.minimum(gaps[:, :-1], diffs)
    gaps[:, 1:] = np.minimum(gaps[:, 1:], diffs)
    largest = np.abs(measured).max() if measured.size else 0.0
    moving = (np.abs(measured) >= MOVING * largest) & (gaps > NEIGHBOUR_GAP * sigma[1:-1, :1])
    rows, r = np.indices(measured.shape)
    return pd.DataFrame({
        "step": traj["step"].to_numpy()[1:-1][rows.ravel()],
        "flow_time": t[1:-1][rows.ravel()],
        "r": r.ravel() + 1,
        "sigma": sigma[1:-1].ravel(),
        "measured_rate": measured.ravel(),
        "predicted_rate": predicted.ravel(),
        "moving": moving.ravel(),
    })


def rate_check(
    problem: str,
    depth: int,
    lr: float,
    init: str = "balanced",
    init_scale: float = 1e-3,
    d: int = 20,
    rank: int = 2,
    n_obs: int = 120,
    seed: int = 0,
    top_k: int = 4,
    flow_time: float = 2000.0,
    loss_threshold: float = 1e-7,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Theorem 3 on one run (float64, gradient descent at step ``lr``): summary and points."""
    w_star = low_rank_ground_truth(d, d, rank, seed)
    sample = sample_completion if problem == "completion" else sample_sensing
    obs = sample(w_star, n_obs, seed=stream_seed(seed, "observations", n_obs))
    backend = resolve_backend("cpu", "float64")
    factors = init_factors((d, d), depth, init, init_scale, stream_seed(seed, "init", depth))
    start = time.perf_counter()
    result = train(
        make_objective(obs, backend), [backend.asarray(f) for f in factors], gd(lr),
        max_iters=int(round(flow_time / lr)), loss_threshold=loss_threshold, record_every=1, top_k=top_k,
    )
    points = rate_points(result.trajectory, depth, top_k)
    counted = points[points["moving"]]
    rel = (np.abs(counted["measured_rate"] - counted["predicted_rate"]) / np.abs(counted["predicted_rate"])).to_numpy()
    summary = {
        "problem": problem, "d": d, "rank": rank, "n_obs": n_obs, "depth": depth, "init": init,
        "init_scale": init_scale, "lr": lr, "steps": result.iterations, "flow_time": result.flow_time,
        "final_loss": result.train_loss, "points": int(rel.size),
        "median_rel_error": float(np.median(rel)) if rel.size else math.nan,
        "p90_rel_error": float(np.quantile(rel, 0.9)) if rel.size else math.nan,
        "wall_seconds": time.perf_counter() - start,
    }
    labels = {k: summary[k] for k in ("problem", "depth", "init", "lr")}
    return summary, points.assign(**labels)


RATE_CASES = {
    # problem: size and a step at which the deepest run is stable; each case also runs at 1/4 of it
    "completion": dict(d=20, rank=2, n_obs=120, lr=0.4),
    "sensing": dict(d=10, rank=2, n_obs=60, lr=0.4),
}


def theorem3(depths: tuple[int, ...] = (1, 2, 3, 4), step_divisors: tuple[int, ...] = (1, 4)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Theorem 3 for every depth on completion and sensing, at several steps (balanced init),
    and at the smallest step from a near-zero Gaussian init (only approximately balanced)."""
    summaries, points = [], []
    for problem, case in RATE_CASES.items():
        size = {k: case[k] for k in ("d", "rank", "n_obs")}
        for depth in depths:
            runs = [("balanced", case["lr"] / k) for k in step_divisors]
            runs.append(("gaussian", case["lr"] / max(step_divisors)))
            for init, lr in runs:
                summary, pts = rate_check(problem, depth, lr, init=init, **size)
                summaries.append(summary)
                points.append(pts[pts["moving"]])
    return pd.DataFrame(summaries), pd.concat(points, ignore_index=True)


# ----------------------------------------------------------------------------------------
# 2. One sensing measurement


def closed_form_invariant(w: np.ndarray, depth: int) -> np.ndarray:
    """``F_N(w) = sign(w) G_N(|w|)`` (module docstring): ``F_N(w_1)/a_1 - F_N(w_2)/a_2`` is
    constant along gradient flow for one diagonal measurement."""
    w = np.asarray(w, dtype=np.float64)
    s = np.abs(w)
    if depth == 1:
        g = s
    elif depth == 2:
        g = np.log(s)
    else:
        q = 2.0 / depth - 1.0
        g = s**q / q
    return np.sign(w) * g


def closed_form_w2(w1: np.ndarray, a: tuple[float, float], start: tuple[float, float], depth: int) -> np.ndarray:
    """The closed-form curve through ``start``: ``w_2`` as a function of ``w_1``."""
    c = closed_form_invariant(np.array(start[0]), depth) / a[0] - closed_form_invariant(np.array(start[1]), depth) / a[1]
    f2 = a[1] * (closed_form_invariant(w1, depth) / a[0] - c)  # = F_N(w_2), same sign as start[1]
    sign = np.sign(start[1])
    if depth == 1:
        return f2
    if depth == 2:
        return sign * np.exp(sign * f2)
    q = 2.0 / depth - 1.0
    return sign * (sign * f2 * q) ** (1.0 / q)


def single_measurement(
    depths: tuple[int, ...] = (1, 2, 3, 4),
    a: tuple[float, float] = (1.0, 0.5),
    y: float = 1.0,
    starts: tuple[tuple[float, float], ...] = ((0.02, 0.01), (0.01, 0.02), (0.02, -0.01)),
    lr: float = 2e-3,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Gradient descent (a small step: close to the flow) on one diagonal measurement from
    balanced diagonal factors; the simulated ``(w_1, w_2)`` against the closed-form curves."""
    backend = resolve_backend("cpu", "float64")
    obs = SensingObservations((2, 2), np.diag(a)[None].astype(np.float64), np.array([y]))
    objective = make_objective(obs, backend)
    summaries, curves = [], []
    for depth in depths:
        for k, start in enumerate(starts):
            root = np.abs(np.array(start)) ** (1.0 / depth)
            factors = [np.diag(root * (np.sign(start) if j == 0 else 1.0)) for j in range(depth)]
            result = train(
                objective, [backend.asarray(f) for f in factors], gd(lr), max_iters=2_000_000,
                loss_threshold=1e-12, record_every=10, top_k=2,
                evaluate=lambda w: {"w1": float(w[0, 0]), "w2": float(w[1, 1]), "off": float(abs(w[0, 1]) + abs(w[1, 0]))},
            )
            traj = pd.DataFrame(result.trajectory)
            w1, w2 = traj["w1"].to_numpy(), traj["w2"].to_numpy()
            curve = closed_form_w2(w1, a, start, depth)
            deviation = np.abs(w2 - curve)
            summaries.append({
                "depth": depth, "start": k, "w1_0": start[0], "w2_0": start[1], "a1": a[0], "a2": a[1], "y": y,
                "lr": lr, "steps": result.iterations, "w1_final": w1[-1], "w2_final": w2[-1],
                "max_deviation": float(deviation.max()),
                "max_rel_deviation": float(deviation.max() / np.abs(w2).max()),
                "max_offdiagonal": float(traj["off"].max()),
            })
            curves.append(pd.DataFrame({"depth": depth, "start": k, "step": traj["step"], "w1": w1, "w2": w2,
                                        "closed_form_w2": curve}))
    return pd.DataFrame(summaries), pd.concat(curves, ignore_index=True)


# ----------------------------------------------------------------------------------------
# 3. Theorem 2 and Proposition 1


def _psd_min_nuclear_norm(a: np.ndarray, y: np.ndarray) -> float:
    """``min trace(X)`` over PSD X with ``<A_k, X> = y_k`` (cvxpy + SCS): for PSD matrices the
    nuclear norm is the trace."""
    import cvxpy as cp

    d = a.shape[1]
    x = cp.Variable((d, d), PSD=True)
    problem = cp.Problem(cp.Minimize(cp.trace(x)), [cp.trace(a_k.T @ x) == y_k for a_k, y_k in zip(a, y)])
    problem.solve(solver=cp.SCS, eps=1e-10, max_iters=200_000)
    return float(problem.value)


def _depth3_identity_limit(a: np.ndarray, y: np.ndarray, alpha: float, lr: float) -> np.ndarray:
    """Gradient descent at depth 3 from ``alpha I`` (factors ``alpha^(1/3) I``) to train loss 1e-12."""
    backend = resolve_backend("cpu", "float64")
    d = a.shape[1]
    objective = make_objective(SensingObservations((d, d), a, y), backend)
    factors = init_factors((d, d), 3, "identity", alpha)
    result = train(objective, [backend.asarray(f) for f in factors], gd(lr), max_iters=1_000_000, loss_threshold=1e-12)
    if not result.converged:
        raise RuntimeError(f"depth 3 from {alpha} I did not reach train loss 1e-12 in {result.iterations} steps")
    return result.w


def commuting_measurements(
    alphas: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4),
    d: int = 5,
    m: int = 3,
    seed: int = 0,
    lr: float = 0.1,
) -> pd.DataFrame:
    """Theorem 2: symmetric commuting measurements ``A_k = diag(lambda_k)`` (Gaussian
    lambda_k: linearly independent), targets from the PSD matrix diag(1, 0.5, 0, ...); the
    nuclear norm of the depth-3 limit from ``alpha I`` against the PSD minimum (an SDP solved
    by cvxpy over all symmetric matrices, not only diagonal ones), for shrinking alpha.

    (Commuting matrices share an eigenbasis; we take it to be the standard one. With a random
    rotation the theorem is the same, but rounding errors push the factors off the commuting
    set and gradient descent needs a hundred times more steps: not a test of the theorem.)
    """
    rng = np.random.default_rng(seed)
    a = np.stack([np.diag(lam) for lam in rng.standard_normal((m, d))])
    x_star = np.diag([1.0, 0.5] + [0.0] * (d - 2))
    y = np.einsum("kij,ij->k", a, x_star)
    best = _psd_min_nuclear_norm(a, y)
    rows = []
    for alpha in alphas:
        start = time.perf_counter()
        w = _depth3_identity_limit(a, y, alpha, lr)
        nuclear = float(np.linalg.svd(w, compute_uv=False).sum())
        rows.append({
            "alpha": alpha, "d": d, "m": m, "nuclear_norm": nuclear, "psd_min_nuclear_norm": best,
            "relative_gap": (nuclear - best) / best,
            "min_eigenvalue": float(np.linalg.eigvalsh((w + w.T) / 2).min()),
            "max_residual": float(np.abs(np.einsum("kij,ij->k", a, w) - y).max()),
            "wall_seconds": time.perf_counter() - start,
        })
    return pd.DataFrame(rows)


def proposition1(
    d: int = 3,
    alpha: float = 1e-4,
    ps: tuple[float, ...] = (0.25, 0.5, 0.75),
    epsilons: tuple[float, ...] = (0.1, 0.5, 0.9),
    lr: float = 0.1,
) -> pd.DataFrame:
    """Proposition 1: measurements of the entries (1, 1) and (2, 2), both 1. Gradient descent at
    depth 3 from ``alpha I`` ends at diag(1, 1, alpha, ...) -> diag(1, 1, 0, ...); the perturbed
    ``X_eps`` (``eps`` at (1, 2) and (2, 1)) fits the same measurements with a lower Schatten-p."""
    a = np.zeros((2, d, d))
    a[0, 0, 0] = a[1, 1, 1] = 1.0
    y = np.array([1.0, 1.0])
    w = _depth3_identity_limit(a, y, alpha, lr)
    limit = np.diag([1.0, 1.0] + [0.0] * (d - 2))
    rows = []
    for eps in epsilons:
        x_eps = limit.copy()
        x_eps[0, 1] = x_eps[1, 0] = eps
        for p in ps:
            rows.append({
                "p": p, "epsilon": eps, "alpha": alpha,
                "gd_distance_to_limit": float(np.abs(w - limit).max()),
                "schatten_p_limit": schatten_p(limit, p), "schatten_p_perturbed": schatten_p(x_eps, p),
                "perturbed_residual": float(np.abs(np.einsum("kij,ij->k", a, x_eps) - y).max()),
                "perturbed_min_eigenvalue": float(np.linalg.eigvalsh(x_eps).min()),
            })
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------
# Files


def _commuting() -> tuple[pd.DataFrame, pd.DataFrame]:
    return commuting_measurements(), proposition1()


# The checks by name, each a function giving its summary table and its points (or curves):
# - ``rates``: :func:`theorem3`; points are the moving points of every run;
# - ``single_measurement``: :func:`single_measurement`; points are the trajectories;
# - ``commuting``: :func:`commuting_measurements`; points are :func:`proposition1`'s rows;
# - ``norms_flow``: :func:`dmfcore.norm_growth.norms_flow_check`; points are every path's records.
# A new check is one entry here and one figure in :data:`dmfcore.plots.THEORY_FIGURES`.
THEORY_CHECKS: dict[str, Callable[[], tuple[pd.DataFrame, pd.DataFrame]]] = {
    "rates": theorem3,
    "single_measurement": single_measurement,
    "commuting": _commuting,
    # Razin & Cohen (2020): gradient descent against the flow on their 2 x 2 problem
    "norms_flow": norms_flow_check,
}


def run_theory_check(check: str, table_path: str, points_path: str) -> pd.DataFrame:
    """Run one check of :data:`THEORY_CHECKS` and write its summary table and its points (or
    curves) table, both with the code fingerprint (:mod:`dmfcore.provenance`)."""
    from .records import provenance
    from .io import write_parquet

    if check not in THEORY_CHECKS:
        raise ValueError(f"check must be one of {tuple(THEORY_CHECKS)}, got {check!r}")
    summary, points = THEORY_CHECKS[check]()
    stamp = provenance("theory")
    write_parquet(points_path, points.assign(**stamp))
    write_parquet(table_path, summary.assign(**stamp))
    return summary
