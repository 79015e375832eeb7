"""The paper's figures, drawn from an experiment's Parquet table (one row per run).

- ``figure1``: reconstruction error vs number of observations, one line per depth (mean and
  standard deviation over seeds, log y axis), the minimum nuclear norm solution dashed; one
  panel per rank.
- ``figure2``: reconstruction error, nuclear norm and effective rank (columns) vs number of
  observations for every (depth, init scale) of the table, the minimum nuclear norm solution
  and the ground truth; one row per rank.
- ``figure3`` (top row of the paper's Figure 3): the top singular values of the end-to-end
  matrix against gradient-descent iterations, one panel per depth, for one observation set:
  the smallest number of observations at which the deepest factorization recovers the ground
  truth (mean reconstruction error below 1e-3; the largest number otherwise), the first rank
  and seed. Deeper factorizations move the singular values more sharply one at a time
  (rates proportional to sigma^(2 - 2/N)).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

from .io import atomic_path

FIGURES = ("figure1", "figure2", "figure3")

_OBS_LABEL = {"completion": "number of observed entries", "sensing": "number of measurements"}
_REFERENCE_STYLE = {
    "nuclear_norm": dict(color="black", linestyle="--", marker="x", label="min nuclear norm"),
    "ground_truth": dict(color="grey", linestyle=":", marker="", label="ground truth"),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Mean and standard deviation over seeds of ``column`` per n_obs."""
    grouped = frame.groupby("n_obs")[column]
    out = pd.DataFrame({"mean": grouped.mean(), "std": grouped.std(ddof=0).fillna(0.0), "count": grouped.size()})
    return out.sort_index()


def _dmf_groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    runs = frame[frame["method"] == "dmf"]
    groups = []
    multiple_scales = runs.groupby("depth")["init_scale"].nunique().max() > 1 if len(runs) else False
    for (depth, scale, lr), sub in runs.groupby(["depth", "init_scale", "lr"], sort=True):
        label = f"depth {int(depth)}"
        if multiple_scales or runs["init_scale"].nunique() > 1:
            label += f", init {scale:g}"
        if runs["lr"].nunique() > 1:
            label += f", lr {lr:g}"
        groups.append((label, sub))
    return groups


def _plot_series(ax: Any, stats: pd.DataFrame, log: bool, **style: Any) -> None:
    x = stats.index.to_numpy()
    mean, std = stats["mean"].to_numpy(), stats["std"].to_numpy()
    ax.plot(x, mean, **style)
    lower = np.maximum(mean - std, mean * 1e-3) if log else mean - std
    if np.any(std > 0):
        ax.fill_between(x, lower, mean + std, color=ax.lines[-1].get_color(), alpha=0.2, linewidth=0)


def _save(fig: Any, png: str | os.PathLike, pdf: str | os.PathLike) -> None:
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")


def _panels(frame: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    if frame.empty:
        raise ValueError("the table has no rows to plot")
    return [(int(rank), sub) for rank, sub in frame.groupby("rank", sort=True)]


def figure1(frame: pd.DataFrame, png: str | os.PathLike, pdf: str | os.PathLike) -> None:
    plt = _pyplot()
    panels = _panels(frame)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False, layout="constrained")
    problem = str(frame["problem"].iloc[0])
    for ax, (rank, sub) in zip(axes[0], panels):
        for label, runs in _dmf_groups(sub):
            _plot_series(ax, _series(runs, "recon_error"), True, marker="o", label=label)
        nn = sub[sub["method"] == "nuclear_norm"]
        if len(nn):
            _plot_series(ax, _series(nn, "recon_error"), True, **_REFERENCE_STYLE["nuclear_norm"])
        d1, d2 = int(sub["d1"].iloc[0]), int(sub["d2"].iloc[0])
        ax.set_yscale("log")
        ax.set_title(f"{problem}, {d1}x{d2}, rank {rank}")
        ax.set_xlabel(_OBS_LABEL.get(problem, "n_obs"))
        ax.set_ylabel("reconstruction error")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    _save(fig, png, pdf)
    plt.close(fig)


