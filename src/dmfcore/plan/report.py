"""``dmf plan``: a configuration's runs, batches and jobs, printed without Snakemake."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from .make import Plan


def plan_summary(plan: Plan) -> dict[str, Any]:
    """What a configuration plans, as plain data: per experiment its runs, observation sets and
    figures; the batches (name, runs, depths, device) and set batches (name, rule, sets); the
    jobs per rule and in all."""
    experiments = {
        name: {
            "runs": len(plan.runs[name]),
            "observation_sets": len(plan.observation_sets[name]),
            "figures": list(exp["figures"]),
            "left_out": plan.missing[name],
        }
        for name, exp in plan.experiments.items()
    }
    runs = {run.dir for runs in plan.runs.values() for run in runs}
    batches = [
        {"name": batch.name, "runs": len(batch.runs), "device": batch.device,
         "depths": sorted({run.depth for run in batch.runs})}
        for batch in plan.batches.values()
    ]
    set_batches = [{"name": b.name, "rule": b.rule, "sets": len(b.sets)} for b in plan.set_batches.values()]
    jobs = plan.jobs()
    return {
        "name": plan.name,
        "out": plan.out,
        "experiments": experiments,
        "runs": len(runs),
        "batched_runs": len(plan.batch_of),
        "batches": batches,
        "set_batches": set_batches,
        "jobs": plan.job_counts(),
        "total_jobs": len(jobs),
        "warnings": plan.warnings,
    }


def format_summary(summary: dict[str, Any]) -> str:
    """The summary as a few aligned lines for a person."""
    lines = [f"configuration {summary['name']} (tables and figures in {summary['out']}/): "
             f"{summary['runs']} training runs, {summary['batched_runs']} of them in "
             f"{len(summary['batches'])} batches; {summary['total_jobs']} jobs"]
    width = max(len(name) for name in summary["experiments"])
    lines.append(f"  {'experiment':<{width}}  runs  observation sets  figures")
    for name, exp in summary["experiments"].items():
        lines.append(f"  {name:<{width}}  {exp['runs']:>4}  {exp['observation_sets']:>16}  {', '.join(exp['figures'])}")
    if summary["batches"]:
        lines.append("batches:")
        for batch in summary["batches"]:
            lines.append(f"  {batch['name']}: {batch['runs']} runs of depths "
                         f"{', '.join(map(str, batch['depths']))} on {batch['device']}")
    if summary["set_batches"]:
        made, sets = Counter(), Counter()
        for batch in summary["set_batches"]:
            made[batch["rule"]] += 1
            sets[batch["rule"]] += batch["sets"]
        lines.append("observation sets made together (data and baselines of grids batched over n_obs): "
                     + "; ".join(f"{rule}: {sets[rule]} sets in {made[rule]} jobs" for rule in sorted(made)))
    lines.append("jobs per rule:")
    width = max(len(rule) for rule in summary["jobs"])
    for rule, count in summary["jobs"].items():
        lines.append(f"  {rule:<{width}}  {count:>5}")
    lines.append(f"  {'total':<{width}}  {summary['total_jobs']:>5}")
    lines += [f"warning: {w}" for w in summary["warnings"]]
    return "\n".join(lines)


def print_plan(plan: Plan, as_json: bool = False, list_runs: bool = False) -> str:
    summary = plan_summary(plan)
    if list_runs:
        summary["run_dirs"] = sorted({run.dir for runs in plan.runs.values() for run in runs})
    if as_json:
        return json.dumps(summary, indent=2)
    text = format_summary(summary)
    if list_runs:
        text += "\nruns:\n" + "\n".join(f"  {path}" for path in summary["run_dirs"])
    return text
