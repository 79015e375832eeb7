"""Norms that grow without bound: the matrix completion of Razin & Cohen, "Implicit
Regularization in Deep Learning May Not Be Explainable by Norms" (NeurIPS 2020).

The problem is 2 x 2 completion with ``w12 = 1``, ``w21 = 1``, ``w22 = 0`` observed and ``w11``
not, fitted by the mean squared error over the three entries. Its mechanism: under gradient
flow from a balanced initialization with ``det W(0) > 0`` the determinant keeps its sign, and
``det W = w11 w22 - w12 w21``, so a fit (``w12 w21 -> 1``, ``w22 -> 0``) forces ``w11 w22 > 1``:
``|w11|`` and with it every norm and quasi-norm grow without bound (about ``1/sqrt(3 loss)``)
while the effective rank falls to 1.

Here: the problem as observation sets (the paper's and the perturbed variants of its public
code are config entries of the ``fixed`` dataset kind, :mod:`dmfcore.plan.registry`), and
:func:`norms_flow_check`, which follows the flow (an adaptive ODE solver at tight tolerance)
beside gradient descent from the same initializations, so that where they part, and where
the determinant changes sign, are measured rather than assumed.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .backend import resolve_backend
from .model import backward, end_to_end, forward, init_factors_and_draws, make_workspace
from .datasets import fixed_observations
from .metrics import first_passage
from .problems import CompletionObservations, make_objective

# The paper's observations, (row, column, value) with 1-based indices: w12 = w21 = 1, w22 = 0.
RAZIN_COHEN_OBSERVED = ((1, 2, 1.0), (2, 1, 1.0), (2, 2, 0.0))
# Its protocol (the public code's dmf_multiple_experiments_runner.py): gradient descent with step
# 5e-3 on the mean squared error, factors of width 2 with iid N(0, 8e-3^2) entries, drawn until
# det W(0) > 0, stopped at train loss 1e-4.
PAPER_STEP = 5e-3
PAPER_INIT_SCALE = 8e-3
PAPER_LOSS_THRESHOLD = 1e-4
# The losses at which |w11| is reported.
REPORT_LOSSES = (1e-2, 1e-3, 1e-4)


def sign_change_loss(losses: Sequence[float], dets: Sequence[float]) -> float:
    """The loss at the first record whose determinant has the other sign than the first record's
    (NaN if it never changes)."""
    dets = np.asarray(dets, dtype=np.float64)
    changed = np.flatnonzero(np.sign(dets) != np.sign(dets[0]))
    return float(losses[changed[0]]) if changed.size else math.nan


class _Field:
    """The gradient field of a deep factorization on one observation set (float64 NumPy): the
    same forward and backward passes as training (:mod:`dmfcore.model`)."""

    def __init__(self, obs: CompletionObservations, factors: Sequence[np.ndarray]):
        backend = resolve_backend("cpu", "float64")
        self.objective = make_objective(obs, backend)
        self.shapes = [f.shape for f in factors]
        self.sizes = [math.prod(s) for s in self.shapes]
        self.factors = [np.array(f, dtype=np.float64) for f in factors]
        self.ws = make_workspace(self.factors, backend)

    def unpack(self, x: np.ndarray) -> list[np.ndarray]:
        out, start = [], 0
        for shape, size in zip(self.shapes, self.sizes):
            out.append(x[start:start + size].reshape(shape))
            start += size
        return out

    def loss_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        for f, value in zip(self.factors, self.unpack(x)):
            f[...] = value
        w = forward(self.factors, self.ws)
        loss = float(self.objective.loss_and_grad(w, self.ws.grad_w_t))
        self.grad_w = self.ws.grad_w_t.T.copy()  # grad L(W), before backward reuses the buffers
        grads = backward(self.factors, self.ws)
        return loss, np.concatenate([g.ravel() for g in grads]), w.copy()

    def log_det_rate(self, w: np.ndarray) -> float:
        """d/dt log|det W| along the flow of a *balanced* factorization of depth N (after
        :meth:`loss_and_grad` at W): the end-to-end flow is ``dW/dt = -sum_j (W W^T)^((N-j)/N)
        grad L (W^T W)^((j-1)/N)`` (Arora et al. 2018), so with ``W = U S V^T``,
        ``tr(W^-1 dW/dt) = -N tr(S^((N-2)/N) U^T grad L V)``: finite where det W -> 0, so the
        determinant is followed in log form far below what W's float64 entries resolve."""
        depth = len(self.shapes)
        u, sigma, vt = np.linalg.svd(w)
        m = u.T @ self.grad_w @ vt.T
        return -depth * float(np.sum(sigma ** ((depth - 2) / depth) * np.diag(m)))


