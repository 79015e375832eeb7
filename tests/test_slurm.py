"""The cluster profile (profiles/slurm): how it bundles and sizes jobs (dry-runs, no cluster
needed), and a tiny grid run through a real SLURM cluster with snakemake-executor-plugin-slurm
(marker `slurm`; `bash ci/slurm/start.sh` starts a one-node cluster, `.ci/run` does so)."""

import functools
import math
import re
import shutil
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from helpers import (REPO, SNAKEMAKE, TINY, copy_workflow, expected_observation_sets, expected_runs,
                     write_config)

PROFILE = REPO / "profiles/slurm/config.yaml"
TRAIN_GROUP = "train_bundle"  # completion runs on the CPU; sensing and GPU runs go alone

pytest.importorskip("snakemake_executor_plugin_slurm", reason="snakemake-executor-plugin-slurm not installed")
from snakemake_executor_plugin_slurm.utils import set_gres_string  # noqa: E402


class _Resources(dict):
    """A job's resources as the plugin reads them (attributes and .get)."""

    __getattr__ = dict.__getitem__


def _profile() -> dict:
    return yaml.safe_load(PROFILE.read_text())


def _run(workdir: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(SNAKEMAKE + list(args), cwd=workdir, capture_output=True, text=True, timeout=timeout)


def _dry_run_jobs(workdir: Path, *args: str) -> list[dict]:
    """The jobs of a dry-run: rule, group job (None: submitted alone), wildcards, resources."""
    res = _run(workdir, "--dry-run", *args)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    jobs, group = [], None
    for line in (res.stdout + res.stderr).splitlines():
        if m := re.match(r"^\[.*\] Group job (\S+) ", line):
            group = [m.group(1)]  # one list per group job: identity tells group jobs apart
        elif m := re.match(r"^( *)rule (\w+):$", line):
            jobs.append({"rule": m.group(2), "group": group if m.group(1) else None,
                         "wildcards": {}, "resources": {}})
        elif m := re.match(r"^ +(wildcards|resources): (.*)$", line):
            jobs[-1][m.group(1)] = dict(kv.split("=", 1) for kv in m.group(2).split(", "))
    return [job for job in jobs if job["rule"] != "all"]  # `all` runs nothing


def _submissions(jobs: list[dict]) -> int:
    """SLURM jobs a run submits: one per group job, one per job outside groups."""
    return len({id(job["group"]) for job in jobs if job["group"]}) + sum(job["group"] is None for job in jobs)


def _unbundled_profile(workdir: Path) -> None:
    profile = _profile()
    del profile["groups"], profile["group-components"]
    (workdir / "profiles/slurm/config.yaml").write_text(yaml.safe_dump(profile))


def test_paper_preset_is_bundled(tmp_path):
    """The paper-scale grid goes out as a few bundles of short jobs, not one SLURM job each."""
    wf = copy_workflow(tmp_path / "wf")
    shutil.copytree(REPO / "presets", wf / "presets")
    args = ["--profile", "profiles/slurm", "--configfile", "presets/paper.yaml"]
    jobs = _dry_run_jobs(wf, *args)
    per_bundle = _profile()["group-components"]

    train = [job for job in jobs if job["rule"] == "train_dmf"]
    assert all(job["group"] for job in jobs if job["rule"] != "train_dmf"), "every short job is bundled"
    sizes = {}
    for job in train:  # only completion runs on the CPU are bundled
        wc = job["wildcards"]
        bundled_run = wc["problem"] == "completion" and wc["device"] == "cpu"
        assert (job["group"] is not None) == bundled_run, wc
        if bundled_run:
            assert job["group"][0] == TRAIN_GROUP
            sizes[id(job["group"])] = sizes.get(id(job["group"]), 0) + 1
    assert max(sizes.values()) <= per_bundle[TRAIN_GROUP]
    count = {rule: sum(job["rule"] == rule for job in jobs) for rule in {job["rule"] for job in jobs}}
    alone = sum(job["group"] is None for job in train)
    expected = (  # a group's jobs, in connected pieces (e.g. a ground truth and its observations)
        math.ceil(count["ground_truth"] / per_bundle["data"])
        + math.ceil((len(train) - alone) / per_bundle[TRAIN_GROUP])
        + alone
        + math.ceil((count["min_nuclear_norm"] + count["ground_truth_row"]) / per_bundle["baselines"])
        + math.ceil(count["aggregate"] / per_bundle["summary"])  # a table with its figures
    )
    bundled = _submissions(jobs)
    assert bundled == expected

    _unbundled_profile(wf)
    unbundled_jobs = _dry_run_jobs(wf, *args)
    unbundled = _submissions(unbundled_jobs)
    # (the rule's own group stays, but without group-components each group job holds one run)
    assert unbundled == len(unbundled_jobs) == len(jobs)
    print(f"paper preset: {bundled} SLURM submissions bundled ({alone} of them single sensing/GPU runs), "
          f"{unbundled} unbundled ({len(train)} training runs)")
    assert (bundled - alone) * 20 < unbundled - alone


def test_profile_resources_follow_the_rules(tmp_path):
    """Memory as the rules declare it, time limits at most theirs, a GPU for CUDA runs only."""
    wf = copy_workflow(tmp_path / "wf")
    tiny = TINY["experiments"]["tiny"]
    config = {"experiments": {
        "tiny": {**tiny, "figures": ["figure1"]},
        "sensing": {**tiny, "problem": "sensing", "n_obs": [120], "figures": []},
        "gpu": {**tiny, "device": "cuda", "seeds": [0], "figures": []},
    }}
    cfg = str(write_config(tmp_path / "c.yaml", config))
    declared = {(j["rule"], str(sorted(j["wildcards"].items()))): j for j in _dry_run_jobs(wf, "--configfile", cfg)}
    cluster = _dry_run_jobs(wf, "--configfile", cfg, "--profile", "profiles/slurm")
    assert len(cluster) == len(declared)
    for job in cluster:
        rule, res = job["rule"], job["resources"]
        own = declared[(rule, str(sorted(job["wildcards"].items())))]["resources"]
        assert res["mem_mb"] == own["mem_mb"], (rule, job["wildcards"])
        assert 1 <= int(res["runtime"]) <= int(own["runtime"]), (rule, job["wildcards"])
        assert res["cpus_per_task"] == "1"
        if rule == "train_dmf":  # the plugin asks SLURM for a GPU for the CUDA runs only
            cuda = job["wildcards"]["device"].startswith("cuda")
            assert set_gres_string(SimpleNamespace(resources=_Resources(gpu=int(res["gpu"])))) == (
                " --gpus=1" if cuda else "")
            alone = job["wildcards"]["problem"] == "sensing" or cuda
            assert (job["group"] is None) == alone, job["wildcards"]
        if rule.startswith("train_batch_"):  # the gpu experiment's depth-2 runs, two init scales a batch
            assert set_gres_string(SimpleNamespace(resources=_Resources(gpu=int(res["gpu"])))) == " --gpus=1"
            assert job["group"] is None
    assert sum(j["rule"].startswith("train_batch_") for j in cluster) == 2  # (n_obs 80 and 160, seed 0)
    assert {j["rule"] for j in cluster} == {r for r, _ in declared}


# ---------------------------------------------------------------- a real SLURM cluster

CLUSTER_TINY = {"experiments": {"tiny": {**TINY["experiments"]["tiny"], "init_scales": [0.001], "figures": []}}}
# CI-only overrides: partition, squeue status checks (no accounting here), a 2 s initial wait
# (instead of 40 s), keep the SLURM logs, and 4 runs per training bundle (two bundles)
CI_BUNDLES = {"data": 100, TRAIN_GROUP: 4, "baselines": 8, "summary": 100}


def _cluster_args() -> list[str]:
    defaults = {**_profile()["default-resources"], "slurm_partition": "debug"}
    return [
        "--profile", "profiles/slurm",
        "--default-resources", *[f"{k}={v}" for k, v in defaults.items()],
        "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "2",
        "--slurm-keep-successful-logs",
        "--group-components", *[f"{k}={v}" for k, v in CI_BUNDLES.items()],
    ]


@functools.cache
def _cluster_up() -> str | None:
    """Why the SLURM tests cannot run here, or None."""
    if shutil.which("sbatch") is None:
        return "sbatch not found: no SLURM client (start a local cluster: sudo bash ci/slurm/start.sh)"
    try:
        res = subprocess.run(["sinfo", "-h", "-o", "%P %a %T"], capture_output=True, text=True, timeout=8)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"SLURM cluster not reachable (sinfo: {err}); start it: sudo bash ci/slurm/start.sh"
    if res.returncode != 0:
        return f"SLURM cluster not reachable (sinfo: {res.stderr.strip()[:200]}); start it: sudo bash ci/slurm/start.sh"
    if not re.search(r"^debug\*? up (idle|mixed|allocated|completing)", res.stdout, re.M):
        return f"no partition 'debug' up with a usable node (sinfo: {res.stdout.strip()[:200]})"
    return None


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory):
    """The tiny grid through SLURM, and the same grid locally (side by side) to compare."""
    if reason := _cluster_up():
        pytest.skip(reason)
    base = tmp_path_factory.mktemp("slurm")
    cfg = str(write_config(base / "tiny.yaml", CLUSTER_TINY))
    local_wf, cluster_wf = copy_workflow(base / "local"), copy_workflow(base / "cluster")
    local = subprocess.Popen(SNAKEMAKE + ["--cores", "1", "--configfile", cfg], cwd=local_wf,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = time.perf_counter()
    res = _run(cluster_wf, "--configfile", cfg, *_cluster_args(), timeout=240)
    seconds = time.perf_counter() - start
    local_out, _ = local.communicate(timeout=240)
    assert local.returncode == 0, local_out[-3000:]
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    print(f"tiny grid through SLURM: {seconds:.0f} s")
    return local_wf, cluster_wf, out, seconds


def _submitted(out: str) -> dict[str, Path]:
    """SLURM job id -> its log, from snakemake's 'submitted with SLURM jobid' lines."""
    return {m.group(1): Path(m.group(2)) for m in
            re.finditer(r"submitted with SLURM jobid (\d+) \(log: (\S+)\)", out)}


def _slurm_job(jobid: str) -> dict[str, str]:
    """`scontrol show job` fields (finished jobs stay visible for MinJobAge = 300 s)."""
    res = subprocess.run(["scontrol", "-o", "show", "job", jobid], capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, res.stderr
    return dict(kv.split("=", 1) for kv in res.stdout.split() if "=" in kv)


@pytest.mark.slurm
def test_jobs_go_through_sbatch_in_bundles(cluster_run):
    _, wf, out, seconds = cluster_run
    submitted = _submitted(out)
    n_runs, n_obs_sets = len(expected_runs(CLUSTER_TINY)), len(expected_observation_sets(CLUSTER_TINY))
    # the data, the training bundles, the reference rows (2 per observation set), the table
    expected = 1 + math.ceil(n_runs / CI_BUNDLES[TRAIN_GROUP]) + math.ceil(2 * n_obs_sets / CI_BUNDLES["baselines"]) + 1
    assert len(submitted) == expected < n_runs + 2 * n_obs_sets + 3, out[-3000:]
    logdirs = {log.parent.name for log in submitted.values()}
    assert logdirs == {"group_data_ground_truth_observations", "group_train_bundle_train_dmf",
                       "group_baselines_ground_truth_row_min_nuclear_norm", "group_summary_aggregate"}
    for jobid, log in submitted.items():
        assert log.is_file() and log.is_relative_to(wf / ".snakemake/slurm_logs"), log
        job = _slurm_job(jobid)
        assert job["JobState"] == "COMPLETED" and job["Partition"] == "debug", job
        assert job["NumCPUs"] == "1", job  # a bundle runs its jobs one after another
        if "train" in log.parent.name:  # 4 runs x 5 min, 1 GB (the profile's per-run values)
            assert job["TimeLimit"] == "00:20:00" and job["MinMemoryNode"] == "1000M", job
            assert "gres/gpu" not in job.get("TRES", ""), job


@pytest.mark.slurm
def test_cluster_results_match_a_local_run(cluster_run):
    local_wf, cluster_wf, _, _ = cluster_run
    keys = ["method", "n_obs", "seed", "depth", "init_scale"]
    local = pd.read_parquet(local_wf / "results/default/tables/tiny.parquet").sort_values(keys).reset_index(drop=True)
    cluster = pd.read_parquet(cluster_wf / "results/default/tables/tiny.parquet").sort_values(keys).reset_index(drop=True)
    assert len(cluster) == len(local) > 0
    assert cluster[keys].equals(local[keys])
    dmf = (local["method"] == "dmf").to_numpy()
    assert dmf.sum() == len(expected_runs(CLUSTER_TINY))
    # the same machine, one BLAS thread: training runs are bitwise reproducible
    for column in ("iterations", "recon_error", "train_loss", "nuclear_norm", "effective_rank"):
        assert cluster.loc[dmf, column].tolist() == local.loc[dmf, column].tolist(), column
    pd.testing.assert_series_equal(cluster["recon_error"], local["recon_error"], rtol=1e-6)


@pytest.mark.slurm
def test_failing_run_is_reported(cluster_run, tmp_path):
    """A run that diverges on the cluster: snakemake exits non-zero naming the rule and logs."""
    _, wf, _, _ = cluster_run
    tiny = CLUSTER_TINY["experiments"]["tiny"]
    config = {"experiments": {"diverge": {
        **tiny, "n_obs": tiny["n_obs"][:1], "depths": [2], "seeds": [0], "optimizer": "gd", "lrs": [1000.0],
        "baselines": [], "figures": [],
    }}}  # its data exist already (the tiny grid made them): one training job to submit
    res = _run(wf, "--configfile", str(write_config(tmp_path / "diverge.yaml", config)), *_cluster_args(),
               timeout=120)
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-3000:]
    assert len(_submitted(out)) == 1, out[-3000:]
    assert "Error in rule train_dmf" in out or "Error in group train_completion_cpu" in out, out[-3000:]
    run_log = re.search(r"log: (results/runs/\S+_gd_lr1000\.0_\S+/run\.log)", out)
    assert run_log, out[-3000:]
    assert "TrainingDivergedError" in (wf / run_log.group(1)).read_text()
    slurm_log = next(iter(_submitted(out).values()))
    assert str(slurm_log) in out and "TrainingDivergedError" in slurm_log.read_text()


@pytest.mark.slurm
def test_a_grid_batched_over_n_obs_goes_out_in_the_data_and_baselines_bundles(cluster_run, tmp_path):
    """The set batches (one job drawing a seed's observation sets, one solving their baselines)
    join the profile's data and baselines groups; each set gets its files and log."""
    if reason := _cluster_up():
        pytest.skip(reason)
    wf = copy_workflow(tmp_path / "wf")
    grid = {"grid": {"problem": "completion", "shape": [20, 20], "ranks": [3], "n_obs": [120, 200], "depths": [2],
                     "seeds": [0], "max_iters": 2000, "record_every": 0, "device": "torch-cpu", "batch": True,
                     "batch_over": ["n_obs", "depth"], "baselines": ["nuclear_norm"], "figures": []}}
    res = _run(wf, "--configfile", str(write_config(tmp_path / "grid.yaml", {"experiments": grid})),
               *_cluster_args(), timeout=240)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-5000:]
    logdirs = {log.parent.name for log in _submitted(out).values()}
    data, baselines = (next(d for d in logdirs if d.startswith(f"group_{g}_")) for g in ("data", "baselines"))
    assert re.fullmatch(r"group_data_ground_truth_observations_batch_[0-9a-f]{10}", data), logdirs
    assert re.fullmatch(r"group_baselines_min_nuclear_norm_batch_[0-9a-f]{10}", baselines), logdirs
    for n in (120, 200):
        solved = wf / f"results/runs/completion/20x20_rank3/n{n}/seed0/nuclear_norm"
        assert (solved / "metrics.json").is_file() and "admm" in (solved / "run.log").read_text()
        assert (wf / f"results/data/20x20_rank3/seed0/completion_n{n}.log").is_file()
