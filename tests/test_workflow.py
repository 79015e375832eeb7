"""The Snakemake workflow on one tiny configuration run once (module fixture ``tiny_run``): its
outputs, the report, incremental reruns, code and parameter changes. Cases that need a run of their
own are in test_workflow_cases.py, dry runs in test_workflow_plans.py (pytest -n 2 runs the files side by side)."""

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import (REPO, TINY, batch_jobs, copy_workflow, docutils_problems, edit_file,
                     expected_observation_sets, expected_runs, job_counts, snakemake, workflow_env,
                     write_config)

pytestmark = pytest.mark.workflow


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_batched_runs_write_what_single_runs_write(tiny_run, tmp_path):
    """batch: true on torch-cpu (on a GPU: device cuda, batch auto): the depth-2 runs of each
    observation set (two init scales) train in one job; depth 3 (one scale) alone."""
    wf, _ = tiny_run
    batched = {**TINY["experiments"]["tiny"], "n_obs": [160], "seeds": [0], "device": "torch-cpu", "batch": True,
               "figures": []}
    cfg = write_config(tmp_path / "b.yaml", {"experiments": {"batched": batched}})
    counts = job_counts(wf, "--configfile", str(cfg))
    assert batch_jobs(counts) == 1 and counts["train_dmf"] == 1
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
    assert batch_jobs(counts) == 1 and counts["train_dmf"] == 1
    scales = {**batched, "init_scales": {"2": [0.001, 0.0005, 0.00025], "3": [0.001]}}
    counts = job_counts(wf, "--configfile", str(write_config(tmp_path / "i.yaml", {"experiments": {"batched": scales}})))
    assert batch_jobs(counts) == 1 and "train_dmf" not in counts
    # batching over seeds too: one batch per depth (4 and 2 runs), each run on its own data
    wide = {**batched, "seeds": [0, 1], "batch_over": ["init_scale", "lr", "seed", "n_obs"]}
    wide_cfg = write_config(tmp_path / "w.yaml", {"experiments": {"batched": wide}})
    assert batch_jobs(job_counts(wf, "--configfile", str(wide_cfg))) == 2
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
        original = edit_file(path, "\n# a comment: no result changes\n")
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


def test_a_deleted_run_or_data_file_is_rebuilt(tiny_run):
    wf, cfg = tiny_run
    run = next((wf / "results/runs").rglob("dmf_depth3_*_cpu_float32/metrics.json")).parent  # a tiny run
    shutil.rmtree(run)
    assert job_counts(wf, "--configfile", str(cfg))["train_dmf"] == 1
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    assert (run / "matrix.npz").is_file() and (run / "trajectory.parquet").is_file()
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


def test_report_seen_in_a_browser(tiny_run, tmp_path):
    """The report opened in headless Chromium (tests/browser.py): its figure gallery opens (a
    click on the experiment, then on a result's eye shows the figure, decoded), no image is
    broken and the console shows no error. Skips where Chromium is absent."""
    from browser import CHROMIUM, check_page

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    wf, cfg = tiny_run
    snakemake(wf, "--configfile", str(cfg), "--report", "results/default/report_browser.html")
    root = tmp_path / "report"
    root.mkdir()
    shutil.copy(wf / "results/default/report_browser.html", root / "index.html")
    # a report with one category lists its results under "Results", with several one entry per
    # category (the experiment's name): open whichever it shows, then a result's eye
    open_gallery = """
        const entry = await waitFor(() => byText('tiny').concat(byText('Results')));
        if (!entry) return 'no results entry';
        entry[entry.length - 1].click();
        const eyes = await waitFor(() => document.querySelectorAll('a[iconname=eye]'));
        if (!eyes) return 'no result to view';
        eyes[0].click();
        const shown = await waitFor(() => [...document.images].filter(i => i.naturalWidth > 300));
        return shown ? shown.length : 'no figure shown';"""
    check = check_page(root, "/index.html", script=open_gallery, wait_ms=500, screenshot=tmp_path / "report.png")
    assert check.clicked == 1, check.clicked  # the gallery opened and showed one decoded figure
    assert check.broken_images == [], check.broken_images
    assert check.console == [], check.console
    assert check.failed_requests == [], check.failed_requests
    assert check.screenshot is not None
