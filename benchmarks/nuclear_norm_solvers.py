"""Minimum nuclear norm solvers timed on a fixed set of instances (one BLAS thread).

Instances (``W* = U V^T / sqrt(r)`` rescaled to ``||W*||_F = d``, observation seed ``(seed, m)``
as in the workflow; seed 3 by default, whose rank-5 3000-entry instance sits at the convex
method's recovery threshold):

- completion, 100 x 100, rank 5, m = 1500, 2000, 3000, 5000;
- completion, 100 x 100, rank 10, m = 4000 (at its threshold: SCS ~60 s, ``admm-svt`` 13,000
  iterations) and m = 5000;
- sensing, 50 x 50, rank 3, m = 450 Gaussian measurements (the default config's sensing size);
- MovieLens 100K (943 x 1682, the first 10,000 ratings of u.data) when ``--ratings`` names an
  existing file, with the solvers of ``--ratings-solvers`` (default ``ipm``; SCS's semidefinite
  formulation does not fit, and ``admm-svt`` takes over an hour to its 20,000-iteration cap).

Solvers: ``cvxpy-scs``, ``admm-svt`` (capped at ``--max-iters``), ``ipm`` (completion only),
``admm-ipm`` and ``auto`` (:func:`dmfcore.convex.choose_solver`: ``admm-ipm`` for completion,
SCS for the small sensing case). A result's ``solver`` names what ran (``admm-svt+ipm`` when
the hybrid fell back to the interior-point method); totals are by the requested solver.

Every (instance, solver) pair runs in its own subprocess, which loads the observations from
.npy files written by the parent and reports CPU seconds (``time.process_time``) of the
solve, peak RSS, ``||W||_*``, the certified relative duality gap (first-order solver; SCS
reports none), ``converged`` and the max constraint residual. Prints a table and, as its last
line, one JSON object.

    python benchmarks/nuclear_norm_solvers.py [--tol 1e-8] [--solvers cvxpy-scs,admm-svt,ipm,auto]
        [--ratings /path/to/ml-100k/u.data] [--ratings-solvers ipm] [--max-iters 20000]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from dmfcore.convex import default_check_every, min_nuclear_norm  # noqa: E402
from dmfcore.problems import (  # noqa: E402
    CompletionObservations,
    SensingObservations,
    low_rank_ground_truth,
    sample_completion,
    sample_sensing,
)

# (name, problem, d, rank, m)
SYNTHETIC = (
    ("c100-r5-m1500", "completion", 100, 5, 1500),
    ("c100-r5-m2000", "completion", 100, 5, 2000),
    ("c100-r5-m3000", "completion", 100, 5, 3000),
    ("c100-r5-m5000", "completion", 100, 5, 5000),
    ("c100-r10-m4000", "completion", 100, 10, 4000),
    ("c100-r10-m5000", "completion", 100, 10, 5000),
    ("s50-r3-m450", "sensing", 50, 3, 450),
)
DEFAULT_RATINGS = "/work/shared/data/ml-100k/u.data"


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def write_synthetic(directory: Path, problem: str, d: int, rank: int, m: int, seed: int) -> None:
    w_star = low_rank_ground_truth(d, d, rank, seed=seed)
    np.save(directory / "w_star.npy", w_star)
    if problem == "sensing":
        obs = sample_sensing(w_star, m, seed=(seed, m))
        np.save(directory / "A.npy", obs.A)
        np.save(directory / "y.npy", obs.y)
    else:
        obs = sample_completion(w_star, m, seed=(seed, m))
        for key in ("rows", "cols", "values"):
            np.save(directory / f"{key}.npy", getattr(obs, key))
    (directory / "shape.json").write_text(json.dumps([d, d]))


def write_movielens(directory: Path, ratings: str) -> None:
    from dmfcore.ratings import read_ratings, split_ratings

    train, _ = split_ratings(read_ratings(ratings, (943, 1682)), 10_000, "file_order", 0)
    for key in ("rows", "cols", "values"):
        np.save(directory / f"{key}.npy", getattr(train, key))
    (directory / "shape.json").write_text(json.dumps(list(train.shape)))


def run_case(directory: Path, solver: str, tol: float, max_iters: int) -> dict:
    """Solve one written instance with one solver (in this process) and summarize it."""
    shape = tuple(json.loads((directory / "shape.json").read_text()))
    if (directory / "A.npy").exists():
        obs = SensingObservations(shape, np.load(directory / "A.npy"), np.load(directory / "y.npy"))
    else:
        obs = CompletionObservations(shape, *(np.load(directory / f"{k}.npy") for k in ("rows", "cols", "values")))
    w_star = np.load(directory / "w_star.npy") if (directory / "w_star.npy").exists() else None
    start = time.process_time()
    if solver == "admm-svt":
        from dmfcore.nuclear_admm import min_nuclear_norm_admm

        res = min_nuclear_norm_admm(obs, tol=tol, max_iters=max_iters, check_every=default_check_every(obs))
    else:
        res = min_nuclear_norm(obs, solver, tol)
    cpu = time.process_time() - start
    return {
        "solver": res.solver,
        "cpu_seconds": round(cpu, 2),
        "status": res.status,
        "converged": res.status == "optimal",
        "relative_gap": getattr(res, "relative_gap", None),
        "iterations": res.iterations,
        "nuclear_norm": res.nuclear_norm,
        "max_residual": res.max_residual,
        "recon_error": None if w_star is None else float(np.mean((res.w - w_star) ** 2)),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--solvers", default="cvxpy-scs,admm-svt,ipm,auto")
    parser.add_argument("--ratings-solvers", default="ipm", help="solvers run on MovieLens")
    parser.add_argument("--cases", default=",".join(c[0] for c in SYNTHETIC) + ",movielens")
    parser.add_argument("--ratings", default=DEFAULT_RATINGS, help="MovieLens 100K u.data ('' to skip)")
    parser.add_argument("--max-iters", type=int, default=20_000, help="first-order solver's iteration cap")
    parser.add_argument("--child", nargs=2, metavar=("DIR", "SOLVER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(Path(args.child[0]), args.child[1], args.tol, args.max_iters)))
        return

    wanted = args.cases.split(",")
    cases = [c for c in SYNTHETIC if c[0] in wanted]
    movielens = "movielens" in wanted and bool(args.ratings) and Path(args.ratings).is_file()
    print(f"tol={args.tol:g} seed={args.seed}, one BLAS thread, one subprocess per instance and solver, CPU seconds")
    print(f"{'instance':>16} {'requested':>10} {'solver':>12} {'CPU s':>8} {'converged':>9} {'rel gap':>9} {'iters':>6} "
          f"{'||W||_*':>16} {'max resid':>9} {'recon err':>9}")
    results = []
    todo = [(name, problem, d, r, m) for name, problem, d, r, m in cases]
    if movielens:
        todo.append(("movielens100k", "completion", None, None, 10_000))
    for name, problem, d, rank, m in todo:
        with tempfile.TemporaryDirectory() as tmp:
            if d is None:
                write_movielens(Path(tmp), args.ratings)
            else:
                write_synthetic(Path(tmp), problem, d, rank, m, args.seed)
            for solver in (args.ratings_solvers if d is None else args.solvers).split(","):
                if d is None and solver == "cvxpy-scs":
                    continue  # its (d1 + d2)^2 semidefinite variable does not fit
                if problem == "sensing" and solver in ("ipm", "admm-ipm"):
                    continue  # completion only
                out = subprocess.run(
                    [sys.executable, __file__, "--tol", str(args.tol), "--max-iters", str(args.max_iters),
                     "--child", tmp, solver],
                    check=True, capture_output=True, text=True,
                ).stdout
                r = {"instance": name, "problem": problem, "m": m, "requested": solver,
                     **json.loads(out.strip().splitlines()[-1])}
                results.append(r)
                gap = "-" if r["relative_gap"] is None else f"{r['relative_gap']:.2e}"
                err = "-" if r["recon_error"] is None else f"{r['recon_error']:.2e}"
                print(f"{name:>16} {solver:>10} {r['solver']:>12} {r['cpu_seconds']:>8.2f} {str(r['converged']):>9} {gap:>9} "
                      f"{r['iterations'] or 0:>6} {r['nuclear_norm']:>16.10f} {r['max_residual']:>9.1e} {err:>9}",
                      flush=True)
    totals = {}  # over the 100 x 100 completion instances: the goal's total
    for r in results:
        if r["problem"] == "completion" and r["instance"] != "movielens100k":
            totals[r["requested"]] = round(totals.get(r["requested"], 0.0) + r["cpu_seconds"], 2)
    print(f"total CPU s over the synthetic completion instances: {totals}")
    print(json.dumps({"tol": args.tol, "seed": args.seed, "totals": totals, "cases": results}))


if __name__ == "__main__":
    main()