def figure2(frame: pd.DataFrame, png: str | os.PathLike, pdf: str | os.PathLike) -> None:
    plt = _pyplot()
    panels = _panels(frame)
    columns = [("recon_error", "reconstruction error", True), ("nuclear_norm", "nuclear norm", False),
               ("effective_rank", "effective rank", False)]
    fig, axes = plt.subplots(len(panels), 3, figsize=(15, 4 * len(panels)), squeeze=False, layout="constrained")
    problem = str(frame["problem"].iloc[0])
    for row, (rank, sub) in zip(axes, panels):
        for ax, (column, title, log) in zip(row, columns):
            for label, runs in _dmf_groups(sub):
                _plot_series(ax, _series(runs, column), log, marker="o", label=label)
            for method, style in _REFERENCE_STYLE.items():
                ref = sub[sub["method"] == method]
                if len(ref) and not (log and method == "ground_truth"):  # its error is 0
                    _plot_series(ax, _series(ref, column), log, **style)
            if log:
                ax.set_yscale("log")
            ax.set_title(f"{title} (rank {rank})")
            ax.set_xlabel(_OBS_LABEL.get(problem, "n_obs"))
            ax.grid(True, which="both", alpha=0.3)
        row[0].legend(fontsize=8)
    _save(fig, png, pdf)
    plt.close(fig)


def _dynamics_setting(frame: pd.DataFrame) -> tuple[int, int, int]:
    """(rank, n_obs, seed) shown by figure3 (see the module docstring)."""
    runs = frame[frame["method"] == "dmf"]
    rank = int(runs["rank"].min())
    runs = runs[runs["rank"] == rank]
    deepest = runs[runs["depth"] == runs["depth"].max()]
    errors = deepest.groupby("n_obs")["recon_error"].mean().sort_index()
    recovered = errors[errors < 1e-3]
    n_obs = int(recovered.index[0] if len(recovered) else errors.index[-1])
    return rank, n_obs, int(runs["seed"].min())


def figure3(frame: pd.DataFrame, trajectories: pd.DataFrame, png: str | os.PathLike, pdf: str | os.PathLike) -> None:
    plt = _pyplot()
    if frame.empty or trajectories.empty:
        raise ValueError("figure3 needs recorded trajectories (record_every > 0)")
    rank, n_obs, seed = _dynamics_setting(frame)
    traj = trajectories[(trajectories["rank"] == rank) & (trajectories["n_obs"] == n_obs) & (trajectories["seed"] == seed)]
    traj = traj[traj["init_scale"] == traj.groupby("depth")["init_scale"].transform("max")]
    depths = sorted(int(d) for d in traj["depth"].unique())
    sigma_cols = sorted((c for c in traj.columns if c.startswith("sigma_")), key=lambda c: int(c.split("_")[1]))
    fig, axes = plt.subplots(1, len(depths), figsize=(4.5 * len(depths), 3.8), squeeze=False, layout="constrained")
    problem = str(frame["problem"].iloc[0])
    for ax, depth in zip(axes[0], depths):
        run = traj[traj["depth"] == depth].sort_values("step")
        for col in sigma_cols:
            ax.plot(run["step"], run[col], linewidth=1.2)
        ax.set_title(f"depth {depth}")
        ax.set_xlabel("iteration")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("singular values of W")
    fig.suptitle(f"{problem}, rank {rank}, {n_obs} observations, seed {seed}: top {len(sigma_cols)} singular values")
    _save(fig, png, pdf)
    plt.close(fig)


def draw_figure(
    figure: str,
    table_path: str | os.PathLike,
    trajectories_path: str | os.PathLike,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
) -> None:
    """Draw ``figure`` (one of :data:`FIGURES`) from an experiment's tables into PNG and PDF files."""
    frame = pd.read_parquet(table_path)
    if figure == "figure1":
        figure1(frame, png, pdf)
    elif figure == "figure2":
        figure2(frame, png, pdf)
    elif figure == "figure3":
        figure3(frame, pd.read_parquet(trajectories_path), png, pdf)
    else:
        raise ValueError(f"figure must be one of {FIGURES}, got {figure!r}")
