"""Shared test helpers: the CUDA device parameter, and running a private copy of the workflow."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


HAS_CUDA = _cuda()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="torch sees no CUDA GPU")
# the CUDA device as a test parameter: marked gpu (`pytest -m gpu` runs only these), skipped
# where torch sees no GPU
CUDA = pytest.param("cuda", marks=[pytest.mark.gpu, needs_cuda])
TORCH_DEVICES = ["torch-cpu", CUDA]

# The tests' tiny configuration (a run a person can start too: .test/config_tiny/config.yaml),
# without its name: its tables go to results/default/ as a user's first config's would.
TINY = {k: v for k, v in yaml.safe_load((REPO / ".test/config_tiny/config.yaml").read_text()).items() if k != "name"}


def copy_workflow(dest: Path) -> Path:
    """A private copy of the workflow and the library (so that edits and .snakemake state stay
    in tmp; :func:`snakemake` runs it with the copy's dmfcore first on the path)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("Snakefile", "workflow", "profiles", "envs"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    shutil.copytree(REPO / "src/dmfcore", dest / "src/dmfcore", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def workflow_env(workdir: Path) -> dict[str, str]:
    """The environment of a workflow copy: its own dmfcore (src/) before the installed one (and
    before any PYTHONPATH already set, e.g. packages carried to a GPU machine as wheels)."""
    inherited = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(workdir / "src")] + ([inherited] if inherited else []))}


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    res = subprocess.run(SNAKEMAKE + list(args), cwd=workdir, capture_output=True, text=True, timeout=timeout,
                         env=workflow_env(workdir))
    if check and res.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return res


def job_counts(workdir: Path, *args: str) -> dict[str, int]:
    """Jobs per rule that a dry-run would execute (empty if nothing to do)."""
    return job_stats(snakemake(workdir, "--dry-run", *args))


def job_stats(res: subprocess.CompletedProcess) -> dict[str, int]:
    """Jobs per rule in a dry-run's output (empty if nothing to do)."""
    out = res.stdout + res.stderr
    # a rule whose pattern also matches another rule's outputs evaluates its input functions on
    # them: Snakemake goes on, but the log shows the exception to every user
    assert "InputFunctionException" not in out, out[:3000]
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


def expected_runs(config: dict) -> set:
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


def expected_observation_sets(config: dict) -> set:
    return {(r[0], r[1], r[2], r[3], r[4]) for r in expected_runs(config)}


# What docutils writes into a page for a reStructuredText problem (an undefined substitution, a
# bad directive, ...): a report must show none of it.
DOCUTILS_PROBLEMS = ("Undefined substitution", "System Message", "ERROR/", "WARNING/", "problematic")


def docutils_problems(html: str) -> list[str]:
    """The docutils error markers found in an HTML page (empty when it is clean)."""
    return [marker for marker in DOCUTILS_PROBLEMS if marker in html]


def batch_jobs(counts: dict[str, int]) -> int:
    return sum(n for rule, n in counts.items() if rule.startswith("train_batch_"))


SMALL = {"experiments": {"small": {**TINY["experiments"]["tiny"], "n_obs": [80], "depths": [2],
                                   "init_scales": [0.001], "seeds": [0], "figures": []}}}


def edit_file(path: Path, text: str) -> str:
    original = path.read_text()
    path.write_text(original + text)
    return original
