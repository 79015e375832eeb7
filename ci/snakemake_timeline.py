"""When each job of a Snakemake run started and finished, from its console log, per rule.

    python ci/snakemake_timeline.py paper_preset.log

Prints, in seconds from the first job's start: every job of the rules matching ``--each``
(default: the batched and single training jobs) with its wildcards or first output, and for
every rule the number of jobs started and finished, the last finish and the longest job. Jobs
still running when the log ends (a run stopped at its time limit) show no finish. Reads the
lines Snakemake writes for a job: ``[<date>]``, ``rule <name>:`` (or ``localrule``), ``output:``,
``jobid: <n>``, ``wildcards: ...`` and ``Finished jobid: <n>``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path


@dataclass
class Job:
    rule: str
    start: float
    what: str = ""
    finish: float | None = None


def parse(lines: list[str]) -> dict[str, Job]:
    """jobid -> job, with times in seconds from the first timestamp."""
    jobs: dict[str, Job] = {}
    first = now = None
    rule = output = None
    current: Job | None = None
    for line in lines:
        stamp = re.match(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", line)
        if stamp:
            t = datetime.strptime(stamp.group(1), "%a %b %d %H:%M:%S %Y")
            first = first or t
            now = (t - first).total_seconds()
            continue
        header = re.match(r"^(?:local)?rule (\w+):", line)
        if header:
            rule, output, current = header.group(1), None, None
            continue
        field = re.match(r"^\s+(output|jobid|wildcards): (.*)", line)
        if field and rule:
            key, value = field.groups()
            if key == "output":
                output = value.split(",")[0]
            elif key == "jobid" and now is not None:
                current = jobs[value] = Job(rule, now, output or "")
            elif key == "wildcards" and current is not None:
                current.what = value
            continue
        done = re.match(r"^Finished jobid: (\d+)", line)
        if done and done.group(1) in jobs and now is not None:
            jobs[done.group(1)].finish = now
            rule = current = None
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("log", type=Path)
    parser.add_argument("--each", default=r"^train_", help="regex of the rules whose jobs are listed one by one")
    args = parser.parse_args(argv)
    jobs = parse(args.log.read_text(errors="replace").splitlines())
    if not jobs:
        print(f"{args.log}: no jobs found")
        return 1
    for job in sorted(jobs.values(), key=lambda j: j.start):
        if re.search(args.each, job.rule):
            end = f"{job.finish:6.0f} s ({job.finish - job.start:.0f} s)" if job.finish is not None else "   (not finished)"
            print(f"{job.rule:24} {job.start:6.0f} s -> {end}  {job.what[:120]}")
    print(f"{'rule':24} {'started':>8} {'finished':>9} {'last finish':>12} {'longest':>8}")
    for rule in sorted({j.rule for j in jobs.values()}):
        mine = [j for j in jobs.values() if j.rule == rule]
        ended = [j for j in mine if j.finish is not None]
        last = max((j.finish for j in ended), default=None)
        longest = max((j.finish - j.start for j in ended), default=None)
        print(f"{rule:24} {len(mine):8d} {len(ended):9d} {'' if last is None else f'{last:.0f} s':>12} "
              f"{'' if longest is None else f'{longest:.0f} s':>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
