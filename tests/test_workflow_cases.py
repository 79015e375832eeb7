"""The Snakemake workflow, cases with a run of their own: a killed workflow resumed, sensing and
batches, stale results, corrupt data, real data, theory checks (the dry-run checks of planning:
tests/test_workflow_plans.py)."""

import os
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import yaml
from dmfcore.plan.make import batch_rule
from helpers import (SMALL, SNAKEMAKE, TINY, batch_jobs, copy_workflow, docutils_problems, edit_file,
                     expected_runs, job_counts, snakemake, workflow_env,
                     write_config)

pytestmark = pytest.mark.workflow


@pytest.mark.slow
def test_killed_workflow_resumes_without_redoing_finished_runs(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    config = {"experiments": {"slow": {**TINY["experiments"]["tiny"], "shape": [40, 40], "n_obs": [500],
                                       "seeds": [0, 1], "figures": []}}}
    cfg = write_config(tmp_path / "slow.yaml", config)
    proc = subprocess.Popen(SNAKEMAKE + ["--cores", "1", "--configfile", str(cfg)], cwd=wf, env=workflow_env(wf),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    runs = wf / "results/runs"

    def settled() -> dict:
        # runs whose last file (run.log) was written 2 s ago: snakemake has registered them as
        # complete by then (a run killed between its last write and that is rightly redone)
        now = time.time()
        return {p.parent / "metrics.json": p.parent.joinpath("metrics.json").stat().st_mtime_ns
                for p in runs.rglob("dmf_*/run.log") if now - p.stat().st_mtime > 2}

    deadline = time.time() + 120
    while time.time() < deadline and len(settled()) < 2:
        time.sleep(0.2)
    finished = settled()
    os.killpg(proc.pid, signal.SIGKILL)  # the hardest kill: snakemake and its running job
    proc.wait()
    assert 2 <= len(finished) < len(expected_runs(config))
    # a hard kill leaves snakemake's lock behind (a Ctrl-C does not): remove it, then start again
    snakemake(wf, "--unlock", "--configfile", str(cfg))
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items()), "a finished run was redone"
    assert len(list(runs.rglob("dmf_*/metrics.json"))) == len(expected_runs(config))
    assert not [p for p in wf.rglob("results/**/.*.tmp")], "partial output left behind"
    table = pd.read_parquet(wf / "results/default/tables/slow.parquet")
    assert len(table[table["method"] == "dmf"]) == len(expected_runs(config))


def test_tiny_sensing_workflow_with_dynamics_figure(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    config = {"experiments": {"sense": {
        "problem": "sensing", "shape": [10, 10], "ranks": [1], "n_obs": [30, 60], "depths": [2, 3],
        "seeds": [0], "record_every": 100, "top_k": 4, "figures": ["figure1", "figure2", "figure3"],
    }}}
    snakemake(wf, "--cores", "2", "--configfile", str(write_config(tmp_path / "s.yaml", config)))
    table = pd.read_parquet(wf / "results/default/tables/sense.parquet")
    dmf = table[table["method"] == "dmf"]
    assert len(dmf) == 4 and dmf["converged"].all()
    nn = table[table["method"] == "nuclear_norm"]
    # auto's sensing solver: certified to the workflow's 1e-8 relative duality gap, exactly feasible
    assert set(nn["solver"]) == {"admm-svt"} and nn["converged"].all() and (nn["relative_gap"] <= 1e-8).all()
    assert (nn["max_residual"] < 1e-9).all()
    traj = pd.read_parquet(wf / "results/default/tables/sense_trajectories.parquet")
    assert {"experiment", "n_obs", "depth", "step", "sigma_1", "sigma_4"} <= set(traj.columns)
    assert set(traj["depth"]) == {2, 3}
    for fig in ("figure1", "figure2", "figure3"):
        assert (wf / f"results/default/figures/sense_{fig}.png").stat().st_size > 10_000
    # the report with every figure's caption (the tiny workflow's has no figure3): no docutils errors
    snakemake(wf, "--configfile", str(tmp_path / "s.yaml"), "--report", "results/default/report.html")
    report = (wf / "results/default/report.html").read_text()
    assert "sense_figure3.png" in report
    assert not docutils_problems(report), docutils_problems(report)


@pytest.mark.slow
def test_a_batch_of_sensing_runs_writes_what_single_runs_write(tmp_path):
    """What a GPU trains for the paper preset's sensing grid, on torch-cpu: the depths, seeds and
    sizes in one job (a set read once per step by the runs of both depths, sets of one size
    stacked, stopped runs shed, records on the host), each run as its single NumPy run in fp64."""
    wf = copy_workflow(tmp_path / "wf")
    single = {"problem": "sensing", "shape": [10, 10], "ranks": [1], "n_obs": [30, 40, 60], "depths": [2, 3],
              "init_scales": [0.001], "seeds": [0, 1], "dtype": "float64", "record_every": 100, "top_k": 4,
              "baselines": [], "figures": []}
    batched = {**single, "device": "torch-cpu", "batch": True,
               "batch_over": ["init_scale", "lr", "seed", "n_obs", "depth"]}
    cfg = write_config(tmp_path / "s.yaml", {"experiments": {"single": single, "batched": batched}})
    counts = job_counts(wf, "--configfile", str(cfg))
    assert batch_jobs(counts) == 1 and counts["train_dmf"] == 12
    res = snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    assert "batch of 12 runs: step" in res.stdout + res.stderr  # its progress, on the job's console
    keys = ["depth", "n_obs", "seed"]

    def table(name):
        return pd.read_parquet(wf / f"results/default/tables/{name}.parquet").sort_values(keys).reset_index(drop=True)

    got, want = table("batched"), table("single")
    assert len(got) == 12 and (got["batch_size"] == 12).all() and (want["batch_size"] == 1).all()
    assert got["converged"].all() and got["iterations"].nunique() > 1  # they stop at different steps
    assert ((got["iterations"] - want["iterations"]).abs() <= 0.005 * want["iterations"]).all()
    # these tiny underdetermined runs end far apart when recovered (rounding grows on the way:
    # NumPy and torch-cpu single runs of one of them end at recon errors 3.7e-6 and 5.2e-6)
    np.testing.assert_allclose(got["recon_error"], want["recon_error"], rtol=1e-3, atol=5e-6)
    traj = {name: pd.read_parquet(wf / f"results/default/tables/{name}_trajectories.parquet") for name in
            ("single", "batched")}
    for (depth, n_obs, seed), mine in traj["batched"].groupby(keys):
        which = "depth == @depth and n_obs == @n_obs and seed == @seed"
        theirs = traj["single"].query(which)
        early = [step for step in sorted(set(mine["step"]) & set(theirs["step"])) if step <= 2000]
        assert len(early) == 21 and mine["step"].max() == got.query(which)["iterations"].item()
        for column in ("sigma_1", "sigma_2", "recon_error", "train_loss"):  # before rounding has grown
            np.testing.assert_allclose(mine.set_index("step").loc[early, column],
                                       theirs.set_index("step").loc[early, column], rtol=1e-6, err_msg=column)


@pytest.mark.slow
def test_a_grid_batched_over_n_obs_makes_its_data_and_baselines_as_single_jobs_do(tmp_path):
    """batch_over with n_obs: one job draws a seed's observation sets, one solves their minimum
    nuclear norm problems; the files are those the single-set jobs make, each with its log."""
    wf = copy_workflow(tmp_path / "wf")
    grid = {"problem": "completion", "shape": [20, 20], "ranks": [3], "n_obs": [120, 200], "depths": [2],
            "seeds": [0], "max_iters": 2000, "record_every": 0, "device": "torch-cpu", "baselines": ["nuclear_norm"]}
    single = write_config(tmp_path / "single.yaml", {"experiments": {"grid": {**grid, "batch": False}}})
    counts = job_counts(wf, "--configfile", str(single))
    assert counts["observations"] == counts["min_nuclear_norm"] == 2
    snakemake(wf, "--cores", "2", "--configfile", str(single))
    data = [wf / f"results/data/20x20_rank3/seed0/completion_n{n}.npz" for n in (120, 200)]
    solved = [wf / f"results/runs/completion/20x20_rank3/n{n}/seed0/nuclear_norm" for n in (120, 200)]

    def contents():
        arrays = [{k: v for k, v in np.load(path).items()} for path in data]
        matrices = [np.load(d / "matrix.npz")["W"] for d in solved]
        metrics = [{k: v for k, v in yaml.safe_load((d / "metrics.json").read_text()).items() if k != "wall_seconds"}
                   for d in solved]
        return arrays, matrices, metrics

    before = contents()
    batched = write_config(tmp_path / "batched.yaml", {"experiments": {"grid": {
        **grid, "batch": True, "batch_over": ["n_obs", "depth"]}}})

    def batches(counts):
        return {batch_rule(rule): n for rule, n in counts.items() if "_batch_" in rule}

    counts = job_counts(wf, "--configfile", str(batched))
    assert batches(counts) == {"observations_batch": 1, "min_nuclear_norm_batch": 1, "train_batch": 1}, counts
    assert "observations" not in counts and "min_nuclear_norm" not in counts
    snakemake(wf, "--cores", "2", "--configfile", str(batched))
    after = contents()
    for one, other in zip(before[0], after[0]):
        assert one.keys() == other.keys() and all(np.array_equal(one[k], other[k]) for k in one)
    assert all(np.array_equal(a, b) for a, b in zip(before[1], after[1]))
    assert before[2] == after[2]
    assert all("admm" in (d / "run.log").read_text() for d in solved)  # each set's own log
    assert all(path.with_suffix(".log").is_file() for path in data)
    assert job_counts(wf, "--configfile", str(batched)) == {}
    # a new seed: its own batches; the finished ones stay
    more = write_config(tmp_path / "more.yaml", {"experiments": {"grid": {
        **grid, "seeds": [0, 1], "batch": True, "batch_over": ["n_obs", "depth"]}}})
    counts = job_counts(wf, "--configfile", str(more))
    assert batches(counts) == {"observations_batch": 1, "min_nuclear_norm_batch": 1, "train_batch": 1}, counts
    assert counts["ground_truth"] == 1 and "observations" not in counts and "min_nuclear_norm" not in counts


def test_a_table_never_mixes_results_of_different_code(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    cfg = write_config(tmp_path / "small.yaml", SMALL)
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    fingerprints = set(pd.read_parquet(wf / "results/default/tables/small.parquet")["code_fingerprint"])
    edit_file(wf / "src/dmfcore/problems.py", "\n_EDITED = True\n")
    more = yaml.safe_load(yaml.safe_dump(SMALL))
    more["experiments"]["small"]["seeds"] = [0, 1]
    cfg = write_config(tmp_path / "more.yaml", more)
    # Snakemake's metadata ignored (as when .snakemake/ is lost): the old runs are not rerun,
    # and the table refuses to mix them with the new seed's
    res = snakemake(wf, "--cores", "2", "--configfile", str(cfg), "--rerun-triggers", "mtime", check=False)
    assert res.returncode != 0
    log = (wf / "results/default/logs/aggregate/small.log").read_text()
    assert re.search(r"3 of 6 results were computed by other code \(code fingerprint \w+, \w+; the code now is "
                     r"baselines \w+, runs \w+\)", log)
    assert "snakemake --cores all --forcerun results/runs/completion/20x20_rank2/n80/seed0/" in log
    # with Snakemake's own triggers the stale runs are recomputed and the table is whole again
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    table = pd.read_parquet(wf / "results/default/tables/small.parquet")
    assert len(table) == 6 and set(table["code_part"]) == {"runs", "baselines"}
    assert (table.groupby("code_part")["code_fingerprint"].nunique() == 1).all()
    assert set(table["code_fingerprint"]).isdisjoint(fingerprints)


@pytest.mark.slow
def test_a_corrupt_data_file_says_how_to_recover(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    cfg = write_config(tmp_path / "small.yaml", SMALL)
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    data = wf / "results/data/20x20_rank2/seed0/completion_n80.npz"
    data.write_bytes(data.read_bytes()[:100])
    for _ in range(2):  # the failing runs are not reported done on the next try either
        res = snakemake(wf, "--cores", "2", "--configfile", str(cfg), check=False)
        assert res.returncode != 0
        logs = " ".join(p.read_text() for p in (wf / "results/runs").rglob("run.log"))
        assert f"{data.relative_to(wf)}: not a readable .npz file" in logs
        assert "delete it and rerun snakemake to regenerate it" in logs
    data.unlink()
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    assert job_counts(wf, "--configfile", str(cfg)) == {}


def _dynamics_config(dataset: dict) -> dict:
    return {"datasets": {"toy": {"shape": [30, 40], **dataset}},
            "experiments": {"dyn": {
                "problem": "completion", "shape": [20, 20], "ranks": [2], "datasets": ["toy"],
                "n_obs": {"2": [120], "toy": [300]}, "depths": [1, 2, 3], "init": "identity",
                "optimizer": "gd", "lrs": [0.5], "max_iters": 3000, "record_every": 100, "seeds": [0],
                "figures": ["figure3"]}}}


@pytest.mark.slow
def test_real_data_runs_through_the_workflow(tmp_path):
    import zipfile
    import hashlib

    from test_real_data import write_ratings

    wf = copy_workflow(tmp_path / "wf")
    ratings = write_ratings(tmp_path / "u.data")
    cfg = write_config(tmp_path / "dyn.yaml", _dynamics_config({"ratings": str(ratings)}))
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    table = pd.read_parquet(wf / "results/default/tables/dyn.parquet")
    toy = table[table["dataset"] == "toy_file_order"]
    # real data: the constant predictors, and the minimum nuclear norm solution scored on the test set
    assert set(toy["method"]) == {"dmf", "mean_predictor", "zero_predictor", "nuclear_norm"}
    assert toy["test_error"].notna().all() and toy["recon_error"].isna().all()
    dmf = toy[toy["method"] == "dmf"].set_index("depth")
    mean = float(toy.loc[toy["method"] == "mean_predictor", "test_error"].iloc[0])
    assert dmf.loc[2, "test_error"] < mean and dmf.loc[3, "test_error"] < mean
    synthetic = table[table["dataset"] == "20x20_rank2"]
    assert set(synthetic["method"]) == {"dmf", "nuclear_norm", "ground_truth"}
    assert synthetic["recon_error"].notna().all()
    traj = pd.read_parquet(wf / "results/default/tables/dyn_trajectories.parquet")
    assert traj.loc[traj["dataset"] == "toy_file_order", "test_error"].notna().all()
    assert (wf / "results/default/figures/dyn_figure3.png").stat().st_size > 10_000

    # no data configured: the rest runs, the log and the figure say why the row is missing
    cfg = write_config(tmp_path / "none.yaml", _dynamics_config({"ratings": None}))
    res = snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    assert "dataset toy left out (no data: set datasets.toy.ratings" in res.stdout + res.stderr
    table = pd.read_parquet(wf / "results/default/tables/dyn.parquet")
    assert set(table["dataset"]) == {"20x20_rank2"}

    # download: the archive's checksum is checked, then its u.data is used
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(ratings, "ml-100k/u.data")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    bad = write_config(tmp_path / "bad.yaml", _dynamics_config(
        {"download": True, "url": archive.as_uri(), "sha256": "0" * 64}))
    res = snakemake(wf, "--cores", "2", "--configfile", str(bad), check=False)
    assert res.returncode != 0 and "SHA-256" in (wf / "results/downloads/toy/download.log").read_text()
    good = write_config(tmp_path / "good.yaml", _dynamics_config(
        {"download": True, "url": archive.as_uri(), "sha256": digest}))
    snakemake(wf, "--cores", "2", "--configfile", str(good))
    assert (wf / "results/downloads/toy/u.data").read_bytes() == ratings.read_bytes()
    table = pd.read_parquet(wf / "results/default/tables/dyn.parquet")
    assert "toy_file_order" in set(table["dataset"])


def test_theory_checks_are_targets_with_tables_and_figures(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    config = {**yaml.safe_load(yaml.safe_dump(SMALL)), "theory": ["single_measurement", "commuting"]}
    cfg = write_config(tmp_path / "theory.yaml", config)
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    out = wf / "results/default"
    single = pd.read_parquet(out / "tables/theory_single_measurement.parquet")
    assert set(single["depth"]) == {1, 2, 3, 4} and (single["max_rel_deviation"] < 5e-3).all()
    commuting = pd.read_parquet(out / "tables/theory_commuting.parquet")
    assert commuting["relative_gap"].is_monotonic_decreasing and len(commuting) >= 4
    proposition1 = pd.read_parquet(out / "tables/theory_commuting_points.parquet")
    assert (proposition1["schatten_p_perturbed"] < proposition1["schatten_p_limit"]).all()
    assert single["code_fingerprint"].nunique() == 1
    for check in ("single_measurement", "commuting"):
        assert (out / f"figures/theory_{check}.png").stat().st_size > 10_000
    assert job_counts(wf, "--configfile", str(cfg)) == {}
