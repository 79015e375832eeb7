"""The paper's figures, drawn from an experiment's Parquet table (one row per run).

- ``figure1``: reconstruction error vs number of observations, one line per depth, the
  minimum nuclear norm solution dashed, the stopping threshold dash-dotted; one panel per rank.
- ``figure2``: reconstruction error, nuclear norm and effective rank (columns) vs number of
  observations for every (depth, init scale) of the table, the minimum nuclear norm solution
  and the ground truth (dotted); one row per rank.

In both, a line is the mean over seeds (on a log axis the geometric mean) and its band spans
the minimum to the maximum over seeds; the legend says so and gives the number of seeds. A
log error axis stops a decade under the smallest error of the runs and under the stopping
threshold: an exact reference below it is drawn on the floor as a triangle labelled with the
value each seed reached.
- ``figure3`` (the paper's Figure 3): one row per dataset of the table (synthetic ones first;
  a dataset whose data are missing gets a row saying why). Columns: the top singular values
  of the end-to-end matrix against the step, one panel per depth, then for depth 2 the mean
  and standard deviation of the |diagonal| and |off-diagonal| entries of U^T grad l(W) V
  (Corollary 1: the singular vectors stay aligned with the gradient). Per dataset one
  observation set is shown: the smallest number of observations at which the deepest
  factorization recovers the ground truth (mean reconstruction error below 1e-3; the largest
  number otherwise, and for real data), and the first seed. Deeper factorizations move the
  singular values more sharply one at a time (rates proportional to sigma^(2 - 2/N)).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from .io import atomic_path
from .metrics import first_passage

_OBS_LABEL = {"completion": "number of observed entries", "sensing": "number of measurements"}
_TINY = 1e-300  # a zero error on a log axis
_REFERENCE_STYLE = {
    "nuclear_norm": dict(color="black", linestyle="--", marker="x", label="min nuclear norm"),
    "ground_truth": dict(color="grey", linestyle=":", marker="", label="ground truth"),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _series(frame: pd.DataFrame, column: str, log: bool) -> pd.DataFrame:
    """Per n_obs over seeds: the centre (the mean; on a log axis the geometric mean, the mean
    of the logs), the band (min to max: a mean +- std band runs off towards zero on a log
    axis), the number of seeds and each seed's own value (``values``, smallest first)."""
    values = frame[["n_obs", column]].dropna()
    each = values.groupby("n_obs")[column].apply(lambda v: tuple(sorted(v.to_numpy(dtype=float))))
    if log:
        values = values.assign(**{column: np.log10(np.maximum(values[column].to_numpy(dtype=float), _TINY))})
    grouped = values.groupby("n_obs")[column]
    out = pd.DataFrame({"centre": grouped.mean(), "low": grouped.min(), "high": grouped.max(), "count": grouped.size()})
    if log:
        out[["centre", "low", "high"]] = 10.0 ** out[["centre", "low", "high"]]
    out["values"] = each
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


def _plot_series(ax: Any, stats: pd.DataFrame, floor: float | None = None, **style: Any) -> None:
    """A line through the centres with a min-max band. On a log axis with a ``floor``, a centre
    below it is drawn on the floor as a downward triangle labelled with the value each seed
    reached (not their geometric mean: of an exact seed and an inexact one, a value neither has)."""
    x = stats.index.to_numpy()
    centre, low, high = (stats[c].to_numpy(dtype=float) for c in ("centre", "low", "high"))
    below = centre < floor if floor is not None else np.zeros(len(x), dtype=bool)
    if floor is not None:
        centre, low, high = (np.maximum(a, floor) for a in (centre, low, high))
    (line,) = ax.plot(x, centre, **style)
    if np.any(high > low):
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    for xi, values in zip(x[below], stats["values"].to_numpy()[below]):
        ax.plot([xi], [floor], marker="v", markersize=9, color=line.get_color(), linestyle="none", clip_on=False)
        ax.annotate(", ".join(f"{v:.0e}" for v in values), (xi, floor), xytext=(-7, 3), textcoords="offset points",
                    ha="right",
                    fontsize=7, color=line.get_color())


def _seed_note(frame: pd.DataFrame, log_axes: bool) -> str:
    """What the lines and bands of a figure are, with the number of seeds behind each point."""
    runs = frame[frame["method"] == "dmf"]
    keys = [k for k in ("dataset", "rank", "depth", "init_scale", "lr", "n_obs") if k in runs]
    counts = runs.groupby(keys, dropna=False).size() if len(runs) else pd.Series([1])
    lo, hi = int(counts.min()), int(counts.max())
    seeds = f"{lo} seed{'s' * (lo > 1)}" if lo == hi else f"{lo}-{hi} seeds"
    centre = "mean (geometric on log axes)" if log_axes else "mean"
    return f"line: {centre} over {seeds}\nband: min to max over seeds"