def gradient_flow(
    obs: CompletionObservations,
    factors: Sequence[np.ndarray],
    loss_threshold: float,
    *,
    t_max: float = 1e6,
    rtol: float = 1e-10,
    atol: float = 1e-14,
    n_points: int = 400,
    balanced: bool = False,
) -> dict[str, np.ndarray]:
    """Gradient flow ``d theta/dt = -grad L(theta)`` of the factors from ``factors`` until the
    loss reaches ``loss_threshold`` (or ``t_max``), integrated by LSODA (scipy's ``solve_ivp``:
    it switches to a stiff method where the flow needs one) at ``rtol``/``atol``.

    Returns the flow at its solver steps and at ``n_points`` log-spaced times: ``t``, ``loss``,
    ``w`` (the end-to-end matrices, (T, d1, d2)), and ``reached`` (1.0 if the loss reached the
    threshold). ``balanced`` (for factors that are balanced, and so stay balanced along the
    flow): also ``log_det``, log|det W| integrated along (:meth:`_Field.log_det_rate`)."""
    from scipy.integrate import solve_ivp

    field = _Field(obs, factors)
    n = sum(field.sizes)

    def rhs(_t: float, x: np.ndarray) -> np.ndarray:
        _, grad, w = field.loss_and_grad(x[:n])
        return np.append(-grad, field.log_det_rate(w)) if balanced else -grad

    def reached(_t: float, x: np.ndarray) -> float:
        return field.loss_and_grad(x[:n])[0] - loss_threshold

    reached.terminal = True
    x0 = np.concatenate([np.asarray(f, dtype=np.float64).ravel() for f in factors])
    if balanced:
        x0 = np.append(x0, math.log(abs(np.linalg.det(end_to_end(factors)))))
    sol = solve_ivp(rhs, (0.0, t_max), x0, method="LSODA", rtol=rtol, atol=atol, events=reached, dense_output=True)
    t_end = float(sol.t[-1])
    grid = np.unique(np.concatenate([sol.t, np.geomspace(min(1e-3, t_end), t_end, n_points)]))
    states = sol.sol(grid).T
    losses, ws = zip(*((loss, w) for loss, _, w in (field.loss_and_grad(x[:n]) for x in states)))
    out = {"t": grid, "loss": np.array(losses), "w": np.array(ws), "reached": float(sol.status == 1)}
    if balanced:
        out["log_det"] = states[:, n]
    return out


def _gd(obs: CompletionObservations, factors: Sequence[np.ndarray], lr: float, loss_threshold: float,
        max_iters: int, record_every: int) -> dict[str, Any]:
    """Gradient descent by the training loop (float64 NumPy), its trajectory recorded."""
    from .optimizers import gd
    from .training import train

    backend = resolve_backend("cpu", "float64")
    result = train(make_objective(obs, backend), [backend.asarray(f) for f in factors], gd(lr), max_iters=max_iters,
                   loss_threshold=loss_threshold, record_every=record_every, top_k=min(obs.shape))
    traj = result.trajectory
    d1, d2 = obs.shape
    w = np.array([[[traj[f"w_{i + 1}{j + 1}"][k] for j in range(d2)] for i in range(d1)]
                  for k in range(len(traj["step"]))])
    return {"t": np.array(traj["flow_time"]), "loss": np.array(traj["train_loss"]), "w": w,
            "iterations": result.iterations, "reached": float(result.converged)}


