"""The reference rows of an observation set: the minimum nuclear norm solution
(:mod:`dmfcore.convex`) and the ground truth itself (real data's constant predictions are
:mod:`dmfcore.real_data`'s)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .convex import NUCLEAR_NORM_TOL, min_nuclear_norm
from .io import load_ground_truth, load_observations, save_matrix, write_json, write_text
from .metrics import summary
from .problems import observed_targets, observed_values
from .records import RunOutputs, data_labels, evaluation, load_data, provenance


def run_min_nuclear_norm(
    ground_truth_path: str | os.PathLike,
    observations_path: str | os.PathLike,
    outputs: RunOutputs,
    labels: dict[str, Any] | None = None,
    seed: int = 0,
    solver: str = "auto",
    tol: float = NUCLEAR_NORM_TOL,
) -> dict[str, Any]:
    """Solve the minimum nuclear norm problem for one observation set; write matrix, record, log.

    ``solver="auto"`` picks cvxpy + SCS or the certified first-order solver by size
    (:func:`dmfcore.convex.choose_solver`); the record names the solver used.
    """
    w_star, obs, test = load_data(ground_truth_path, observations_path)
    res = min_nuclear_norm(obs, solver, tol)
    record = {
        **(labels or {}),
        **data_labels(obs, observations_path, ground_truth_path),
        "method": "nuclear_norm",
        "seed": seed,
        "iterations": res.iterations,
        "converged": res.status == "optimal",
        "train_loss": float(np.mean((observed_values(res.w, obs) - observed_targets(obs)) ** 2)),
        **evaluation(res.w, w_star, test),
        "wall_seconds": res.wall_seconds,
        "device": "cpu",
        "dtype": "float64",
        "solver": res.solver,
        "max_residual": res.max_residual,
        "relative_gap": res.relative_gap,
        "tol": tol,
        **provenance("baselines"),
    }
    save_matrix(outputs.matrix, res.w)
    write_json(outputs.metrics, record)
    write_text(
        outputs.log,
        f"{res.solver}: status {res.status}, {res.wall_seconds:.2f} s, nuclear norm {res.nuclear_norm:.10g}, "
        f"max residual {res.max_residual:.3e}, relative gap {res.relative_gap}\n",
    )
    return record


def ground_truth_record(
    ground_truth_path: str | os.PathLike,
    observations_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    labels: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The reference row: the ground truth's own nuclear norm and effective rank."""
    w_star = load_ground_truth(ground_truth_path)
    obs = load_observations(observations_path, shape=w_star.shape)
    record = {
        **(labels or {}),
        **data_labels(obs, observations_path, ground_truth_path),
        "method": "ground_truth",
        "seed": seed,
        **summary(w_star, w_star),
        **provenance("baselines"),
    }
    write_json(metrics_path, record)
    return record