def _stop_thresholds(frame: pd.DataFrame) -> list[float]:
    """The train-loss thresholds at which the runs stopped (tables that record them)."""
    if "loss_threshold" not in frame:
        return []
    runs = frame[frame["method"] == "dmf"]
    return sorted(float(v) for v in runs["loss_threshold"].dropna().unique() if v > 0)


def _error_floor(frame: pd.DataFrame, column: str) -> float:
    """The bottom of a log error axis: a decade under the smallest error of the runs and
    under the stopping threshold. An exact reference (the minimum nuclear norm at 1e-16, a
    solver's round-off) would otherwise stretch the axis over many decades and flatten the
    curves that matter; it is drawn on the floor with its value."""
    runs = frame.loc[frame["method"] == "dmf", column].dropna().to_numpy(dtype=float)
    candidates = [*runs[runs > 0], *_stop_thresholds(frame)]
    if not candidates:
        return 10.0 ** np.floor(np.log10(max(float(frame[column].max()), _TINY))) * 1e-3
    return 10.0 ** (np.floor(np.log10(min(candidates))) - 1)


def _error_panel(ax: Any, frame: pd.DataFrame, column: str, references: tuple[str, ...]) -> None:
    """A log-axis error panel: one line per depth (and init scale), the references, the
    stopping threshold in the same units (train and reconstruction errors are both mean
    squared errors; deep runs that stopped there sit just above it)."""
    floor = _error_floor(frame, column)
    for label, runs in _dmf_groups(frame):
        _plot_series(ax, _series(runs, column, True), floor, marker="o", label=label)
    for method in references:
        ref = frame[frame["method"] == method]
        if len(ref):
            _plot_series(ax, _series(ref, column, True), floor, **_REFERENCE_STYLE[method])
    for threshold in _stop_thresholds(frame):
        ax.axhline(threshold, color="grey", linestyle="-.", linewidth=1,
                   label=f"training stops: train loss <= {threshold:g}")
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.grid(True, which="both", alpha=0.3)


def save_figure(fig: Any, png: str | os.PathLike, pdf: str | os.PathLike) -> None:
    """Write ``fig`` as PNG and PDF (atomically) and close it."""
    for path, fmt in ((png, "png"), (pdf, "pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)


def _legend(fig: Any, title: str) -> None:
    """One legend for the whole figure, every labelled artist once, with what lines and
    bands are."""
    entries: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="outside right upper", fontsize=8,
               title=title, title_fontsize=8, alignment="left")


def _panels(frame: pd.DataFrame) -> list[tuple[int, pd.DataFrame]]:
    if frame.empty:
        raise ValueError("the table has no rows to plot")
    return [(int(rank), sub) for rank, sub in frame.groupby("rank", sort=True)]


def figure1(frame: pd.DataFrame) -> Any:
    """The paper's Figure 1 (see the module docstring)."""
    plt = _pyplot()
    panels = _panels(frame)
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels) + 2, 4), squeeze=False, layout="constrained")
    problem = str(frame["problem"].iloc[0])
    for ax, (rank, sub) in zip(axes[0], panels):
        _error_panel(ax, sub, "recon_error", ("nuclear_norm",))
        d1, d2 = int(sub["d1"].iloc[0]), int(sub["d2"].iloc[0])
        ax.set_title(f"{problem}, {d1}x{d2}, rank {rank}")
        ax.set_xlabel(_OBS_LABEL.get(problem, "n_obs"))
        ax.set_ylabel("reconstruction error")
    _legend(fig, _seed_note(frame, log_axes=True))
    return fig