# The check's cases: (depth, init, init_scale). normal_posdet is the paper's init (per factor
# entry; depth 4 at a larger scale, whose escape from the origin takes millions of steps at
# 8e-3); balanced_posdet meets the theorem's balancedness (init_scale: the product's scale).
FLOW_CASES = (
    (2, "normal_posdet", PAPER_INIT_SCALE),
    (3, "normal_posdet", PAPER_INIT_SCALE),
    (4, "normal_posdet", 0.05),
    (2, "balanced_posdet", 1e-4),
    (3, "balanced_posdet", 1e-4),
    (4, "balanced_posdet", 1e-4),
)
# Gradient descent in the check stops here (the experiment's runs go on to 1e-4); the flow goes
# on to PAPER_LOSS_THRESHOLD.
CHECK_GD_LOSS = 1e-3
# Where gradient descent "leaves the flow": its end-to-end matrix this far (relative, Frobenius)
# from the flow's at the same loss. (At the same time the two part during the escape from the
# origin already, where a small shift in time is a large one in W, and meet again after.)
LEAVE_TOLERANCE = 1e-2
# Losses from this one down are compared (above it both still sit near the origin).
LEAVE_FROM_LOSS = 0.5


def _leaves_flow(gd: dict[str, Any], flow: dict[str, np.ndarray]) -> float:
    """The loss of gradient descent's first record below :data:`LEAVE_FROM_LOSS` whose matrix is
    at least :data:`LEAVE_TOLERANCE` (relative) from the flow's at the same loss (the flow's loss
    decreases, so the flow is interpolated in log-loss); NaN if never."""
    order = np.argsort(flow["loss"])  # increasing loss, as np.interp wants
    log_loss = np.log(flow["loss"][order])
    w_flat = flow["w"][order].reshape(len(order), -1)
    for k in np.flatnonzero((gd["loss"] <= LEAVE_FROM_LOSS) & (gd["loss"] >= flow["loss"].min())):
        at = np.log(gd["loss"][k])
        w_flow = np.array([np.interp(at, log_loss, w_flat[:, e]) for e in range(w_flat.shape[1])])
        if np.linalg.norm(gd["w"][k].ravel() - w_flow) > LEAVE_TOLERANCE * np.linalg.norm(w_flow):
            return float(gd["loss"][k])
    return math.nan


