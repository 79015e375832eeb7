"""The jobs a configuration plans, as JSON: the golden files that hold the workflow's plan fixed.

    python tests/golden/job_list.py OUT.json [CONFIGFILE ...]     # write one
    python tests/golden/job_list.py --check tests/golden/NAME.json  # compare today's plan with it

Each job is (rule, outputs, params without code fingerprints), from Snakemake's own DAG built
in-process with every job forced (so the list does not depend on what results/ holds). Rule
names of batches are compared without their suffix, and fingerprints are left out: a code edit
changes them, not the plan.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# the params that name code, not settings
CODE_PARAMS = ("code", "producers")


def _plain(value):
    """Params as JSON values (Snakemake's Namedlists as lists or dicts)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def planned_jobs(configfiles: list[str], repo: Path = REPO) -> list[dict]:
    """Every job of the configuration (config.yaml when none is given), sorted."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DAGSettings, OutputSettings, Quietness,
                                          ResourceSettings, StorageSettings)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in ("Snakefile", "config.yaml", "workflow", "presets", "ci", "config", ".test", "envs"):
            src = repo / name
            if src.is_dir():
                shutil.copytree(src, work / name)
            elif src.is_file():
                shutil.copy(src, work / name)
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow_api = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(configfiles=[work / c for c in configfiles]),
                storage_settings=StorageSettings(),
                snakefile=work / "Snakefile",
                workdir=work,
            )
            dag_api = workflow_api.dag(DAGSettings(forceall=True))
            workflow = dag_api.workflow_api._workflow
            workflow._prepare_dag(forceall=True, ignore_incomplete=True, lock_warn_only=True)
            workflow._build_dag()
            jobs = []
            for job in workflow.dag.jobs:
                if job.rule.name == "all":
                    continue
                params = {k: _plain(v) for k, v in job.params.items() if k not in CODE_PARAMS}
                jobs.append({"rule": job.rule.name, "output": sorted(map(str, job.output)), "params": params})
    return sorted(jobs, key=lambda j: (j["rule"], j["output"]))


def normalized(jobs: list[dict]) -> list[dict]:
    """Jobs compared by what they do: a batch rule's name without its suffix."""
    from dmfcore.plan.make import batch_rule

    out = [{**job, "rule": batch_rule(job["rule"])} for job in jobs]
    return sorted(out, key=lambda j: (j["rule"], j["output"]))


def main(argv: list[str]) -> int:
    if argv[:1] == ["--check"]:
        golden = json.loads(Path(argv[1]).read_text())
        today = planned_jobs(golden["configfiles"])
        same = normalized(today) == normalized(golden["jobs"])
        print(f"{argv[1]}: {len(today)} jobs today, {len(golden['jobs'])} golden: {'same' if same else 'DIFFERENT'}")
        return 0 if same else 1
    out, configfiles = argv[0], argv[1:]
    jobs = planned_jobs(configfiles)
    Path(out).write_text(json.dumps({"configfiles": configfiles, "jobs": jobs}, indent=0, sort_keys=True) + "\n")
    print(f"{out}: {len(jobs)} jobs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
