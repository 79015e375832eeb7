"""Recovery phase diagrams (dmfcore.phase): the logistic fit, the binomial interval, the tables,
the Donoho-Gavish-Montanari curve, and their planning (in-process, a few seconds)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest
from helpers import REPO

from dmfcore.phase import (
    binomial_interval,
    dgm_minimax_mse,
    dgm_transition_n_obs,
    fit_logistic,
    outcomes,
    phase_table,
    phase_tables,
)
from dmfcore.plan import make_plan
from dmfcore.plan.config import ConfigError, read_config_files


def test_the_logistic_fit_recovers_a_known_threshold():
    rng = np.random.default_rng(1)
    grid = np.arange(100, 501, 25)
    trials = np.full(len(grid), 40)
    successes = rng.binomial(trials, 1 / (1 + np.exp(-(grid - 300) / 20)))
    fit = fit_logistic(grid, successes, trials)
    assert fit.status == "fit"
    assert abs(fit.n_obs_50 - 300) < 8 and 12 < fit.scale < 30


def test_a_perfectly_separated_grid_gives_the_midpoint_and_no_transition_gives_none():
    grid = [100, 200, 300, 400]
    fit = fit_logistic(grid, [0, 0, 6, 6], [6, 6, 6, 6])
    assert fit.status == "fit" and abs(fit.n_obs_50 - 250) < 1
    assert fit_logistic(grid, [0, 0, 0, 0], [6] * 4).status == "all_fail"
    assert math.isnan(fit_logistic(grid, [6, 6, 6, 6], [6] * 4).n_obs_50)


def test_the_binomial_interval_is_wilsons():
    # Wilson score 95% intervals (e.g. Agresti & Coull 1998; Brown, Cai & DasGupta 2001)
    assert binomial_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert binomial_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert binomial_interval(6, 6) == pytest.approx((0.6097, 1.0), abs=1e-4)


def test_the_dgm_curve_at_its_stated_values():
    """M(0) = 0, M(1) = 1; M(rho; 1) / rho -> 6 as rho -> 0 (Gavish & Donoho: optimally tuned
    soft thresholding guarantees at most 6 n r sigma^2), and 2 (1 + beta + sqrt(beta)) for an
    aspect ratio beta; increasing in rho."""
    assert dgm_minimax_mse(0.0) == pytest.approx(0.0, abs=1e-12)
    assert dgm_minimax_mse(1.0) == 1.0
    assert dgm_minimax_mse(1e-7) / 1e-7 == pytest.approx(6.0, rel=0.02)
    beta = 0.25
    assert dgm_minimax_mse(1e-7, beta) / 1e-7 == pytest.approx(2 * (1 + beta + math.sqrt(beta)), rel=0.02)
    values = [dgm_minimax_mse(r) for r in (0.01, 0.05, 0.1, 0.2, 0.5, 0.9)]
    assert all(a < b for a, b in zip(values, values[1:])) and values[-1] < 1
    # the values the docs quote (docs/phase.md)
    assert dgm_minimax_mse(0.05) == pytest.approx(0.2021, abs=2e-4)
    assert dgm_minimax_mse(0.1) == pytest.approx(0.3511, abs=2e-4)
    assert dgm_transition_n_obs(20, 20, 1) == pytest.approx(80.86, abs=0.05)


def _nuclear_norm_statistical_dimension(rho: float, beta: float) -> float:
    """The statistical dimension of the nuclear norm's descent cone at a rank rho p matrix of
    size p x q (beta = p / q <= 1), as a fraction of p q: Amelunxen, Lotz, McCoy & Tropp ("Living
    on the edge", Inf. Inference 2014), who show it is the location of the phase transition of
    nuclear norm minimization from Gaussian measurements. With r = rho beta (the rank over q) and
    the Marchenko-Pastur law of ratio y = (beta - r) / (1 - r) on [a, b] (density
    sqrt((b - x)(x - a)) / (2 pi y x) per unit of y), the threshold z solves
    int_z^b (sqrt(x / z) - 1) sqrt((b - x)(x - a)) / x dx = 2 pi r / (1 - r), and
    delta = [r (beta + 1 - r + (1 - r) z) + (1 - r)^2 / (2 pi) int_z^b (sqrt x - sqrt z)^2
    sqrt((b - x)(x - a)) / x dx] / beta. An independent derivation from DGM's minimax MSE."""
    from scipy.integrate import quad
    from scipy.optimize import brentq

    r = rho * beta
    y = (beta - r) / (1 - r)
    a, b = (1 - math.sqrt(y)) ** 2, (1 + math.sqrt(y)) ** 2

    def density(x: float) -> float:
        return math.sqrt(max((b - x) * (x - a), 0.0)) / x

    def excess(z: float) -> float:
        return quad(lambda x: (math.sqrt(x / z) - 1) * density(x), max(z, a), b, limit=200)[0] - 2 * math.pi * r / (1 - r)

    z = brentq(excess, 1e-12, b)
    tail = quad(lambda x: (math.sqrt(x) - math.sqrt(z)) ** 2 * density(x), max(z, a), b, limit=200)[0]
    return (r * (beta + 1 - r + (1 - r) * z) + (1 - r) ** 2 * tail / (2 * math.pi)) / beta


@pytest.mark.parametrize("beta", [1.0, 0.5, 0.25])
def test_the_dgm_curve_is_the_statistical_dimension_of_the_nuclear_norm(beta):
    """DGM's transition (the minimax MSE of soft thresholding, a minimum over the threshold) and
    ALMT's (the statistical dimension, from a stationarity condition on another integral) are the
    same curve (the MSE at a signal "at infinity" is the statistical dimension: Oymak & Hassibi,
    Found. Comput. Math. 2016); the papers' printed values were not reachable here, so this is
    the check against a published formula."""
    for rho in (0.02, 0.05, 0.1, 0.2, 0.5, 0.8):
        assert dgm_minimax_mse(rho, beta) == pytest.approx(_nuclear_norm_statistical_dimension(rho, beta), rel=1e-8)


def test_the_dgm_curve_is_the_risk_of_soft_thresholding_a_strong_signal():
    """Monte Carlo at n = 200 from the definition: a rank-r matrix with huge singular values plus
    N(0, 1/n) noise, soft-thresholded at the best threshold: the MSE per entry, relative to the
    noise variance, is M(rho) up to finite-size error."""
    n, r = 200, 20
    rng = np.random.default_rng(0)
    u, _ = np.linalg.qr(rng.standard_normal((n, r)))
    v, _ = np.linalg.qr(rng.standard_normal((n, r)))
    x0 = 1e3 * u @ v.T
    risks = []
    ys = [x0 + rng.standard_normal((n, n)) / math.sqrt(n) for _ in range(3)]
    svds = [np.linalg.svd(y, full_matrices=False) for y in ys]
    for lam in np.linspace(1.0, 2.2, 25):
        errors = [np.sum((a @ np.diag(np.maximum(s - lam, 0)) @ b - x0) ** 2) for a, s, b in svds]
        risks.append(np.mean(errors) / n)  # / (n^2 sigma^2), sigma^2 = 1/n
    assert min(risks) == pytest.approx(dgm_minimax_mse(r / n), rel=0.03)


def _synthetic_table(thresholds: dict[str, float], seeds: int = 12, grid=range(100, 501, 50),
                     unconverged: tuple = ()) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for method, n50 in thresholds.items():
        for seed in range(seeds):
            for n in grid:
                ok = rng.random() < 1 / (1 + math.exp(-(n - n50) / 15))
                rows.append({"problem": "completion", "d1": 30, "d2": 30, "rank": 2, "n_obs": n, "seed": seed,
                             "method": "nuclear_norm" if method == "nuclear_norm" else "dmf",
                             "depth": None if method == "nuclear_norm" else int(method[-1]),
                             "converged": (method, n, seed) not in unconverged,
                             "recon_error": 1e-6 if ok else 0.3})
    rows.append({**rows[0], "method": "ground_truth", "recon_error": 0.0, "depth": None})
    return pd.DataFrame(rows)


def test_the_tables_count_successes_apart_from_unconverged_runs():
    table = _synthetic_table({"depth2": 400, "depth3": 200, "nuclear_norm": 300},
                             unconverged={("depth3", 500, 0), ("nuclear_norm", 500, 1)})
    runs = outcomes(table)
    assert set(runs["method"]) == {"depth2", "depth3", "nuclear_norm"}
    phase = phase_table(runs)
    cell = phase[(phase["method"] == "depth3") & (phase["n_obs"] == 500)].iloc[0]
    # converged-and-accurate only: the unconverged run is neither a success nor a failure
    assert cell["seeds"] == 12 and cell["unconverged"] == 1 and cell["successes"] == 11 and cell["failures"] == 0
    assert cell["ci_low"] < cell["success_rate"] < cell["ci_high"]
    _, thresholds = phase_tables(table, bootstrap=100)
    by = thresholds.set_index("method")
    for method, n50 in {"depth2": 400, "depth3": 200, "nuclear_norm": 300}.items():
        assert abs(by.loc[method, "n_obs_50"] - n50) < 25
        assert by.loc[method, "ci_low"] <= by.loc[method, "n_obs_50"] <= by.loc[method, "ci_high"]
    assert by.loc["depth3", "ratio_to_nuclear_norm"] == pytest.approx(200 / 300, abs=0.1)
    assert by.loc["depth3", "ratio_ci_low"] < by.loc["depth3", "ratio_to_nuclear_norm"] < by.loc["depth3", "ratio_ci_high"]
    assert by.loc["nuclear_norm", "ratio_to_nuclear_norm"] == 1.0


def test_the_phase_figures_draw(tmp_path):
    from dmfcore.plots import phase_curves_figure, phase_heatmap_figure, save_figure

    table = _synthetic_table({"depth2": 400, "depth3": 200, "nuclear_norm": 300}, seeds=4)
    table["problem"] = "sensing"
    phase, thresholds = phase_tables(table, bootstrap=20)
    assert thresholds["theory_n_obs_50"].notna().all()
    save_figure(phase_curves_figure(phase, thresholds), tmp_path / "a.png", tmp_path / "a.pdf")
    save_figure(phase_heatmap_figure(phase), tmp_path / "b.png", tmp_path / "b.pdf")
    assert (tmp_path / "a.png").stat().st_size > 1000 and (tmp_path / "b.pdf").stat().st_size > 1000


# -- planning ----------------------------------------------------------------------------------

PHASE = {"problem": "completion", "shape": [20, 20], "ranks": [2], "n_obs": [80, 120, 160], "depths": [2, 3],
         "seeds": [0, 1], "baselines": ["nuclear_norm"], "device": "torch-cpu", "batch": True,
         "batch_over": ["n_obs", "depth"], "phase": {"success_below": 1e-3}}


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def test_a_phase_experiment_plans_its_tables_and_figures():
    plan = make_plan({"name": "t", "experiments": {"ph": copy.deepcopy(PHASE)}})
    jobs = {j["rule"]: j for j in plan.jobs()}
    assert jobs["phase_tables"]["output"] == ["results/t/tables/ph_phase.parquet",
                                              "results/t/tables/ph_phase_thresholds.parquet"]
    assert jobs["phase_tables"]["params"] == {"phase": {"success_below": 1e-3, "bootstrap": 200, "confidence": 0.95}}
    assert len(jobs["phase_figure"]["output"]) == 4
    assert set(jobs["phase_tables"]["output"]) <= set(plan.targets())
    assert len(plan.batches) == 2  # one per seed


def test_adding_seeds_adds_only_the_new_seeds_jobs():
    before = make_plan({"name": "t", "experiments": {"ph": copy.deepcopy(PHASE)}})
    after = make_plan({"name": "t", "experiments": {"ph": {**copy.deepcopy(PHASE), "seeds": [0, 1, 2, 3]}}})
    old = {tuple(j["output"]): j for j in before.jobs()}
    new = [j for j in after.jobs() if tuple(j["output"]) not in old]
    # every old training batch is there with the same runs; the new jobs are the new seeds' own
    # (data, batches, baselines) and the tables and figures, which read them all
    assert set(before.batches) < set(after.batches)
    for name, batch in before.batches.items():
        assert after.batches[name].outputs() == batch.outputs()
    for name, batch in before.set_batches.items():  # so are the data and baselines of each seed
        assert after.set_batches[name].outputs() == batch.outputs()
    trained = [j for j in new if j["rule"].startswith("train_")]
    assert len(trained) == 2 and all("/seed2/" in o or "/seed3/" in o for j in trained for o in j["output"])
    assert {j["rule"] for j in new} - {"aggregate", "phase_tables", "phase_figure"} <= {
        "ground_truth", "observations", "min_nuclear_norm"} | {j["rule"] for j in trained} | set(after.set_batches)
    assert all("/seed2/" in o or "/seed3/" in o for j in new if j["rule"] in after.set_batches for o in j["output"])


def test_a_phase_diagram_needs_a_ground_truth():
    config = {"name": "t", "datasets": {"rc": {"kind": "fixed", "shape": [2, 2],
                                               "observed": [[1, 2, 1.0], [2, 1, 1.0], [2, 2, 0.0]]}},
              "experiments": {"ph": {"problem": "completion", "datasets": ["rc"], "n_obs": [3], "depths": [2],
                                     "seeds": [0], "top_k": 2, "phase": {}}}}
    with pytest.raises(ConfigError, match=r"experiments\.ph\.phase: .*ground truth"):
        make_plan(config)


def test_the_shipped_configs_phase_experiments():
    # the default run: a small grid each for completion and sensing, one training batch per seed
    plan = make_plan(read_config_files(["config.yaml"]))
    assert plan.phase_experiments() == ["phase_completion", "phase_sensing"]
    phase_batches = [b for b in plan.batches.values() if b.device == "torch-cpu"]
    assert len(phase_batches) == 10 and {len(b.runs) for b in phase_batches} == {18}
    for name in plan.phase_experiments():
        exp = plan.experiments[name]
        assert len(exp["seeds"]) == 5 and len(exp["n_obs"]) >= 6 and exp["baselines"] == ["nuclear_norm"]
    # the paper-scale preset: d = 100, ranks 5 and 10, 10 seeds, every 250 observations; runs alone
    # on the CPU, and on a GPU one batch per problem and rank over seeds, n_obs and depths
    paper = make_plan(read_config_files(["presets/phase_paper.yaml"]))
    assert len(paper.phase_experiments()) == 4 and not paper.batches
    for name in paper.phase_experiments():
        exp = paper.experiments[name]
        assert exp["shape"] == [100, 100] and len(exp["seeds"]) >= 10 and set(np.diff(exp["n_obs"])) == {250}
    gpu = make_plan(read_config_files(["presets/phase_paper.yaml", "presets/phase_paper_gpu.yaml"]))
    assert sorted(len(b.runs) for b in gpu.batches.values()) == [420, 570, 570, 750]


def test_editing_the_phase_code_reruns_only_the_phase_tables():
    from dmfcore.provenance import module_closure

    assert {"phase", "io"} <= set(module_closure("phase"))
    for part in ("datasets", "runs", "baselines", "tables", "plots"):
        assert "phase" not in module_closure(part), part
