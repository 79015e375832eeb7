"""The minimum nuclear norm solves of a finished run, timed with the solver choice before issue 25
(cvxpy + SCS for completion up to 250,000 entries and for sensing up to 10^6 entries of the
stacked measurements, ``admm-svt`` above) and with today's ``auto``, in one process, one BLAS
thread, CPU seconds of the solver alone (process start-up and cvxpy's import not counted).

    PYTHONPATH=src python benchmarks/default_run_nuclear_norm.py [ROOT]

ROOT is a directory with a finished run's ``results/`` (default: this repository). The phase
diagrams' 30 x 30 and 20 x 20 instances are left out (they were not in the default run before).
Prints one line per instance, then a JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from dmfcore.convex import SCS_COMPLETION_MAX_ENTRIES, min_nuclear_norm  # noqa: E402
from dmfcore.io import load_observations  # noqa: E402
from dmfcore.plan.make import data_paths  # noqa: E402

OLD_SCS_SENSING_MAX_ENTRIES = 1_000_000  # the old rule's limit for sensing


def old_choice(problem: str, m: int, d1: int, d2: int) -> str:
    if problem == "completion":
        return "cvxpy-scs" if d1 * d2 <= SCS_COMPLETION_MAX_ENTRIES else "admm-svt"
    return "cvxpy-scs" if m * d1 * d2 <= OLD_SCS_SENSING_MAX_ENTRIES else "admm-svt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", default=".", type=Path)
    args = parser.parse_args()
    totals = {"old": 0.0, "new": 0.0}
    count = scs = 0
    for metrics in sorted(args.root.glob("results/runs/*/*/n*/seed*/nuclear_norm/metrics.json")):
        problem, dataset, n, seed = metrics.parts[-6:-2]
        if dataset.startswith(("30x30", "20x20")):
            continue
        fields = {"problem": problem, "dataset": dataset, "n_obs": int(n.removeprefix("n")),
                  "seed": int(seed.removeprefix("seed"))}
        data = args.root / data_paths(fields)["observations"]
        if not data.is_file():  # real data live elsewhere; only the synthetic and fixed sets here
            continue
        obs = load_observations(data)
        d1, d2 = obs.shape
        line = []
        for label, solver in (("old", old_choice(problem, obs.m, d1, d2)), ("new", "auto")):
            start = time.process_time()
            res = min_nuclear_norm(obs, solver=solver)
            seconds = time.process_time() - start
            totals[label] += seconds
            line.append(f"{label} {res.solver} {seconds:.2f} s gap {res.relative_gap}")
            scs += solver == "cvxpy-scs"
        count += 1
        print(problem, dataset, n, seed, " | ".join(line), flush=True)
    print(json.dumps({"instances": count, "old_cpu_s": round(totals["old"], 2), "new_cpu_s": round(totals["new"], 2),
                      "old_scs_solves": scs}))


if __name__ == "__main__":
    main()
