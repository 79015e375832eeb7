"""Low-rank ground truths, observation sets, and the training objectives built on them.

Ground truth (paper, Section 5): ``W* = U V^T / sqrt(r)`` with ``U`` (d1 x r) and ``V``
(d2 x r) iid standard normal, then rescaled so that ``||W*||_F = sqrt(d1 d2)``, i.e. the
entries have RMS 1. The symmetric option uses ``V = U`` (requires d1 = d2).

Matrix completion observes ``m`` entries sampled uniformly without replacement.
Matrix sensing observes ``y_k = <A_k, W*>`` with ``A_k`` iid ``N(0, 1/(d1 d2))`` entries.

Training loss (the paper code's mean, not 1/2 sum):
``l(W) = (1/m) sum_k (pred_k(W) - y_k)^2`` with gradient with respect to the end-to-end
matrix ``grad l(W) = (2/m) sum_k (pred_k - y_k) dpred_k/dW``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .backend import Backend, namespace_of

PROBLEMS = ("completion", "sensing")


def _check_positive_int(name: str, value: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def low_rank_ground_truth(
    d1: int, d2: int, rank: int, seed: int, symmetric: bool = False
) -> np.ndarray:
    """Random rank-``rank`` matrix ``U V^T / sqrt(r)`` rescaled to ``||W||_F = sqrt(d1 d2)`` (float64)."""
    _check_positive_int("d1", d1)
    _check_positive_int("d2", d2)
    _check_positive_int("rank", rank)
    if rank > min(d1, d2):
        raise ValueError(f"rank={rank} exceeds min(d1, d2)={min(d1, d2)}")
    if symmetric and d1 != d2:
        raise ValueError(f"symmetric ground truth needs d1 == d2, got {d1} x {d2}")
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((d1, rank))
    v = u if symmetric else rng.standard_normal((d2, rank))
    w = u @ v.T / math.sqrt(rank)
    return w * (math.sqrt(d1 * d2) / np.linalg.norm(w))


@dataclass(frozen=True)
class CompletionObservations:
    """Observed entries ``W*[rows[k], cols[k]] = values[k]`` of a ``shape`` matrix."""

    shape: tuple[int, int]
    rows: np.ndarray  # int64 (m,)
    cols: np.ndarray  # int64 (m,)
    values: np.ndarray  # float64 (m,)

    @property
    def m(self) -> int:
        return int(self.values.shape[0])


@dataclass(frozen=True)
class SensingObservations:
    """Measurements ``y[k] = <A[k], W*>`` of a ``shape`` matrix; ``A`` has shape (m, d1, d2)."""

    shape: tuple[int, int]
    A: np.ndarray  # (m, d1, d2)
    y: np.ndarray  # (m,)

    @property
    def m(self) -> int:
        return int(self.y.shape[0])


Observations = CompletionObservations | SensingObservations


def sample_completion(w_star: np.ndarray, m: int, seed: int) -> CompletionObservations:
    """Observe ``m`` entries of ``w_star`` chosen uniformly at random without replacement."""
    d1, d2 = w_star.shape
    _check_positive_int("n_obs", m)
    if m > d1 * d2:
        raise ValueError(f"n_obs={m} exceeds the number of entries {d1 * d2}")
    rng = np.random.default_rng(seed)
    flat = np.sort(rng.choice(d1 * d2, size=m, replace=False))
    rows, cols = np.divmod(flat, d2)
    return CompletionObservations(
        (d1, d2), rows.astype(np.int64), cols.astype(np.int64), w_star[rows, cols].astype(np.float64)
    )


def sample_sensing(
    w_star: np.ndarray, m: int, seed: int, dtype: str = "float32"
) -> SensingObservations:
    """``m`` Gaussian measurements: ``A_k`` iid ``N(0, 1/(d1 d2))`` entries, ``y_k = <A_k, W*>``.

    ``A`` is stored in ``dtype`` (float32 by default: it is the largest array of the
    project and training reads it in the training dtype); ``y`` is computed in float64
    from the stored ``A`` so that it is exactly consistent with it.
    """
    d1, d2 = w_star.shape
    _check_positive_int("n_obs", m)
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, d1, d2), dtype=np.float32 if dtype == "float32" else np.float64)
    a *= 1.0 / math.sqrt(d1 * d2)
    y = a.reshape(m, -1).astype(np.float64) @ w_star.reshape(-1)
    return SensingObservations((d1, d2), a, y)


def observed_values(w: np.ndarray, obs: Observations) -> np.ndarray:
    """The predictions ``pred_k(W)`` of a (NumPy) matrix for an observation set."""
    if isinstance(obs, CompletionObservations):
        return w[obs.rows, obs.cols]
    return obs.A.reshape(obs.m, -1) @ w.reshape(-1)


def observed_targets(obs: Observations) -> np.ndarray:
    """The observed values ``y_k`` (completion: the entries; sensing: the measurements)."""
    return obs.values if isinstance(obs, CompletionObservations) else obs.y


def max_constraint_residual(w: np.ndarray, obs: Observations) -> float:
    """``max_k |pred_k(W) - y_k|``."""
    return float(np.max(np.abs(observed_values(w, obs) - observed_targets(obs))))


# ----------------------------------------------------------------------------------------
# Objectives on a backend: loss value and gradient with respect to the end-to-end matrix.
# Each writes the gradient into a caller-owned buffer so the training loop allocates
# nothing per step (allocation of large buffers is very expensive on some VMs).


def mean_square(r: Any) -> Any:
    """``mean_k r_k^2``, summed in the array's dtype and divided in float64: a Python float for
    NumPy, a 0-d float64 tensor for torch (it stays on the device: reading it would wait for
    the GPU), equal to each other bit for bit."""
    dot = r @ r
    return float(dot) / r.shape[0] if isinstance(r, np.ndarray) else dot.double() / r.shape[0]


@dataclass(frozen=True)
class CompletionObjective:
    """``l(W) = mean_k (W[i_k, j_k] - y_k)^2``, arrays on a backend."""

    shape: tuple[int, int]
    flat_index: Any  # int64 (m,): i_k * d2 + j_k, positions in row-major W
    flat_index_t: Any  # int64 (m,): j_k * d1 + i_k, positions in row-major W^T
    y: Any  # (m,)

    @property
    def m(self) -> int:
        return int(self.y.shape[0])

    def loss_and_grad(self, w: Any, grad_t: Any) -> Any:
        """Return ``l(W)`` (see :func:`mean_square`) and write ``grad l(W)^T`` into the
        row-major (d2, d1) buffer ``grad_t``."""
        r = w.reshape(-1)[self.flat_index] - self.y
        loss = mean_square(r)
        r *= 2.0 / self.m
        g = grad_t.reshape(-1)
        g[...] = 0
        g[self.flat_index_t] = r
        return loss


@dataclass(frozen=True)
class SensingObjective:
    """``l(W) = mean_k (<A_k, W> - y_k)^2`` with the ``A_k`` stacked as an (m, d1*d2) matrix.

    The rows hold ``vec(A_k^T)`` (entries in the order of row-major ``W^T``), so that
    predictions are ``A vec(W^T)`` and the gradient ``grad l(W)^T = (2/m) A^T r`` comes out
    row-major: two matrix-vector passes over ``A``, into preallocated buffers.
    """

    shape: tuple[int, int]
    A_t: Any  # (m, d2*d1), row k = vec(A_k^T)
    y: Any  # (m,)
    residual: Any  # (m,) work buffer
    w_t: Any  # (d2, d1) work buffer for W^T

    @property
    def m(self) -> int:
        return int(self.y.shape[0])

    def loss_and_grad(self, w: Any, grad_t: Any) -> Any:
        """Return ``l(W)`` (see :func:`mean_square`) and write ``grad l(W)^T`` into the
        row-major (d2, d1) buffer ``grad_t``."""
        xp = namespace_of(w)
        r = self.residual
        self.w_t[...] = w.T
        xp.matmul(self.A_t, self.w_t.reshape(-1), out=r)
        r -= self.y
        loss = mean_square(r)
        r *= 2.0 / self.m
        xp.matmul(self.A_t.T, r, out=grad_t.reshape(-1))
        return loss


Objective = CompletionObjective | SensingObjective


def make_objective(obs: Observations, backend: Backend) -> Objective:
    """Move an observation set to ``backend`` (in its dtype) as a training objective."""
    d1, d2 = obs.shape
    if isinstance(obs, CompletionObservations):
        return CompletionObjective(
            obs.shape,
            backend.index_array(obs.rows * d2 + obs.cols),
            backend.index_array(obs.cols * d1 + obs.rows),
            backend.asarray(obs.values),
        )
    a_t = backend.asarray(obs.A.transpose(0, 2, 1).reshape(obs.m, d2 * d1))
    return SensingObjective(
        obs.shape, a_t, backend.asarray(obs.y), backend.empty((obs.m,)), backend.empty((d2, d1))
    )