def figure2(frame: pd.DataFrame) -> Any:
    """The paper's Figure 2 (see the module docstring)."""
    plt = _pyplot()
    panels = _panels(frame)
    columns = [("nuclear_norm", "nuclear norm"), ("effective_rank", "effective rank")]
    fig, axes = plt.subplots(len(panels), 3, figsize=(17, 4 * len(panels)), squeeze=False, layout="constrained")
    problem = str(frame["problem"].iloc[0])
    for row, (rank, sub) in zip(axes, panels):
        # the ground truth's error is 0: it has no point on the log axis
        _error_panel(row[0], sub, "recon_error", ("nuclear_norm",))
        row[0].set_title(f"reconstruction error (rank {rank})")
        for ax, (column, title) in zip(row[1:], columns):
            for label, runs in _dmf_groups(sub):
                _plot_series(ax, _series(runs, column, False), marker="o", label=label)
            for method, style in _REFERENCE_STYLE.items():
                ref = sub[sub["method"] == method]
                if len(ref):
                    _plot_series(ax, _series(ref, column, False), **style)
            ax.set_title(f"{title} (rank {rank})")
            ax.grid(True, alpha=0.3)
        for ax in row:
            ax.set_xlabel(_OBS_LABEL.get(problem, "n_obs"))
    _legend(fig, _seed_note(frame, log_axes=True))
    return fig


def _error_column(frame: pd.DataFrame) -> str:
    """Synthetic data are scored against the ground truth, real data on held-out entries."""
    has_test = "test_error" in frame and frame["test_error"].notna().any()
    return "test_error" if has_test else "recon_error"


def _datasets(frame: pd.DataFrame) -> list[str]:
    """The datasets of a table, synthetic ones (with a rank) first."""
    if "dataset" not in frame:  # tables written before datasets had names
        frame["dataset"] = [f"{d1}x{d2}_rank{r}" for d1, d2, r in zip(frame["d1"], frame["d2"], frame["rank"])]
    runs = frame[frame["method"] == "dmf"]
    order = runs.assign(real=runs["rank"].isna()).sort_values(["real", "rank", "dataset"])
    return list(dict.fromkeys(order["dataset"]))


def _dynamics_setting(runs: pd.DataFrame) -> tuple[int, int]:
    """(n_obs, seed) of one dataset's runs shown by figure3 (see the module docstring)."""
    deepest = runs[runs["depth"] == runs["depth"].max()]
    errors = deepest.groupby("n_obs")[_error_column(runs)].mean().sort_index()
    recovered = errors[errors < 1e-3] if _error_column(runs) == "recon_error" else errors.iloc[:0]
    n_obs = int(recovered.index[0] if len(recovered) else errors.index[-1])
    return n_obs, int(runs["seed"].min())


def _alignment_depth(depths: list[int]) -> int | None:
    """The depth whose alignment statistics figure3 shows: 2 (the paper's), else the shallowest > 1."""
    deep = [d for d in depths if d > 1]
    return 2 if 2 in deep else (min(deep) if deep else None)


def _settled_step(run: pd.DataFrame, sigma_cols: list[str], tol: float = 0.01) -> int:
    """The first recorded step after which every singular value stays within ``tol`` times the
    largest final one of its final value (the panels stop a little after it: the long tail of
    a slow convergence would squash the dynamics into the left edge)."""
    sigma = run[sigma_cols].to_numpy(dtype=float)
    far = np.abs(sigma - sigma[-1]).max(axis=1) > tol * max(float(np.abs(sigma[-1]).max()), 1e-300)
    last_far = np.flatnonzero(far)
    steps = run["step"].to_numpy()
    return int(steps[min(last_far[-1] + 1, len(steps) - 1)]) if len(last_far) else int(steps[0])


def _shown_steps(run: pd.DataFrame, sigma_cols: list[str]) -> pd.DataFrame:
    """The records a panel shows: up to a little after the singular values have settled."""
    if len(run) < 2:
        return run
    limit = max(1.15 * _settled_step(run, sigma_cols), run["step"].iloc[1])
    return run[run["step"] <= limit]


def _cropped(shown: pd.DataFrame, run: pd.DataFrame) -> str:
    """A panel title's note where the panel stops before the run did (:func:`_shown_steps`)."""
    if len(shown) == 0 or len(shown) == len(run):
        return ""
    return f"\n(shown to step {int(shown['step'].iloc[-1]):,}; the run went to {int(run['step'].iloc[-1]):,})"


def _step_axis(ax: Any) -> None:
    from matplotlib.ticker import EngFormatter

    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel("step")