def norms_flow_check(seed: int = 0) -> tuple[Any, Any]:
    """Gradient descent (the paper's step) against the gradient flow (LSODA at rtol 1e-10 and, to
    see whether the integration's own error matters, 1e-7) on the paper's 2 x 2 problem, for each
    case of :data:`FLOW_CASES` from the same initialization.

    Summary, one row per (depth, init) and method: the loss at which ``det W`` first changes sign
    (NaN: never), ``|w11|`` at the losses of :data:`REPORT_LOSSES` (NaN: not reached), the least
    ``|w11 w22|`` once the loss is below 1e-2 (the theorem's mechanism: above ``|w12 w21| ~ 1``
    while ``det W`` keeps its sign), the smallest ``|det W|`` before a sign change, and for
    gradient descent the loss at which it leaves the flow. Points: every record of every path
    (loss, ``w11``, ``w22``, ``det W``)."""
    import pandas as pd

    obs = fixed_observations(RAZIN_COHEN_OBSERVED, (2, 2))
    rows, points = [], []
    for depth, init, scale in FLOW_CASES:
        factors, draws = init_factors_and_draws((2, 2), depth, init, scale, seed)
        balanced = init.startswith("balanced")
        paths = {
            "flow": gradient_flow(obs, factors, PAPER_LOSS_THRESHOLD, balanced=balanced),
            "flow_rtol_1e-7": gradient_flow(obs, factors, PAPER_LOSS_THRESHOLD, rtol=1e-7, atol=1e-11),
            "gd": _gd(obs, factors, PAPER_STEP, CHECK_GD_LOSS, 5_000_000, 50),
        }
        for method, path in paths.items():
            w = path["w"]
            dets = np.linalg.det(w)
            w11 = np.abs(w[:, 0, 0])
            small = path["loss"] <= 1e-2
            change = sign_change_loss(path["loss"], dets)
            before = np.flatnonzero(np.sign(dets) != np.sign(dets[0]))
            upto = before[0] if before.size else len(dets)
            rows.append({
                "depth": depth, "init": init, "init_scale": scale, "init_draws": draws, "method": method,
                "reached": bool(path["reached"]), "final_loss": float(path["loss"][-1]),
                "det_sign_change_loss": change,
                **{f"abs_w11_at_{level:g}": v for level, v in zip(REPORT_LOSSES, first_passage(path["loss"], w11, REPORT_LOSSES))},
                "min_abs_w11_w22_below_1e-2": float(np.min(np.abs(w[small, 0, 0] * w[small, 1, 1]))) if small.any() else math.nan,
                "min_abs_det_before_change": float(np.min(np.abs(dets[:upto]))),
                "leaves_flow_at_loss": _leaves_flow(path, paths["flow"]) if method == "gd" else math.nan,
                # the flow's own determinant, followed in log form (balanced inits), where the float64
                # one changes sign: how far below what W's entries resolve it then was
                "log10_exact_det_at_change": (float(path["log_det"][upto] / math.log(10))
                                              if "log_det" in path and upto < len(dets) else math.nan),
                "steps": int(path.get("iterations", len(path["t"]))),
            })
            points.append(pd.DataFrame({"depth": depth, "init": init, "method": method, "t": path["t"],
                                        "loss": path["loss"], "w11": w[:, 0, 0], "w22": w[:, 1, 1], "det": dets,
                                        "log10_det_exact": path.get("log_det", np.full(len(dets), np.nan))
                                        / math.log(10)}))
    return pd.DataFrame(rows), pd.concat(points, ignore_index=True)


def losses_table(trajectories: Any, levels: Sequence[float] = REPORT_LOSSES) -> Any:
    """Per dataset and depth, the median over seeds (with the smallest and largest seed) of
    ``|w11|`` and the nuclear norm at the first record at or below each loss of ``levels``, the
    effective rank at each run's last record, and the seeds that reached each loss, from an
    experiment's trajectories table (``results/<name>/tables/<experiment>_trajectories.parquet``)."""
    import pandas as pd

    rows = []
    for (dataset, depth), runs in trajectories.groupby(["dataset", "depth"]):
        per_seed = []
        for seed, run in runs.groupby("seed"):
            run = run.sort_values("step")
            loss = run["train_loss"].to_numpy()
            per_seed.append({
                "seed": seed,
                **{f"abs_w11_at_{level:g}": v for level, v in zip(levels, first_passage(loss, np.abs(run["w_11"].to_numpy()), levels))},
                **{f"nuclear_norm_at_{level:g}": v for level, v in zip(levels, first_passage(loss, run["nuclear_norm"].to_numpy(), levels))},
                "final_effective_rank": float(run["effective_rank"].iloc[-1]),
            })
        frame = pd.DataFrame(per_seed)
        row: dict[str, Any] = {"dataset": dataset, "depth": int(depth), "seeds": len(frame)}
        for column in frame.columns.drop("seed"):
            values = frame[column].dropna()
            row[column] = float(values.median()) if len(values) else math.nan
            if column.startswith("abs_w11"):
                row[column.replace("abs_w11", "seeds_reaching")] = len(values)
                row[column + "_min"] = float(values.min()) if len(values) else math.nan
                row[column + "_max"] = float(values.max()) if len(values) else math.nan
        rows.append(row)
    return pd.DataFrame(rows)
