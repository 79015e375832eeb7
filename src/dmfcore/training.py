"""The training loop: gradient steps on the factors until the train loss reaches a threshold.

At step t (t = 0, 1, ...) the loop computes ``W(t)``, the loss ``l(W(t))`` and its
gradient, optionally records, stops if ``l <= loss_threshold`` (converged) or
``t == max_iters``, and otherwise applies ``W_j <- W_j - eta_t grad_{W_j}``. The
reported ``iterations`` is the number of updates applied.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .backend import backend_of, synchronize, to_numpy
from .dynamics import alignment_statistics
from .model import backward, forward, make_workspace
from .optimizers import Optimizer
from .problems import Objective


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    ``w``, ``train_loss`` and ``factors`` all belong to the last step evaluated: the
    loop stops before updating, so ``w`` is the product ``W_N ... W_1`` of ``factors``
    and ``train_loss`` is ``l(w)``, after ``iterations`` updates.
    """

    w: np.ndarray  # final end-to-end matrix (float64 NumPy)
    iterations: int
    converged: bool
    train_loss: float
    wall_seconds: float
    elapsed_time: float  # gradient-flow time: sum of step sizes
    trajectory: dict[str, list] = field(default_factory=dict)  # column -> values, empty if not recorded
    factors: list[np.ndarray] = field(default_factory=list)  # final W_1 .. W_N (float64 NumPy copies)


def _record(
    traj: dict[str, list], t: int, elapsed: float, loss: float, w: Any, grad_w: Any, w_star: Any, top_k: int
) -> None:
    stats = alignment_statistics(w, grad_w)
    sigma = stats.pop("sigma")
    traj["step"].append(t)
    traj["time"].append(elapsed)
    traj["train_loss"].append(loss)
    if w_star is not None:
        d = w - w_star
        traj["recon_error"].append(float((d * d).sum()) / (d.shape[0] * d.shape[1]))
    for key, value in stats.items():
        traj[key].append(value)
    for i in range(top_k):
        traj[f"sigma_{i + 1}"].append(float(sigma[i]) if i < sigma.size else 0.0)


def train(
    objective: Objective,
    factors: Sequence[Any],
    optimizer: Optimizer,
    *,
    max_iters: int = 1_000_000,
    loss_threshold: float = 1e-6,
    record_every: int = 0,
    top_k: int = 10,
    ground_truth: Any = None,
) -> TrainResult:
    """Train the factors (backend arrays; copied, not modified) on ``objective``.

    Returns the final end-to-end matrix, loss and factors ``W_1 .. W_N`` (float64 NumPy
    copies, the ones that produced the final ``w``) with the number of updates applied.

    ``record_every = k > 0`` records, every k steps and at the last step: step, elapsed
    gradient-flow time, train loss, test error (when ``ground_truth``, a backend array,
    is given), the ``top_k`` singular values of W, and Corollary 1's alignment statistics.
    Raises :class:`TrainingDivergedError` naming the step and the last finite loss if the
    loss becomes NaN or infinite.
    """
    if max_iters < 0:
        raise ValueError(f"max_iters must be >= 0, got {max_iters}")
    if record_every < 0:
        raise ValueError(f"record_every must be >= 0, got {record_every}")
    backend = backend_of(factors[0])
    factors = [backend.asarray(f) for f in factors]  # private copies, trained in place
    factors = [f.copy() if isinstance(f, np.ndarray) else f.clone() for f in factors]
    ws = make_workspace(factors, backend)
    traj: dict[str, list] = {}
    if record_every:
        cols = ["step", "time", "train_loss"] + (["recon_error"] if ground_truth is not None else [])
        cols += ["diag_mean", "diag_std", "offdiag_mean", "offdiag_std"]
        cols += [f"sigma_{i + 1}" for i in range(top_k)]
        traj = {c: [] for c in cols}

    state = optimizer.init()
    elapsed = 0.0
    last_finite = math.nan
    converged = False
    synchronize(factors[0])
    start = time.perf_counter()
    # divergence is detected from the loss itself: silence NumPy's overflow warnings
    with np.errstate(over="ignore", invalid="ignore"):
        t = 0
        while True:
            w = forward(factors, ws)
            loss = objective.loss_and_grad(w, ws.grad_w_t)
            if not math.isfinite(loss):
                raise TrainingDivergedError(
                    f"training diverged at step {t}: loss is {loss} (last finite loss {last_finite:.6g}); "
                    "lower the learning rate or the init scale"
                )
            last_finite = loss
            converged = loss <= loss_threshold
            done = converged or t >= max_iters
            if record_every and (t % record_every == 0 or done):
                _record(traj, t, elapsed, loss, w, ws.grad_w, ground_truth, top_k)
            if done:
                break
            grads = backward(factors, ws)
            # the step size depends on the gradients only through their entries' squares
            eta, state = optimizer.step_size(state, [ws.grad_flat])
            ws.grad_flat *= eta
            for f, g in zip(factors, grads):
                f -= g
            elapsed += eta
            t += 1
    synchronize(w)
    wall = time.perf_counter() - start
    w_final = to_numpy(w).astype(np.float64)  # astype copies: w may be a workspace buffer
    factors_final = [to_numpy(f).astype(np.float64) for f in factors]
    return TrainResult(w_final, t, bool(converged), float(loss), wall, elapsed, traj, factors=factors_final)