def figure3(
    frame: pd.DataFrame,
    trajectories: pd.DataFrame,
    missing: dict[str, str] | None = None,
) -> Any:
    """The paper's Figure 3: one row per dataset; the top singular values of W(t) against the
    step for each depth, then the mean (line) and standard deviation (band) of the |diagonal|
    and |off-diagonal| entries of U(t)^T grad l(W(t)) V(t) for depth 2. A dataset whose data
    are missing gets a row that says why."""
    plt = _pyplot()
    missing = dict(missing or {})
    if (frame.empty or trajectories.empty) and not missing:
        raise ValueError("figure3 needs recorded trajectories (record_every > 0)")
    datasets = _datasets(frame) if not frame.empty else []
    depths = sorted(int(d) for d in trajectories["depth"].unique()) if not trajectories.empty else [1, 2, 3]
    align = _alignment_depth(depths)
    ncols = len(depths) + (align is not None)
    nrows = len(datasets) + len(missing)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False, layout="constrained")
    if "dataset" not in trajectories:
        trajectories = trajectories.assign(
            dataset=[f"{d1}x{d2}_rank{r}" for d1, d2, r in zip(trajectories["d1"], trajectories["d2"], trajectories["rank"])]
        )
    for row, dataset in zip(axes, datasets):
        runs = frame[(frame["method"] == "dmf") & (frame["dataset"] == dataset)]
        n_obs, seed = _dynamics_setting(runs)
        traj = trajectories[(trajectories["dataset"] == dataset) & (trajectories["n_obs"] == n_obs)
                            & (trajectories["seed"] == seed)]
        traj = traj[traj["init_scale"] == traj.groupby("depth")["init_scale"].transform("max")]
        sigma_cols = sorted((c for c in traj.columns if c.startswith("sigma_") and traj[c].notna().any()),
                            key=lambda c: int(c.split("_")[1]))
        for ax, depth in zip(row, depths):
            full = traj[traj["depth"] == depth].sort_values("step")
            run = _shown_steps(full, sigma_cols)
            for col in sigma_cols:
                ax.plot(run["step"], run[col], linewidth=1.2)
            ax.set_title(f"depth {depth}: top {len(sigma_cols)} singular values{_cropped(run, full)}", fontsize=9)
            _step_axis(ax)
            ax.grid(True, alpha=0.3)
        if align is not None:
            ax = row[len(depths)]
            full = traj[traj["depth"] == align].sort_values("step")
            run = _shown_steps(full, sigma_cols)
            for kind, color in (("diag", "C0"), ("offdiag", "C3")):
                mean, std = run[f"{kind}_mean"].to_numpy(), run[f"{kind}_std"].to_numpy()
                label = "|diagonal|" if kind == "diag" else "|off-diagonal|"
                ax.plot(run["step"], mean, color=color, label=label)
                ax.fill_between(run["step"], np.maximum(mean - std, mean * 1e-3), mean + std, color=color,
                                alpha=0.2, linewidth=0)
            ax.set_yscale("log")
            ax.set_title(f"depth {align}: |U^T grad l(W) V| (band: std){_cropped(run, full)}", fontsize=9)
            _step_axis(ax)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        if _error_column(runs) == "test_error":
            what = "training ratings"
        else:
            what = _OBS_LABEL.get(str(runs["problem"].iloc[0]), "observations").removeprefix("number of ")
        row[0].set_ylabel(f"{dataset}\n{n_obs} {what}, seed {seed}")
    for r, (dataset, why) in enumerate(missing.items(), start=len(datasets)):
        for ax in axes[r]:
            ax.remove()
        note = fig.add_subplot(axes[0][0].get_gridspec()[r, :])  # one panel across the row
        note.set_axis_off()
        note.text(0.5, 0.5, f"{dataset}: not drawn\n{why}", transform=note.transAxes, fontsize=10,
                  va="center", ha="center", in_layout=False)
    problem = str(frame["problem"].iloc[0]) if not frame.empty else "completion"
    fig.suptitle(f"{problem}: singular values of the end-to-end matrix during training")
    return fig


def rates_figure(summary: pd.DataFrame, points: pd.DataFrame) -> Any:
    """``rates``: measured against predicted rate d sigma_r/dt (log-log, |values|), one panel per
    depth, at the smallest step from a balanced start; the diagonal is Theorem 3."""
    plt = _pyplot()
    depths = sorted(int(d) for d in summary["depth"].unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(4 * len(depths), 4), squeeze=False, layout="constrained")
    for ax, depth in zip(axes[0], depths):
        runs = summary[(summary["depth"] == depth) & (summary["init"] == "balanced")]
        lr = runs["lr"].min()
        for k, (problem, run) in enumerate(runs[runs["lr"] == lr].groupby("problem")):
            pts = points[(points["depth"] == depth) & (points["problem"] == problem) & (points["lr"] == lr)
                         & (points["init"] == "balanced")]
            ax.loglog(np.abs(pts["predicted_rate"]), np.abs(pts["measured_rate"]), ".", markersize=2,
                      alpha=0.5, color=f"C{k}",
                      label=f"{problem}: median error {float(run['median_rel_error'].iloc[0]):.2%}")
        lims = [max(ax.get_xlim()[0], ax.get_ylim()[0]), min(ax.get_xlim()[1], ax.get_ylim()[1])]
        ax.plot(lims, lims, "k--", linewidth=0.8, label="Theorem 3")
        ax.set_title(f"depth {depth} (step {lr:g}, balanced init)", fontsize=9)
        ax.set_xlabel("predicted |d sigma_r / dt|")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("measured |d sigma_r / dt| (finite differences)")
    return fig


