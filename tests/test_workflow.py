"""The Snakemake workflow: DAG sizes, an end-to-end tiny run, incremental re-runs, config errors."""

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
pytestmark = pytest.mark.workflow

TINY = {
    "experiments": {
        "tiny": {
            "problem": "completion",
            "shape": [20, 20],
            "ranks": [2],
            "n_obs": [80, 160],
            "depths": [2, 3],
            "init_scales": {"2": [0.001, 0.0005], "3": [0.001]},
            "seeds": [0, 1],
            "record_every": 500,
            "figures": ["figure1", "figure2"],
        }
    }
}


def _copy_workflow(dest: Path) -> Path:
    """A private copy of the workflow (so that edits and .snakemake state stay in tmp)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "profiles", "envs"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    (dest / "src/dmfcore").mkdir(parents=True)
    shutil.copy(REPO / "src/dmfcore/plots.py", dest / "src/dmfcore/plots.py")
    return dest


def _write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    res = subprocess.run(SNAKEMAKE + list(args), cwd=workdir, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def job_counts(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs per rule that a dry-run would execute (empty if nothing to do)."""
    res = snakemake(workdir, "--dry-run", *args)
    out = res.stdout + res.stderr
    if "Nothing to be done" in out:
        return {}
    table = out[out.index("Job stats:"):].split("\n")
    counts = {}
    for line in table[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    counts.pop("total", None)
    counts.pop("all", None)
    return counts


def _expected_runs(config: dict) -> set:
    """Distinct training runs of a config, computed here independently of the workflow."""
    runs = set()
    for exp in config["experiments"].values():
        scales, lrs, n_obs = exp.get("init_scales", [0.001]), exp.get("lrs", [0.001]), exp["n_obs"]
        for rank, depth, seed in itertools.product(exp["ranks"], exp["depths"], exp["seeds"]):
            ns = n_obs if isinstance(n_obs, list) else n_obs[str(rank)]
            ss = scales if isinstance(scales, list) else scales[str(depth)]
            ls = lrs if isinstance(lrs, list) else lrs[str(depth)]
            for n, s, lr in itertools.product(ns, ss, ls):
                runs.add((exp["problem"], tuple(exp["shape"]), rank, n, seed, depth, float(s), float(lr)))
    return runs


def _expected_observation_sets(config: dict) -> set:
    return {(r[0], r[1], r[2], r[3], r[4]) for r in _expected_runs(config)}


@pytest.mark.parametrize("configfile", ["config.yaml", "presets/paper.yaml"])
def test_dry_run_job_counts(tmp_path, configfile):
    wf = _copy_workflow(tmp_path)
    shutil.copytree(REPO / "presets", wf / "presets")
    shutil.copy(REPO / "config.yaml", wf / "config.yaml")
    config = yaml.safe_load((REPO / configfile).read_text())
    args = [] if configfile == "config.yaml" else ["--configfile", configfile]
    counts = job_counts(wf, *args)
    obs_sets = _expected_observation_sets(config)
    assert counts["train_dmf"] == len(_expected_runs(config))
    assert counts["observations"] == len(obs_sets)
    assert counts["min_nuclear_norm"] == counts["ground_truth_row"] == len(obs_sets)
    assert counts["ground_truth"] == len({(o[1], o[2], o[4]) for o in obs_sets})
    assert counts["aggregate"] == len(config["experiments"])
    assert counts["figure"] == sum(len(e.get("figures", [])) for e in config["experiments"].values())


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    wf = _copy_workflow(tmp_path_factory.mktemp("wf"))
    cfg = _write_config(wf / "tiny.yaml", TINY)
    start = time.perf_counter()
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    return wf, cfg, time.perf_counter() - start


def test_tiny_workflow_end_to_end(tiny_run):
    wf, cfg, seconds = tiny_run
    assert seconds < 120
    table = pd.read_parquet(wf / "results/tables/tiny.parquet")
    for column in ("experiment", "problem", "d1", "d2", "rank", "n_obs", "method", "depth", "init_scale", "lr",
                   "optimizer", "seed", "iterations", "converged", "train_loss", "recon_error", "nuclear_norm",
                   "effective_rank", "wall_seconds", "device", "dtype", "dmfcore_version"):
        assert column in table.columns, column
    assert len(table) == len(_expected_runs(TINY)) + 2 * len(_expected_observation_sets(TINY))
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
        png = wf / f"results/figures/tiny_{fig}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        from PIL import Image

        with Image.open(png) as img:
            assert img.size[0] > 300 and img.size[1] > 200
        assert (wf / f"results/figures/tiny_{fig}.pdf").read_bytes()[:5] == b"%PDF-"
    traj = pd.read_parquet(next((wf / "results/runs").rglob("trajectory.parquet")))
    assert {"step", "time", "train_loss", "recon_error", "sigma_1"} <= set(traj.columns)
    snakemake(wf, "--configfile", str(cfg), "--report", "results/report.html")
    report = (wf / "results/report.html").read_text()
    assert "tiny_figure1.png" in report


def test_rerun_is_a_no_op(tiny_run):
    wf, cfg, _ = tiny_run
    assert job_counts(wf, "--configfile", str(cfg)) == {}


def test_adding_a_seed_schedules_only_new_runs(tiny_run, tmp_path):
    wf, _, _ = tiny_run
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"]["tiny"]["seeds"] = [0, 1, 2]
    counts = job_counts(wf, "--configfile", str(_write_config(tmp_path / "c.yaml", config)))
    assert counts == {
        "ground_truth": 1, "observations": 2, "train_dmf": 6, "min_nuclear_norm": 2,
        "ground_truth_row": 2, "aggregate": 1, "figure": 2,
    }


def test_adding_a_depth_or_n_obs(tiny_run, tmp_path):
    wf, _, _ = tiny_run
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"]["tiny"]["depths"] = [2, 3, 4]
    config["experiments"]["tiny"]["init_scales"]["4"] = [0.001]
    counts = job_counts(wf, "--configfile", str(_write_config(tmp_path / "c.yaml", config)))
    assert counts == {"train_dmf": 4, "aggregate": 1, "figure": 2}
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"]["tiny"]["n_obs"] = [80, 120, 160]
    counts = job_counts(wf, "--configfile", str(_write_config(tmp_path / "c.yaml", config)))
    assert counts == {"observations": 2, "train_dmf": 6, "min_nuclear_norm": 2, "ground_truth_row": 2,
                      "aggregate": 1, "figure": 2}


def test_changing_one_experiments_parameter_reruns_only_its_runs(tiny_run, tmp_path):
    wf, _, _ = tiny_run
    config = yaml.safe_load(yaml.safe_dump(TINY))
    other = yaml.safe_load(yaml.safe_dump(TINY["experiments"]["tiny"]))
    other["figures"] = []
    config["experiments"]["other"] = other  # shares every run with "tiny"
    counts = job_counts(wf, "--configfile", str(_write_config(tmp_path / "c.yaml", config)))
    assert counts == {"aggregate": 1}
    config["experiments"]["other"]["lrs"] = [0.002]
    counts = job_counts(wf, "--configfile", str(_write_config(tmp_path / "c.yaml", config)))
    assert counts == {"train_dmf": 12, "aggregate": 1}


def test_editing_plotting_code_redraws_only_figures(tiny_run):
    wf, cfg, _ = tiny_run
    script = wf / "workflow/scripts/figure.py"
    original = script.read_text()
    try:
        script.write_text(original + "\n# edited\n")
        assert job_counts(wf, "--configfile", str(cfg)) == {"figure": 2}
    finally:
        script.write_text(original)
    plots = wf / "src/dmfcore/plots.py"
    time.sleep(0.05)
    plots.touch()
    assert job_counts(wf, "--configfile", str(cfg)) == {"figure": 2}
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    assert job_counts(wf, "--configfile", str(cfg)) == {}


def test_killed_workflow_resumes_without_redoing_finished_runs(tmp_path):
    wf = _copy_workflow(tmp_path / "wf")
    config = {"experiments": {"slow": {**TINY["experiments"]["tiny"], "shape": [40, 40], "n_obs": [500],
                                       "seeds": [0, 1, 2, 3], "figures": []}}}
    cfg = _write_config(tmp_path / "slow.yaml", config)
    proc = subprocess.Popen(SNAKEMAKE + ["--cores", "1", "--configfile", str(cfg)], cwd=wf,
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
    assert 2 <= len(finished) < len(_expected_runs(config))
    # a hard kill leaves snakemake's lock behind (a Ctrl-C does not): remove it, then start again
    snakemake(wf, "--unlock", "--configfile", str(cfg))
    snakemake(wf, "--cores", "2", "--configfile", str(cfg))
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items()), "a finished run was redone"
    assert len(list(runs.rglob("dmf_*/metrics.json"))) == len(_expected_runs(config))
    assert not [p for p in wf.rglob("results/**/.*.tmp")], "partial output left behind"
    table = pd.read_parquet(wf / "results/tables/slow.parquet")
    assert len(table[table["method"] == "dmf"]) == len(_expected_runs(config))


BAD_CONFIGS = [
    ({"colour": "red"}, "colour"),
    ({"n_obs": [-5]}, "-5"),
    ({"n_obs": [500]}, "n_obs"),
    ({"depths": [0]}, "depths"),
    ({"problem": "tensor_completion"}, "problem"),
    ({"optimizer": "adam"}, "optimizer"),
    ({"init_scales": {"2": [0.001]}}, "init_scales"),
]


@pytest.mark.parametrize("change, key", BAD_CONFIGS)
def test_invalid_config_fails_naming_the_key(tmp_path, change, key):
    wf = _copy_workflow(tmp_path)
    config = yaml.safe_load(yaml.safe_dump(TINY))
    config["experiments"]["tiny"].update(change)
    res = snakemake(wf, "--dry-run", "--configfile", str(_write_config(tmp_path / "bad.yaml", config)), check=False)
    assert res.returncode != 0
    assert key in res.stdout + res.stderr


def test_lint_and_format():
    res = snakemake(REPO, "--lint", check=False)
    assert res.returncode == 0 and "Congratulations" in res.stdout + res.stderr, res.stdout + res.stderr
    fmt = subprocess.run([sys.executable, "-m", "snakefmt", "--check", "Snakefile", "workflow"], cwd=REPO,
                         capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_tiny_sensing_workflow_with_dynamics_figure(tmp_path):
    wf = _copy_workflow(tmp_path / "wf")
    config = {"experiments": {"sense": {
        "problem": "sensing", "shape": [10, 10], "ranks": [1], "n_obs": [30, 60], "depths": [2, 3],
        "seeds": [0], "record_every": 100, "top_k": 4, "figures": ["figure1", "figure2", "figure3"],
    }}}
    snakemake(wf, "--cores", "2", "--configfile", str(_write_config(tmp_path / "s.yaml", config)))
    table = pd.read_parquet(wf / "results/tables/sense.parquet")
    dmf = table[table["method"] == "dmf"]
    assert len(dmf) == 4 and dmf["converged"].all()
    nn = table[table["method"] == "nuclear_norm"]
    assert set(nn["solver"]) == {"cvxpy-scs"} and (nn["max_residual"] < 1e-6).all()
    traj = pd.read_parquet(wf / "results/tables/sense_trajectories.parquet")
    assert {"experiment", "n_obs", "depth", "step", "sigma_1", "sigma_4"} <= set(traj.columns)
    assert set(traj["depth"]) == {2, 3}
    for fig in ("figure1", "figure2", "figure3"):
        assert (wf / f"results/figures/sense_{fig}.png").stat().st_size > 10_000
