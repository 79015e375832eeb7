"""The Snakemake workflow: DAG sizes, an end-to-end tiny run, incremental re-runs, config errors."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import (REPO, SNAKEMAKE, TINY, copy_workflow, docutils_problems, expected_observation_sets,
                     expected_runs, job_counts, snakemake, workflow_env, write_config)

pytestmark = pytest.mark.workflow


@pytest.mark.parametrize("golden", sorted((REPO / "tests/golden").glob("*.json")), ids=lambda p: p.stem)
def test_snakemake_plans_the_golden_job_list(golden):
    """Snakemake's own DAG of each shipped configuration (every job forced): its rules, outputs
    and params are the golden list (tests/test_plan.py holds dmfcore.plan to the same list)."""
    res = subprocess.run([sys.executable, "tests/golden/job_list.py", "--check", str(golden)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and ": same" in res.stdout, res.stdout[-2000:] + res.stderr[-3000:]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    wf = copy_workflow(tmp_path_factory.mktemp("wf"))
    cfg = write_config(wf / "tiny.yaml", TINY)
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    return wf, cfg


def test_tiny_workflow_end_to_end(tiny_run):
    wf, cfg = tiny_run
    table = pd.read_parquet(wf / "results/default/tables/tiny.parquet")
    for column in ("experiment", "problem", "d1", "d2", "rank", "n_obs", "method", "depth", "init_scale", "lr",
                   "optimizer", "seed", "iterations", "converged", "train_loss", "recon_error", "nuclear_norm",
                   "effective_rank", "wall_seconds", "device", "dtype", "code_fingerprint", "code_part", "code_commit",
                   "dmfcore_version"):
        assert column in table.columns, column
    assert len(table) == len(expected_runs(TINY)) + 2 * len(expected_observation_sets(TINY))
    assert set(table["method"]) == {"dmf", "nuclear_norm", "ground_truth"}
    dmf = table[table["method"] == "dmf"]
    assert dmf["converged"].all() and (dmf["train_loss"] <= 1e-6).all()
    assert (dmf["recon_error"] > 0).all() and (dmf["effective_rank"] >= 1).all()
    gt = table[table["method"] == "ground_truth"]
    assert (gt["recon_error"] == 0).all() and gt["effective_rank"].between(1, 2).all()
    nn = table[table["method"] == "nuclear_norm"]
    # the minimum nuclear norm solution is feasible, so its nuclear norm is at most the ground truth's
    merged = nn.merge(gt, on=["n_obs", "seed"], suffixes=("_nn", "_gt"))
    assert (merged["nuclear_norm_nn"] <= merged["nuclear_norm_gt"] * (1 + 1e-6)).all()
    for fig in ("figure1", "figure2"):
        png = wf / f"results/default/figures/tiny_{fig}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        from PIL import Image

        with Image.open(png) as img:
            assert img.size[0] > 300 and img.size[1] > 200
        assert (wf / f"results/default/figures/tiny_{fig}.pdf").read_bytes()[:5] == b"%PDF-"
    traj = pd.read_parquet(next((wf / "results/runs").rglob("trajectory.parquet")))
    assert {"step", "flow_time", "train_loss", "recon_error", "sigma_1", "proj_1"} <= set(traj.columns)
    snakemake(wf, "--configfile", str(cfg), "--report", "results/default/report.html")
    report = (wf / "results/default/report.html").read_text()
    assert "tiny_figure1.png" in report
    assert not docutils_problems(report)  # a caption's reStructuredText error lands in the page


def test_report_works_in_an_environment_built_from_the_workflow_extra_alone(tiny_run, tmp_path):
    """The README's first command installs ``.[workflow]``; ``snakemake --report`` must work
    there, not only beside the test extras (pytest brings pygments, which the report needs)."""
    wf, cfg = tiny_run
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin/python")
    for requirement in (["torch==2.13.0"], ["-e", f"{REPO}[workflow]"]):
        res = subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-compile", *requirement], capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-3000:]
    assert subprocess.run([python, "-c", "import pytest"], capture_output=True).returncode != 0  # no test extras

    def report(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([python, "-m", "snakemake", "--configfile", str(cfg), "--report", name], cwd=wf,
                              capture_output=True, text=True, timeout=300, env=workflow_env(wf))

    res = report("results/default/report_workflow_env.html")
    assert res.returncode == 0, res.stderr[-3000:]
    html = (wf / "results/default/report_workflow_env.html").read_text()
    assert "tiny_figure1.png" in html and not docutils_problems(html)
    # the check can fail: without pygments (the extra before it listed it) the report stops
    subprocess.run([python, "-m", "pip", "uninstall", "--yes", "--quiet", "pygments"], check=True, timeout=120)
    res = report("results/default/report_without_pygments.html")
    assert res.returncode != 0 and "pygments must be installed" in res.stdout + res.stderr


def test_rerun_is_a_no_op(tiny_run):
    wf, cfg = tiny_run
    assert job_counts(wf, "--configfile", str(cfg)) == {}


def test_adding_a_seed_schedules_only_new_runs(tiny_run, tmp_path):
    wf, _ = tiny_run
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"]["tiny"]["seeds"] = [0, 1, 2]
    counts = job_counts(wf, "--configfile", str(write_config(tmp_path / "c.yaml", config)))
    assert counts == {
        "ground_truth": 1, "observations": 2, "train_dmf": 6, "min_nuclear_norm": 2,
        "ground_truth_row": 2, "aggregate": 1, "figure": 2,
    }


def test_adding_a_depth_or_n_obs(tiny_run, tmp_path):
    wf, _ = tiny_run
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"]["tiny"]["depths"] = [2, 3, 4]
    config["experiments"]["tiny"]["init_scales"]["4"] = [0.001]
    counts = job_counts(wf, "--configfile", str(write_config(tmp_path / "c.yaml", config)))
    assert counts == {"train_dmf": 4, "aggregate": 1, "figure": 2}
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"]["tiny"]["n_obs"] = [80, 120, 160]
    counts = job_counts(wf, "--configfile", str(write_config(tmp_path / "c.yaml", config)))
    assert counts == {"observations": 2, "train_dmf": 6, "min_nuclear_norm": 2, "ground_truth_row": 2,
                      "aggregate": 1, "figure": 2}


def _batch_jobs(counts: dict[str, int]) -> int:
    return sum(n for rule, n in counts.items() if rule.startswith("train_batch_"))


def test_batched_runs_write_what_single_runs_write(tiny_run, tmp_path):
    """batch: true on torch-cpu (on a GPU: device cuda, batch auto): the depth-2 runs of each
    observation set (two init scales) train in one job; depth 3 (one scale) alone."""
    wf, _ = tiny_run
    batched = {**TINY["experiments"]["tiny"], "n_obs": [160], "seeds": [0], "device": "torch-cpu", "batch": True,
               "figures": []}
    cfg = write_config(tmp_path / "b.yaml", {"experiments": {"batched": batched}})
    counts = job_counts(wf, "--configfile", str(cfg))
    assert _batch_jobs(counts) == 1 and counts["train_dmf"] == 1
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    keys = ["seed", "depth", "init_scale"]

    def table(name):
        rows = pd.read_parquet(wf / f"results/default/tables/{name}.parquet").query("method == 'dmf' and n_obs == 160")
        return rows.sort_values(keys).reset_index(drop=True)

    got, want = table("batched"), table("tiny").query("seed == 0").reset_index(drop=True)
    assert got["batch_size"].tolist() == [2 if d == 2 else 1 for d in got["depth"]]
    # the same runs as the single NumPy runs of the tiny experiment (fp32: rounding differs)
    depth2 = got["depth"] == 2
    assert ((got["iterations"] - want["iterations"]).abs() <= 0.005 * want["iterations"]).all()
    np.testing.assert_allclose(got.loc[depth2, "recon_error"], want.loc[depth2, "recon_error"], rtol=1e-4)
    run_dirs = list((wf / "results/runs").rglob("dmf_depth2_*_torch-cpu_float32"))
    assert len(run_dirs) == 2 and all(
        {"matrix.npz", "metrics.json", "trajectory.parquet", "run.log"} <= {f.name for f in d.iterdir()} for d in run_dirs
    )
    assert job_counts(wf, "--configfile", str(cfg)) == {}
    # a new seed makes new batches only; a new init scale retrains the batches it joins
    more_seeds = write_config(tmp_path / "s.yaml", {"experiments": {"batched": {**batched, "seeds": [0, 1]}}})
    counts = job_counts(wf, "--configfile", str(more_seeds))
    assert _batch_jobs(counts) == 1 and counts["train_dmf"] == 1
    scales = {**batched, "init_scales": {"2": [0.001, 0.0005, 0.00025], "3": [0.001]}}
    counts = job_counts(wf, "--configfile", str(write_config(tmp_path / "i.yaml", {"experiments": {"batched": scales}})))
    assert _batch_jobs(counts) == 1 and "train_dmf" not in counts
    # batching over seeds too: one batch per depth (4 and 2 runs), each run on its own data
    wide = {**batched, "seeds": [0, 1], "batch_over": ["init_scale", "lr", "seed", "n_obs"]}
    wide_cfg = write_config(tmp_path / "w.yaml", {"experiments": {"batched": wide}})
    assert _batch_jobs(job_counts(wf, "--configfile", str(wide_cfg))) == 2
    snakemake(wf, "--cores", "2", "--configfile", str(wide_cfg))
    got, want = table("batched"), table("tiny")
    depth2 = got["depth"] == 2
    assert got["batch_size"].tolist() == [4 if d == 2 else 2 for d in got["depth"]]
    assert ((got["iterations"] - want["iterations"]).abs() <= 0.005 * want["iterations"]).all()
    np.testing.assert_allclose(got.loc[depth2, "recon_error"], want.loc[depth2, "recon_error"], rtol=1e-4)


def test_changing_one_experiments_parameter_reruns_only_its_runs(tiny_run, tmp_path):
    wf, _ = tiny_run
    config = yaml.safe_load(yaml.safe_dump(TINY))
    other = yaml.safe_load(yaml.safe_dump(TINY["experiments"]["tiny"]))
    other["figures"] = []
    config["experiments"]["other"] = other  # shares every run with "tiny"
    counts = job_counts(wf, "--configfile", str(write_config(tmp_path / "c.yaml", config)))
    assert counts == {"aggregate": 1}
    config["experiments"]["other"]["lrs"] = [0.002]
    counts = job_counts(wf, "--configfile", str(write_config(tmp_path / "c.yaml", config)))
    assert counts == {"train_dmf": 12, "aggregate": 1}


def test_editing_plotting_code_redraws_only_figures(tiny_run):
    wf, cfg = tiny_run
    script = wf / "workflow/scripts/figure.py"
    original = script.read_text()
    try:
        script.write_text(original + "\n# edited\n")
        assert job_counts(wf, "--configfile", str(cfg)) == {"figure": 2}
    finally:
        script.write_text(original)
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))  # the script's mtime changed
    plots = wf / "src/dmfcore/plots.py"
    original = plots.read_text()
    try:
        plots.write_text(original + "\n# a comment changes nothing the code does\n")
        assert job_counts(wf, "--configfile", str(cfg)) == {}
        plots.write_text(original + "\nFIGURE_DPI = 100\n")
        assert job_counts(wf, "--configfile", str(cfg)) == {"figure": 2}
    finally:
        plots.write_text(original)
    assert job_counts(wf, "--configfile", str(cfg)) == {}


def test_killed_workflow_resumes_without_redoing_finished_runs(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    config = {"experiments": {"slow": {**TINY["experiments"]["tiny"], "shape": [40, 40], "n_obs": [500],
                                       "seeds": [0, 1, 2], "figures": []}}}
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


BAD_CONFIGS = [  # one schema error, one cross-field error (every check: tests/test_plan.py)
    ({"depth": [2]}, r"config\.experiments\.tiny: unknown key 'depth' \(did you mean 'depths'\?\)"),
    ({"n_obs": [500]}, r"experiments\.tiny\.n_obs: 500 entries exceed the 400 entries of a 20x20 matrix"),
]


@pytest.mark.parametrize("change, message", BAD_CONFIGS)
def test_invalid_config_fails_with_a_message_naming_the_key(tmp_path, change, message):
    wf = copy_workflow(tmp_path)
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"]["tiny"].update(change)
    res = snakemake(wf, "--dry-run", "--configfile", str(write_config(tmp_path / "bad.yaml", config)), check=False)
    assert res.returncode != 0
    assert re.search(message, res.stdout + res.stderr), res.stdout[-2000:] + res.stderr[-2000:]


def test_lint_and_format():
    res = snakemake(REPO, "--lint", check=False)
    assert res.returncode == 0 and "Congratulations" in res.stdout + res.stderr, res.stdout + res.stderr
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"], cwd=REPO,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


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
    assert set(nn["solver"]) == {"cvxpy-scs"} and (nn["max_residual"] < 1e-6).all()
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
    assert _batch_jobs(counts) == 1 and counts["train_dmf"] == 12
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


# ---------------------------------------------------------------------------------------------
# Results you can trust: code changes rerun, exact parameters, no duplicates, lost runs rebuilt.

SMALL = {"experiments": {"small": {**TINY["experiments"]["tiny"], "n_obs": [80], "depths": [2],
                                   "init_scales": [0.001], "seeds": [0], "figures": []}}}


def _edit(path: Path, text: str) -> str:
    original = path.read_text()
    path.write_text(original + text)
    return original


def test_a_code_change_reruns_what_it_computed_and_a_comment_does_not(tiny_run):
    wf, cfg = tiny_run
    n_obs_sets = len(expected_observation_sets(TINY))
    # the training loop reruns the training runs only (the data and the baselines import no
    # training code); the nuclear norm solver the reference rows (dmfcore.baselines); problems.py,
    # which all import, all
    edits = {
        "training.py": {"train_dmf": len(expected_runs(TINY)), "aggregate": 1, "figure": 2},
        "convex.py": {"min_nuclear_norm": n_obs_sets, "ground_truth_row": n_obs_sets, "aggregate": 1, "figure": 2},
        "problems.py": {"ground_truth": 2, "observations": n_obs_sets, "train_dmf": len(expected_runs(TINY)),
                        "min_nuclear_norm": n_obs_sets, "ground_truth_row": n_obs_sets, "aggregate": 1, "figure": 2},
    }
    for module, reruns in edits.items():
        path = wf / "src/dmfcore" / module
        original = _edit(path, "\n# a comment: no result changes\n")
        try:
            assert job_counts(wf, "--configfile", str(cfg)) == {}, module
            path.write_text(original + "\n_EDITED = True  # code: what it computes is stale\n")
            assert job_counts(wf, "--configfile", str(cfg)) == reruns, module
            # `dmf why` names the module that changed (from the module hashes in the runs' logs)
            run = next((wf / "results/runs").rglob("dmf_depth2*/metrics.json")).parent
            nn = next((wf / "results/runs").rglob("nuclear_norm/metrics.json")).parent
            why = subprocess.run([sys.executable, "-m", "dmfcore.cli", "why", str(run), str(nn)], cwd=wf,
                                 capture_output=True, text=True, env=workflow_env(wf))
            lines = why.stdout.splitlines()
            assert why.returncode == 0 and len(lines) == 2, why.stdout + why.stderr
            for line, stale in zip(lines, ("train_dmf" in reruns, "min_nuclear_norm" in reruns)):
                assert (f"changed: {module}" in line) == stale and ("up to date" in line) == (not stale), line
        finally:
            path.write_text(original)
    assert job_counts(wf, "--configfile", str(cfg)) == {}


def test_a_table_never_mixes_results_of_different_code(tmp_path):
    wf = copy_workflow(tmp_path / "wf")
    cfg = write_config(tmp_path / "small.yaml", SMALL)
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    fingerprints = set(pd.read_parquet(wf / "results/default/tables/small.parquet")["code_fingerprint"])
    _edit(wf / "src/dmfcore/problems.py", "\n_EDITED = True\n")
    more = yaml.safe_load(yaml.safe_dump(SMALL))
    more["experiments"]["small"]["seeds"] = [0, 1]
    cfg = write_config(tmp_path / "more.yaml", more)
    # Snakemake's metadata ignored (as when .snakemake/ is lost): the old runs are not rerun,
    # and the table refuses to mix them with the new seed's
    res = snakemake(wf, "--cores", "2", "--configfile", str(cfg), "--rerun-triggers", "mtime", check=False)
    assert res.returncode != 0
    log = (wf / "results/default/logs/aggregate/small.log").read_text()
    assert re.search(r"3 of 6 results were computed by other code \(code fingerprint \w+, \w+; the code now is "
                     r"baselines \w+, experiment \w+\)", log)
    assert "snakemake --cores all --forcerun results/runs/completion/20x20_rank2/n80/seed0/" in log
    # with Snakemake's own triggers the stale runs are recomputed and the table is whole again
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    table = pd.read_parquet(wf / "results/default/tables/small.parquet")
    assert len(table) == 6 and set(table["code_part"]) == {"runs", "baselines"}
    assert (table.groupby("code_part")["code_fingerprint"].nunique() == 1).all()
    assert set(table["code_fingerprint"]).isdisjoint(fingerprints)


def test_parameters_keep_their_exact_values(tmp_path):
    wf = copy_workflow(tmp_path)
    config = yaml.safe_load(yaml.safe_dump(SMALL))
    config["experiments"]["small"]["init_scales"] = [0.0012345678, 0.0012345679]
    res = snakemake(wf, "--dry-run", "--configfile", str(write_config(tmp_path / "c.yaml", config)))
    out = res.stdout + res.stderr
    assert "dmf_depth2_gaussian0.0012345678_" in out and "dmf_depth2_gaussian0.0012345679_" in out
    assert job_counts(wf, "--configfile", str(tmp_path / "c.yaml"))["train_dmf"] == 2
    # a run asked for by a path with a non-canonical number is refused, not run as another run
    path = ("results/runs/completion/20x20_rank2/n80/seed0/dmf_depth2_gaussian1e-3_group_rmsprop_lr0.001_"
            "stop1e-06_max1000000_cpu_float32/metrics.json")
    res = snakemake(wf, "--dry-run", path, "--configfile", str(tmp_path / "c.yaml"), check=False)
    assert res.returncode != 0 and "init_scale '1e-3': write it as '0.001'" in res.stdout + res.stderr


def test_a_deleted_run_or_data_file_is_rebuilt(tiny_run):
    wf, cfg = tiny_run
    run = next((wf / "results/runs").rglob("dmf_depth3_*_cpu_float32/metrics.json")).parent  # a tiny run
    shutil.rmtree(run)
    assert job_counts(wf, "--configfile", str(cfg))["train_dmf"] == 1
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    assert (run / "matrix.npz").is_file() and (run / "trajectory.parquet").is_file()
    assert job_counts(wf, "--configfile", str(cfg)) == {}


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


def test_each_configuration_keeps_its_own_tables_and_figures(tiny_run, tmp_path):
    wf, cfg = tiny_run
    other = {**yaml.safe_load(yaml.safe_dump(TINY)), "name": "other"}
    other_cfg = write_config(tmp_path / "other.yaml", other)
    table = wf / "results/default/tables/tiny.parquet"
    before = table.stat().st_mtime_ns
    assert job_counts(wf, "--configfile", str(other_cfg)) == {"aggregate": 1, "figure": 2}  # runs are shared
    snakemake(wf, "--cores", "2", "--configfile", str(other_cfg))
    assert (wf / "results/other/tables/tiny.parquet").is_file()
    assert (wf / "results/other/figures/tiny_figure1.png").is_file()
    assert table.stat().st_mtime_ns == before
    assert job_counts(wf, "--configfile", str(cfg)) == {}


def test_one_default_for_the_nuclear_norm_tolerance(tiny_run):
    from dmfcore.convex import NUCLEAR_NORM_TOL

    wf, _ = tiny_run
    table = pd.read_parquet(wf / "results/default/tables/tiny.parquet")
    assert set(table.loc[table["method"] == "nuclear_norm", "tol"]) == {NUCLEAR_NORM_TOL}


def test_the_nuclear_norm_solver_setting(tiny_run, tmp_path):
    """Left at auto it reruns nothing (existing baselines keep their params); set, it reruns the
    baselines and what reads them, with that solver; a bad value names the setting."""
    wf, cfg = tiny_run
    assert job_counts(wf, "--configfile", str(cfg), "--config", "nuclear_norm_solver=auto") == {}
    assert job_counts(wf, "--configfile", str(cfg), "--config", "nuclear_norm_solver=admm-svt") == {
        "min_nuclear_norm": 4, "aggregate": 1, "figure": 2}
    bad = snakemake(wf, "--dry-run", "--configfile", str(cfg), "--config", "nuclear_norm_solver=sdp", check=False)
    assert bad.returncode != 0 and "nuclear_norm_solver" in bad.stdout + bad.stderr
    one = copy_workflow(tmp_path / "wf")
    small = {"experiments": {"tiny": {**TINY["experiments"]["tiny"], "n_obs": [80], "seeds": [0], "depths": [2],
                                      "init_scales": [0.001], "figures": ["figure1"]}},
             "nuclear_norm_solver": "admm-svt"}
    snakemake(one, "--cores", "2", "--configfile", str(write_config(one / "small.yaml", small)))
    table = pd.read_parquet(one / "results/default/tables/tiny.parquet")
    assert set(table.loc[table["method"] == "nuclear_norm", "solver"]) == {"admm-svt"}


# ---------------------------------------------------------------------------------------------
# Real data: a ratings file as a dataset, beside synthetic data, in one experiment and figure.

def _dynamics_config(dataset: dict) -> dict:
    return {"datasets": {"toy": {"shape": [30, 40], **dataset}},
            "experiments": {"dyn": {
                "problem": "completion", "shape": [20, 20], "ranks": [2], "datasets": ["toy"],
                "n_obs": {"2": [120], "toy": [300]}, "depths": [1, 2, 3], "init": "identity",
                "optimizer": "gd", "lrs": [0.5], "max_iters": 3000, "record_every": 100, "seeds": [0],
                "figures": ["figure3"]}}}


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