def single_measurement_figure(summary: pd.DataFrame, points: pd.DataFrame) -> Any:
    """``single_measurement``: the trajectories of the two signed singular values (solid) and
    Equation (11)'s closed-form curves through the same start (dashed), one panel per depth;
    dotted: the solutions <A, W> = y."""
    plt = _pyplot()
    depths = sorted(int(d) for d in summary["depth"].unique())
    fig, axes = plt.subplots(1, len(depths), figsize=(4 * len(depths), 4), squeeze=False, layout="constrained")
    for ax, depth in zip(axes[0], depths):
        for k, (start, curve) in enumerate(points[points["depth"] == depth].groupby("start")):
            ax.plot(curve["w1"], curve["w2"], color=f"C{k}", linewidth=2, alpha=0.6,
                    label="gradient descent" if k == 0 else None)
            ax.plot(curve["w1"], curve["closed_form_w2"], "k--", linewidth=0.9,
                    label="closed form (Eq. 11)" if k == 0 else None)
        row = summary[summary["depth"] == depth].iloc[0]
        w1 = np.linspace(-0.1, 1.1 * row["y"] / row["a1"], 50)
        ax.plot(w1, (row["y"] - row["a1"] * w1) / row["a2"], ":", color="grey", label="<A, W> = y")
        worst = float(summary.loc[summary["depth"] == depth, "max_rel_deviation"].max())
        ax.set_title(f"depth {depth}: max deviation {worst:.1e} (relative)", fontsize=9)
        ax.set_xlabel("signed singular value w1")
        drawn = points.loc[points["depth"] == depth, "w2"]
        ax.set_xlim(-0.05, 1.1 * row["y"] / row["a1"])
        ax.set_ylim(min(-0.05, 1.2 * drawn.min()), 1.3 * max(drawn.max(), 0.05))
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("signed singular value w2")
    axes[0][0].legend(fontsize=7)
    return fig


