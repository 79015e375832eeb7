"""Recovery phase diagrams: how many observations each method needs, with error bars.

Pure functions over an experiment's table (one row per run or reference row, rule aggregate):

- :func:`outcomes`: each run's outcome. A run *succeeds* when it is converged and its
  ``recon_error`` (relative squared error) is below ``success_below``; a run that is not
  converged (a training run that hit ``max_iters``, a minimum nuclear norm solve whose duality
  gap was not certified) is *unconverged*: neither a success nor a failure, counted apart.
- :func:`phase_table`: per (problem, d1, d2, rank, method, depth, n_obs): seeds, successes,
  unconverged runs, the success rate and its Wilson interval (:func:`binomial_interval`).
- :func:`fit_logistic`: P(success | n) = 1 / (1 + exp(-(n - n_50) / s)) by maximum likelihood
  (scipy.optimize), with a weak ridge on the slope so that a perfectly separated grid (every
  seed fails below some n and succeeds above it, common with few seeds) gives the midpoint of
  the gap instead of an infinite slope.
- :func:`thresholds_table`: per method, ``n_obs_50`` from the fit on all seeds and a percentile
  interval from a bootstrap over seeds (a seed is a ground truth and its observation sets: the
  resampling unit); every method of a (problem, rank) is resampled with the same seeds, so the
  ratio of each depth's ``n_obs_50`` to the minimum nuclear norm's gets its interval too.
- :func:`dgm_minimax_mse`: the asymptotic phase transition of nuclear norm minimization from
  Gaussian measurements (Donoho, Gavish & Montanari, PNAS 2013): delta*(rho; beta) equals the
  minimax MSE of singular value soft thresholding M(rho; beta) (Donoho & Gavish, Ann. Statist.
  2014), evaluated here from its definition (see the function).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

GROUP = ["problem", "d1", "d2", "rank"]
METHOD = ["method", "depth"]
NUCLEAR_NORM = "nuclear_norm"
# the ridge on the logistic slope (in units of the grid's standard deviation): weak, it matters
# only where the data separate perfectly
SLOPE_PRIOR_SD = 10.0
PHASE_DEFAULTS = {"success_below": 1e-3, "bootstrap": 200, "confidence": 0.95}


def method_label(row: Any) -> str:
    return NUCLEAR_NORM if row["method"] == NUCLEAR_NORM else f"depth{int(row['depth'])}"


def outcomes(table: pd.DataFrame, success_below: float = 1e-3) -> pd.DataFrame:
    """One row per run of a method (training runs and minimum nuclear norm solutions): its
    labels, ``success``, ``unconverged`` and ``recon_error`` (other reference rows dropped)."""
    runs = table[table["method"].isin(["dmf", NUCLEAR_NORM])].copy()
    if runs.empty:
        raise ValueError("the table has no training runs or minimum nuclear norm rows")
    if runs["recon_error"].isna().any():
        raise ValueError("a phase diagram needs the reconstruction error (synthetic data with a ground truth)")
    runs["method"] = runs.apply(method_label, axis=1)
    runs["depth"] = runs["depth"].where(runs["method"] != NUCLEAR_NORM).astype("Int64")
    runs["unconverged"] = ~runs["converged"].astype(bool)
    runs["success"] = ~runs["unconverged"] & (runs["recon_error"] < success_below)
    keys = GROUP + METHOD + ["n_obs", "seed"]
    twice = runs.duplicated(keys, keep=False)
    if twice.any():
        raise ValueError(f"two runs of one method, n_obs and seed (e.g. {runs.loc[twice, keys].iloc[0].to_dict()}): "
                         "a phase experiment lists one init scale and one learning rate per depth")
    extra = [c for c in ("relative_gap", "iterations", "max_iters") if c in runs]
    return runs[keys + ["success", "unconverged", "recon_error"] + extra].reset_index(drop=True)


def binomial_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a success probability (scipy.stats.binomtest)."""
    from scipy.stats import binomtest

    if trials == 0:
        return (math.nan, math.nan)
    ci = binomtest(int(successes), int(trials)).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def phase_table(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (problem, d1, d2, rank, method, depth, n_obs): seeds, successes, unconverged runs,
    failures, the success rate and its Wilson interval, and the largest certified duality gap of
    the minimum nuclear norm solves (``max_relative_gap``, where the solver gives one)."""
    table = (runs.groupby(GROUP + METHOD + ["n_obs"], dropna=False)
             .agg(seeds=("seed", "nunique"), successes=("success", "sum"), unconverged=("unconverged", "sum"))
             .reset_index())
    if "relative_gap" in runs:
        # the minimum nuclear norm's certified gaps (first-order solver; SCS certifies none)
        gaps = runs.assign(relative_gap=pd.to_numeric(runs["relative_gap"], errors="coerce"))
        gaps = gaps.groupby(GROUP + METHOD + ["n_obs"], dropna=False)["relative_gap"].max().reset_index()
        table = table.merge(gaps.rename(columns={"relative_gap": "max_relative_gap"}), how="left",
                            on=GROUP + METHOD + ["n_obs"])
    table["failures"] = table["seeds"] - table["successes"] - table["unconverged"]
    table["success_rate"] = table["successes"] / table["seeds"]
    table["unconverged_rate"] = table["unconverged"] / table["seeds"]
    bounds = [binomial_interval(k, n, confidence) for k, n in zip(table["successes"], table["seeds"])]
    table["ci_low"] = [b[0] for b in bounds]
    table["ci_high"] = [b[1] for b in bounds]
    table["d"] = table["d1"]
    return table


@dataclass(frozen=True)
class LogisticFit:
    """P(success | n) = expit((n - n_obs_50) / scale); ``status``: ``fit``, ``all_succeed``
    (the transition lies below the grid), ``all_fail`` (above it) or ``extrapolated`` (the
    fitted n_obs_50 lies outside the grid)."""

    n_obs_50: float
    scale: float
    status: str


def fit_logistic(n_obs: Any, successes: Any, trials: Any) -> LogisticFit:
    """Fit a logistic curve in n_obs to success counts by penalized maximum likelihood."""
    from scipy.optimize import minimize
    from scipy.special import expit, log_expit

    n = np.asarray(n_obs, dtype=float)
    k = np.asarray(successes, dtype=float)
    t = np.asarray(trials, dtype=float)
    keep = t > 0
    n, k, t = n[keep], k[keep], t[keep]
    if k.sum() == 0:
        return LogisticFit(math.nan, math.nan, "all_fail")
    if k.sum() == t.sum():
        return LogisticFit(math.nan, math.nan, "all_succeed")
    center, spread = n.mean(), n.std() or 1.0
    x = (n - center) / spread

    def loss(p: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = p
        z = a + b * x
        nll = -(k * log_expit(z) + (t - k) * log_expit(-z)).sum() + 0.5 * (b / SLOPE_PRIOR_SD) ** 2
        r = t * expit(z) - k
        return nll, np.array([r.sum(), (r * x).sum() + b / SLOPE_PRIOR_SD**2])

    res = minimize(loss, np.array([0.0, 1.0]), jac=True, method="L-BFGS-B")
    a, b = res.x
    if b <= 0:
        # success does not rise with n: no threshold to read
        return LogisticFit(math.nan, math.nan, "not_increasing")
    n50 = center - a / b * spread
    status = "fit" if n.min() <= n50 <= n.max() else "extrapolated"
    return LogisticFit(float(n50), float(spread / b), status)


def _counts(runs: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per method: its n_obs grid, its seeds, and a seeds x n_obs matrix of outcomes (1 success,
    0 not, NaN missing)."""
    out = {}
    for method, part in runs.groupby("method"):
        grid = part.pivot_table(index="seed", columns="n_obs", values="success", aggfunc="max").astype(float)
        out[method] = (grid.columns.to_numpy(dtype=float), grid.index.to_numpy(), grid.to_numpy())
    return out


def thresholds_table(runs: pd.DataFrame, bootstrap: int = 200, confidence: float = 0.95,
                     seed: int = 0) -> pd.DataFrame:
    """Per (problem, d1, d2, rank, method, depth): ``n_obs_50`` (logistic fit on every seed),
    ``ci_low``/``ci_high`` (bootstrap percentile interval over seeds; ``bootstrap_defined``: the
    share of resamples with a threshold inside the grid's range of fits), the fit's status, and
    each method's ratio to the minimum nuclear norm's ``n_obs_50`` with its interval (paired
    resamples). For Gaussian sensing, ``theory_n_obs_50``: the asymptotic NNM transition
    (:func:`dgm_transition_n_obs`)."""
    rng = np.random.default_rng(seed)
    rows = []
    alpha = (1 - confidence) / 2
    for key, part in runs.groupby(GROUP):
        problem, d1, d2, rank = key
        counts = _counts(part)
        seeds = np.array(sorted(part["seed"].unique()))
        index = {m: {s: i for i, s in enumerate(c[1])} for m, c in counts.items()}
        fits = {}
        for method, (grid, _, outcome) in counts.items():
            fits[method] = fit_logistic(grid, np.nansum(outcome, 0), np.sum(~np.isnan(outcome), 0))
        draws = {m: np.full(bootstrap, np.nan) for m in counts}
        for b in range(bootstrap):
            sample = rng.choice(seeds, size=len(seeds), replace=True)
            for method, (grid, _, outcome) in counts.items():
                picked = outcome[[index[method][s] for s in sample if s in index[method]]]
                fit = fit_logistic(grid, np.nansum(picked, 0), np.sum(~np.isnan(picked), 0))
                draws[method][b] = fit.n_obs_50
        theory = dgm_transition_n_obs(d1, d2, rank) if problem == "sensing" else math.nan
        for method, fit in fits.items():
            depth = part.loc[part["method"] == method, "depth"].iloc[0]
            low, high, defined = _percentiles(draws[method], alpha)
            row = {"problem": problem, "d1": d1, "d2": d2, "d": d1, "rank": rank, "method": method, "depth": depth,
                   "seeds": len(counts[method][1]), "n_obs_50": fit.n_obs_50, "ci_low": low, "ci_high": high,
                   "bootstrap_defined": defined, "status": fit.status, "scale": fit.scale,
                   "grid_low": counts[method][0].min(), "grid_high": counts[method][0].max(),
                   "theory_n_obs_50": theory}
            if NUCLEAR_NORM in fits:
                row["ratio_to_nuclear_norm"] = fit.n_obs_50 / fits[NUCLEAR_NORM].n_obs_50
                ratio_low, ratio_high, _ = _percentiles(draws[method] / draws[NUCLEAR_NORM], alpha)
                row["ratio_ci_low"], row["ratio_ci_high"] = ratio_low, ratio_high
            rows.append(row)
    table = pd.DataFrame(rows)
    for column in ("ratio_to_nuclear_norm", "ratio_ci_low", "ratio_ci_high"):
        if column not in table:
            table[column] = math.nan
    table["depth"] = table["depth"].astype("Int64")
    return table


def _percentiles(values: np.ndarray, alpha: float) -> tuple[float, float, float]:
    finite = values[np.isfinite(values)]
    if len(values) == 0 or len(finite) == 0:
        return (math.nan, math.nan, 0.0 if len(values) else math.nan)
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return (float(low), float(high), len(finite) / len(values))


def phase_tables(table: pd.DataFrame, success_below: float = 1e-3, bootstrap: int = 200,
                 confidence: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables of an experiment's table: (phase, thresholds)."""
    runs = outcomes(table, success_below)
    phase = phase_table(runs, confidence)
    phase["success_below"] = success_below
    thresholds = thresholds_table(runs, bootstrap, confidence)
    thresholds["success_below"] = success_below
    return phase, thresholds


# ---------------------------------------------------------------------------------------------
# The convex theory curve


def _mp_soft_moment(threshold: float, gamma: float) -> float:
    """E[(t - threshold)_+^2] for t a singular value of an m x n matrix with iid N(0, 1/n)
    entries as m/n -> gamma <= 1 (t^2 follows the Marchenko-Pastur law of ratio gamma)."""
    from scipy.integrate import quad

    lo, hi = (1 - math.sqrt(gamma)) ** 2, (1 + math.sqrt(gamma)) ** 2
    if threshold >= math.sqrt(hi):
        return 0.0

    def density(x: float) -> float:
        return math.sqrt(max((hi - x) * (x - lo), 0.0)) / (2 * math.pi * gamma * x)

    start = max(lo, threshold**2)
    # x = hi - u^2 removes the square-root edge at hi; x near lo = 0 (gamma = 1) is integrable
    value, _ = quad(lambda x: (math.sqrt(x) - threshold) ** 2 * density(x), start, hi, limit=200)
    return value


def dgm_minimax_mse(rho: float, beta: float = 1.0) -> float:
    """The asymptotic minimax MSE M(rho; beta) of singular value soft thresholding, which Donoho,
    Gavish & Montanari (PNAS 2013, "The phase transition of matrix recovery from Gaussian
    measurements matches the minimax MSE of matrix denoising") show to be the phase transition
    delta*(rho; beta) of nuclear norm minimization from n = delta M N Gaussian measurements of an
    M x N matrix of rank r = rho M (rho = r / min(M, N), beta = M / N <= 1).

    Evaluated from its definition with the least favorable signal "at infinity" (Donoho & Gavish,
    Ann. Statist. 2014): with noise of entry variance 1/N and threshold lambda, the r signal
    directions keep their noise (r (M + N - r) entries) and are shrunk by lambda; the remaining
    (M - r) x (N - r) noise block is a Marchenko-Pastur matrix of ratio gamma = (M - r)/(N - r),
    scaled by sqrt(1 - rho beta), soft-thresholded at lambda. Per entry, relative to sigma^2:

        M(rho; beta) = min_L  rho (1 + beta - rho beta)
                              + (1 - rho beta) [rho L^2 + (1 - rho) E_gamma (t - L)_+^2],

    L = lambda / sqrt(1 - rho beta), t a singular value of the Marchenko-Pastur law of ratio
    gamma = beta (1 - rho) / (1 - rho beta). This is the form of DGM's displayed formula for
    M(rho; beta) (its incomplete moments of the Marchenko-Pastur law); we did not have the
    paper's text to check the equation number or its printed values, so it is tested against
    what is stated in the authors' abstracts and limits (tests/test_phase.py): M(0) = 0, M(1) = 1,
    and M(rho; 1) / rho -> 6 as rho -> 0 (Gavish & Donoho 2014: optimally tuned soft thresholding
    guarantees an MSE of at most 6 n r sigma^2 for an n x n matrix of rank r); and against the
    statistical dimension of the nuclear norm's descent cone (Amelunxen, Lotz, McCoy & Tropp 2014),
    an independently derived formula for the same transition: equal to 1e-15 at beta = 1, 1/2, 1/4.
    """
    from scipy.optimize import minimize_scalar

    if not (0 <= rho <= 1 and 0 < beta <= 1):
        raise ValueError(f"need 0 <= rho <= 1 and 0 < beta <= 1, got rho={rho}, beta={beta}")
    if rho == 1:
        return 1.0
    gamma = beta * (1 - rho) / (1 - rho * beta)
    edge = 1 + math.sqrt(gamma)

    def risk(level: float) -> float:
        return rho * (1 + beta - rho * beta) + (1 - rho * beta) * (
            rho * level**2 + (1 - rho) * _mp_soft_moment(level, gamma))

    res = minimize_scalar(risk, bounds=(0.0, edge), method="bounded", options={"xatol": 1e-10})
    return float(min(res.fun, risk(edge)))


def dgm_transition_n_obs(d1: int, d2: int, rank: int) -> float:
    """The asymptotic NNM transition in measurements for a d1 x d2 matrix of rank ``rank``:
    M(rho; beta) d1 d2 with rho = rank / min(d1, d2), beta = min / max."""
    short, long = sorted((int(d1), int(d2)))
    return dgm_minimax_mse(rank / short, short / long) * d1 * d2


def write_phase_tables(table_path: Any, phase_path: Any, thresholds_path: Any, success_below: float = 1e-3,
                       bootstrap: int = 200, confidence: float = 0.95) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read an experiment's table and write its phase and thresholds tables (Parquet)."""
    from .io import write_parquet

    phase, thresholds = phase_tables(pd.read_parquet(table_path), success_below, bootstrap, confidence)
    write_parquet(phase_path, phase)
    write_parquet(thresholds_path, thresholds)
    return phase, thresholds
