"""Planning through Snakemake itself: each shipped configuration's DAG against its golden job
list, the invalid-config messages, exact parameter values in paths, lint and format (dry runs:
nothing is trained; the planning logic is tested in-process in tests/test_plan.py)."""

import re
import subprocess
import sys

import pytest
import yaml
from helpers import REPO, SMALL, TINY, copy_workflow, job_counts, snakemake, write_config

pytestmark = pytest.mark.workflow


@pytest.mark.parametrize("golden", sorted((REPO / "tests/golden").glob("*.json")), ids=lambda p: p.stem)
def test_snakemake_plans_the_golden_job_list(golden):
    """Snakemake's own DAG of each shipped configuration (every job forced): its rules, outputs
    and params are the golden list (tests/test_plan.py holds dmfcore.plan to the same list)."""
    res = subprocess.run([sys.executable, "tests/golden/job_list.py", "--check", str(golden)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and ": same" in res.stdout, res.stdout[-2000:] + res.stderr[-3000:]


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