def commuting_figure(summary: pd.DataFrame, points: pd.DataFrame) -> Any:
    """``commuting``: the nuclear norm gap of the depth-3 limit to the PSD minimum against the
    initialization scale alpha (Theorem 2), and Proposition 1's Schatten-p values."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    axes[0].loglog(summary["alpha"], summary["relative_gap"], "o-")
    axes[0].set_xlabel("initialization scale alpha (W(0) = alpha I, depth 3)")
    axes[0].set_ylabel("(||W||_* - PSD minimum) / PSD minimum")
    axes[0].set_title("Theorem 2: commuting measurements", fontsize=9)
    axes[0].grid(True, which="both", alpha=0.3)
    for k, (p, sub) in enumerate(points.groupby("p")):
        axes[1].plot(sub["epsilon"], sub["schatten_p_perturbed"], "o-", color=f"C{k}", label=f"X_eps, p = {p:g}")
        axes[1].plot(sub["epsilon"], sub["schatten_p_limit"], "--", color=f"C{k}", label=f"limit, p = {p:g}")
    axes[1].set_xlabel("epsilon at entries (1, 2) and (2, 1)")
    axes[1].set_ylabel("Schatten-p quasi-norm (sum sigma^p)")
    axes[1].set_title("Proposition 1: the limit diag(1, 1, 0) does not minimize it", fontsize=9)
    axes[1].grid(True, alpha=0.3)
    axes[1].legend(fontsize=7)
    return fig


def norms_flow_figure(summary: pd.DataFrame, points: pd.DataFrame) -> Any:
    """``norms_flow``: |w11| (left) and |det W| (right) against the train loss (log axes, the loss
    decreasing to the right), one panel per initialization; solid the flow, dashed gradient
    descent, one color per depth; a cross marks where det W changes sign; dotted (balanced
    inits) the flow's determinant followed in log form, below what float64 entries resolve.
    |det W| is drawn down to 1e-20."""
    plt = _pyplot()
    inits = list(dict.fromkeys(points["init"]))
    fig, axes = plt.subplots(len(inits), 2, figsize=(10, 3.6 * len(inits)), squeeze=False, layout="constrained")
    styles = {"flow": "-", "gd": "--"}
    for row, init in zip(axes, inits):
        for k, depth in enumerate(sorted(points.loc[points["init"] == init, "depth"].unique())):
            for method, style in styles.items():
                path = points[(points["init"] == init) & (points["depth"] == depth) & (points["method"] == method)]
                if path.empty:
                    continue
                label = f"depth {depth}, {'flow' if method == 'flow' else 'gradient descent'}"
                row[0].loglog(path["loss"], np.abs(path["w11"]) + _TINY, style, color=f"C{k}", label=label)
                row[1].loglog(path["loss"], np.maximum(np.abs(path["det"]), 1e-20), style, color=f"C{k}")
                if method == "flow" and path["log10_det_exact"].notna().any():
                    row[1].loglog(path["loss"], np.maximum(10.0 ** path["log10_det_exact"], 1e-20), ":",
                                  color=f"C{k}")
                flips = np.flatnonzero(np.sign(path["det"].to_numpy()) != np.sign(path["det"].iloc[0]))
                if flips.size:
                    at = path.iloc[flips[0]]
                    row[1].loglog([at["loss"]], [max(abs(at["det"]), 1e-20)], "x", color=f"C{k}", markersize=8)
        row[0].set_title(f"{init}: |w11| (unobserved entry)", fontsize=9)
        row[1].set_title(f"{init}: |det W| (x: its sign changes)", fontsize=9)
        for ax in row:
            ax.invert_xaxis()
            ax.set_xlabel("train loss")
            ax.grid(True, which="both", alpha=0.3)
        row[0].legend(fontsize=7)
    return fig


# The figure of each theory check (:data:`dmfcore.theory.THEORY_CHECKS`), from its two tables.
THEORY_FIGURES: dict[str, Callable[[pd.DataFrame, pd.DataFrame], Any]] = {
    "rates": rates_figure,
    "single_measurement": single_measurement_figure,
    "commuting": commuting_figure,
    "norms_flow": norms_flow_figure,
}


def theory_figure(check: str, summary: pd.DataFrame, points: pd.DataFrame) -> Any:
    """The figure of theory check ``check`` (:data:`THEORY_FIGURES`)."""
    if check not in THEORY_FIGURES:
        raise ValueError(f"unknown theory check {check!r}")
    return THEORY_FIGURES[check](summary, points)


def draw_figure(
    figure: str,
    table_path: str | os.PathLike,
    trajectories_path: str | os.PathLike,
    png: str | os.PathLike,
    pdf: str | os.PathLike,
    missing: dict[str, str] | None = None,
) -> None:
    """Draw ``figure`` (one of :data:`FIGURES`) from an experiment's tables into PNG and PDF files."""
    if figure not in FIGURES:
        raise ValueError(f"figure must be one of {tuple(FIGURES)}, got {figure!r}")
    kind = FIGURES[figure]
    trajectories = pd.read_parquet(trajectories_path) if kind.needs_trajectories else None
    save_figure(kind.draw(pd.read_parquet(table_path), trajectories, missing or {}), png, pdf)


_NORM_STYLES = {"nuclear_norm": ("-", "nuclear"), "frobenius_norm": ("--", "Frobenius"),
                "sigma_1": (":", "spectral"), "schatten_0.5": ("-.", "Schatten 1/2")}


def norms_figure(table: pd.DataFrame, trajectories: pd.DataFrame, missing: dict[str, str]) -> Any:
    """Razin & Cohen's experiment (:mod:`dmfcore.norm_growth`), one row per dataset: |w11| (the
    unobserved entry), the norms and the effective rank against the train loss, all on log axes
    with the loss decreasing to the right. One color per depth: the median over seeds, and for
    |w11| and the effective rank a band from the smallest to the largest seed; each seed's value
    is the one at the first record at or below the loss. Grey: 1/sqrt(3 loss), the growth the
    theorem gives for the paper's problem (w12 = w21 = 1, w22 = 0)."""
    plt = _pyplot()
    runs = trajectories[trajectories["train_loss"] > 0]
    datasets = list(dict.fromkeys(runs["dataset"]))
    if not datasets:
        raise ValueError("no recorded trajectories to draw")
    fig, axes = plt.subplots(len(datasets), 3, figsize=(14, 3.8 * len(datasets)), squeeze=False, layout="constrained")
    for row, dataset in zip(axes, datasets):
        data = runs[runs["dataset"] == dataset]
        grid = np.geomspace(data["train_loss"].min(), data["train_loss"].max(), 80)
        for k, (depth, by_depth) in enumerate(sorted(data.groupby("depth"))):
            color = f"C{k}"
            seeds = by_depth.groupby("seed")
            n = seeds.ngroups

            def stack(column: str) -> np.ndarray:
                runs = (run.sort_values("step") for _, run in seeds)
                return np.array([first_passage(run["train_loss"], run[column], grid) for run in runs])

            w11 = np.abs(stack("w_11"))
            for ax, values in ((row[0], w11), (row[2], stack("effective_rank"))):
                with np.errstate(all="ignore"):
                    ax.plot(grid, np.nanmedian(values, 0), color=color, label=f"depth {depth} ({n} seeds)")
                    ax.fill_between(grid, np.nanmin(values, 0), np.nanmax(values, 0), color=color, alpha=0.2)
            for column, (style, _) in _NORM_STYLES.items():
                with np.errstate(all="ignore"):
                    row[1].plot(grid, np.nanmedian(stack(column), 0), style, color=color)
        row[0].plot(grid, 1 / np.sqrt(3 * grid), color="grey", linewidth=0.8, label="1/sqrt(3 loss)")
        for style, name in _NORM_STYLES.values():
            row[1].plot([], [], style, color="black", label=name)
        titles = ("|w11| (unobserved entry)", "norms (median over seeds)", "effective rank")
        for ax, title in zip(row, titles):
            ax.set_xscale("log")
            ax.set_yscale("log" if ax is not row[2] else "linear")
            ax.invert_xaxis()
            ax.set_xlabel("train loss")
            ax.set_title(f"{dataset}: {title}", fontsize=9)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    return fig


@dataclass(frozen=True)
class FigureKind:
    """A figure of an experiment: ``draw(table, trajectories, missing)`` gives the figure from the
    experiment's table, its trajectories (None unless ``needs_trajectories``: the planner then
    refuses an experiment that records none) and the datasets left out, with why."""

    draw: Callable[[pd.DataFrame, pd.DataFrame | None, dict[str, str]], Any]
    needs_trajectories: bool = False
    description: str = ""


# The figures an experiment can list (config: figures), by name. A new figure is one entry here.
FIGURES: dict[str, FigureKind] = {
    "figure1": FigureKind(lambda table, _, __: figure1(table), description="error against observations, by depth"),
    "figure2": FigureKind(lambda table, _, __: figure2(table),
                          description="error, nuclear norm and effective rank against observations"),
    "figure3": FigureKind(lambda table, trajectories, missing: figure3(table, trajectories, missing),
                          needs_trajectories=True, description="singular values during training"),
    "norms": FigureKind(norms_figure, needs_trajectories=True,
                        description="Razin & Cohen: |w11|, norms and effective rank against the loss"),
}


# ---------------------------------------------------------------------------------------------
# Recovery phase diagrams (dmfcore.phase's tables)

_PHASE_COLORS = {"depth2": "tab:blue", "depth3": "tab:orange", "depth4": "tab:green", "nuclear_norm": "black"}


def _method_order(methods: Any) -> list[str]:
    return sorted(set(methods), key=lambda m: (m == "nuclear_norm", m))


def _method_name(method: str) -> str:
    return "min nuclear norm" if method == "nuclear_norm" else method.replace("depth", "depth ")


def phase_curves_figure(phase: pd.DataFrame, thresholds: pd.DataFrame) -> Any:
    """Success rate against n_obs, one line per method with its Wilson band, the fitted logistic
    curve (thin) and n_obs_50 with its bootstrap interval at 50%; for Gaussian sensing the
    asymptotic minimum nuclear norm transition (Donoho, Gavish & Montanari 2013) dotted. One
    panel per (problem, rank)."""
    plt = _pyplot()
    panels = list(phase.groupby(["problem", "d1", "d2", "rank"], sort=True))
    if not panels:
        raise ValueError("the phase table has no rows to plot")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels) + 3, 4), squeeze=False, layout="constrained")
    for ax, ((problem, d1, d2, rank), part) in zip(axes[0], panels):
        fits = thresholds[(thresholds["problem"] == problem) & (thresholds["d1"] == d1) & (thresholds["d2"] == d2)
                          & (thresholds["rank"] == rank)]
        for method in _method_order(part["method"]):
            rows = part[part["method"] == method].sort_values("n_obs")
            color = _PHASE_COLORS.get(method)
            seeds = int(rows["seeds"].max())
            ax.plot(rows["n_obs"], rows["success_rate"], marker="o", color=color,
                    label=f"{_method_name(method)} ({seeds} seeds)")
            ax.fill_between(rows["n_obs"], rows["ci_low"], rows["ci_high"], color=color, alpha=0.15, linewidth=0)
            if rows["unconverged"].sum():
                un = rows[rows["unconverged"] > 0]
                ax.scatter(un["n_obs"], un["unconverged_rate"], marker="x", color=color, s=25)
            fit = fits[fits["method"] == method]
            if len(fit) and np.isfinite(fit["n_obs_50"].iloc[0]):
                f = fit.iloc[0]
                grid = np.linspace(rows["n_obs"].min(), rows["n_obs"].max(), 200)
                ax.plot(grid, 1 / (1 + np.exp(-(grid - f["n_obs_50"]) / f["scale"])), color=color, lw=0.7, alpha=0.7)
                low, high = f["ci_low"], f["ci_high"]
                err = None if not (np.isfinite(low) and np.isfinite(high)) else [[f["n_obs_50"] - low], [high - f["n_obs_50"]]]
                ax.errorbar([f["n_obs_50"]], [0.5], xerr=err, fmt="D", color=color, ms=6, capsize=3,
                            markeredgecolor="white")
        theory = fits["theory_n_obs_50"].dropna() if "theory_n_obs_50" in fits else pd.Series(dtype=float)
        if len(theory):
            ax.axvline(theory.iloc[0], color="black", linestyle=":", lw=1.2,
                       label="NNM asymptotic transition (DGM 2013)")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(_OBS_LABEL.get(problem, "n_obs"))
        ax.set_ylabel("success rate")
        ax.set_title(f"{problem}, {d1}x{d2}, rank {rank}", fontsize=10)
        ax.grid(alpha=0.3)
    below = phase["success_below"].iloc[0] if "success_below" in phase else 1e-3
    _legend(fig, f"success: converged, recon error < {below:g}\nbands: 95% Wilson; diamonds: n_obs_50\n"
                 "with bootstrap interval; x: unconverged share")
    return fig


def phase_heatmap_figure(phase: pd.DataFrame) -> Any:
    """Success rate as a heat map, methods by n_obs, one panel per (problem, rank); each cell
    gives successes / seeds (and unconverged runs, if any)."""
    plt = _pyplot()
    panels = list(phase.groupby(["problem", "d1", "d2", "rank"], sort=True))
    fig, axes = plt.subplots(1, len(panels), figsize=(0.6 * phase["n_obs"].nunique() * len(panels) + 2, 2.8),
                             squeeze=False, layout="constrained")
    image = None
    for ax, ((problem, d1, d2, rank), part) in zip(axes[0], panels):
        methods = _method_order(part["method"])
        grid = part.pivot_table(index="method", columns="n_obs", values="success_rate").reindex(methods)
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i, method in enumerate(methods):
            for j, n in enumerate(grid.columns):
                cell = part[(part["method"] == method) & (part["n_obs"] == n)]
                if len(cell):
                    c = cell.iloc[0]
                    text = f"{int(c['successes'])}/{int(c['seeds'])}" + (f"\n{int(c['unconverged'])}u" if c["unconverged"] else "")
                    ax.text(j, i, text, ha="center", va="center", fontsize=6,
                            color="black" if c["success_rate"] > 0.6 else "white")
        ax.set_xticks(range(len(grid.columns)), [str(int(n)) for n in grid.columns], rotation=60, fontsize=7)
        ax.set_yticks(range(len(methods)), [_method_name(m) for m in methods], fontsize=8)
        ax.set_xlabel(_OBS_LABEL.get(problem, "n_obs"))
        ax.set_title(f"{problem}, {d1}x{d2}, rank {rank}", fontsize=10)
    fig.colorbar(image, ax=list(axes[0]), label="success rate", shrink=0.9)
    return fig


def draw_phase_figures(phase_path: str | os.PathLike, thresholds_path: str | os.PathLike,
                       outputs: dict[str, str | os.PathLike]) -> None:
    """The phase figures of an experiment: ``outputs`` has phase_png, phase_pdf,
    phase_heatmap_png and phase_heatmap_pdf."""
    phase, thresholds = pd.read_parquet(phase_path), pd.read_parquet(thresholds_path)
    save_figure(phase_curves_figure(phase, thresholds), outputs["phase_png"], outputs["phase_pdf"])
    save_figure(phase_heatmap_figure(phase), outputs["phase_heatmap_png"], outputs["phase_heatmap_pdf"])
