"""Certified minimum nuclear norm (``dmfcore.nuclear_admm``) at the paper's scale.

At d = 100, rank 5 (``W* = U V^T / sqrt(r)`` rescaled to ``||W*||_F = d``), solves
``min ||W||_*  s.t.  A(W) = y`` for matrix sensing with m in (1000, 2000, 5000) float32
Gaussian measurements and for matrix completion with m = 2000 observed entries, to a
certified relative duality gap ``--tol`` (default 1e-8), one BLAS thread.

Each case runs in its own subprocess, which loads the observations from .npy files written
by the parent (so that the data generation's float64 temporaries do not count) and reports
its peak RSS (``VmHWM``, else ``ru_maxrss``) and its RSS once the data are loaded. Reported per case: wall
seconds of the solver (including the Cholesky factorization of ``M M^T``), iterations,
relative gap, status, peak RSS, ``mean((W - W*)^2)``, ``||W||_*`` and ``||W*||_*``.
Prints a table and, as its last line, one JSON object.

    python benchmarks/nuclear_norm_solvers.py [--tol 1e-8] [--cases sensing:1000,completion:2000]
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
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from dmfcore.nuclear_admm import min_nuclear_norm_admm  # noqa: E402
from dmfcore.problems import (  # noqa: E402
    CompletionObservations,
    SensingObservations,
    low_rank_ground_truth,
    sample_completion,
    sample_sensing,
)

D, RANK = 100, 5
DEFAULT_CASES = "sensing:1000,sensing:2000,sensing:5000,completion:2000"


def _status_mb(field: str) -> float | None:
    """A ``/proc/self/status`` memory field (Linux) in MiB, None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _peak_rss_mb() -> float:
    """Peak RSS of this process since its exec.

    ``VmHWM`` where available: ``ru_maxrss`` of an exec'd child also counts the RSS its
    (forked) parent had, which here holds the previous case's data.
    """
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20  # KiB on Linux, bytes on macOS


def write_case(directory: Path, problem: str, m: int, seed: int) -> None:
    w_star = low_rank_ground_truth(D, D, RANK, seed=seed)
    np.save(directory / "w_star.npy", w_star)
    if problem == "sensing":
        obs = sample_sensing(w_star, m, seed=seed + 1)  # float32 A, as in training
        np.save(directory / "A.npy", obs.A)
        np.save(directory / "y.npy", obs.y)
    else:
        obs = sample_completion(w_star, m, seed=seed + 1)
        np.save(directory / "rows.npy", obs.rows)
        np.save(directory / "cols.npy", obs.cols)
        np.save(directory / "values.npy", obs.values)


def run_case(directory: Path, problem: str, tol: float) -> dict:
    """Solve one case written by ``write_case`` (in this process) and summarize it."""
    w_star = np.load(directory / "w_star.npy")
    if problem == "sensing":
        obs = SensingObservations(w_star.shape, np.load(directory / "A.npy"), np.load(directory / "y.npy"))
    else:
        obs = CompletionObservations(
            w_star.shape, *(np.load(directory / f"{k}.npy") for k in ("rows", "cols", "values"))
        )
    data_rss = _status_mb("VmRSS")
    res = min_nuclear_norm_admm(obs, tol=tol)
    truth = float(np.linalg.svd(w_star, compute_uv=False).sum())
    return {
        "problem": problem,
        "m": obs.m,
        "wall_seconds": round(res.wall_seconds, 2),
        "iterations": res.iterations,
        "relative_gap": res.relative_gap,
        "status": res.status,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "rss_with_data_mb": None if data_rss is None else round(data_rss, 1),
        "recon_error": float(np.mean((res.w - w_star) ** 2)),
        "nuclear_norm": res.nuclear_norm,
        "lower_bound": res.lower_bound,
        "truth_nuclear_norm": truth,
        "max_residual": res.max_residual,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--cases", default=DEFAULT_CASES, help="comma-separated problem:m")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs=2, metavar=("DIR", "PROBLEM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(Path(args.child[0]), args.child[1], args.tol)))
        return

    results = []
    print(f"d={D} rank={RANK} tol={args.tol:g}, one BLAS thread, one subprocess per case")
    header = (
        f"{'problem':>10} {'m':>5} {'wall s':>7} {'iters':>6} {'rel gap':>9} {'status':>9} "
        f"{'peak MB':>8} {'data MB':>8} {'recon err':>10} {'||W||_*':>12} {'||W*||_*':>12}"
    )
    print(header)
    for case in args.cases.split(","):
        problem, m = case.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            write_case(Path(tmp), problem, int(m), args.seed)
            out = subprocess.run(
                [sys.executable, __file__, "--tol", str(args.tol), "--child", tmp, problem],
                check=True, capture_output=True, text=True,
            ).stdout
        r = json.loads(out.strip().splitlines()[-1])
        results.append(r)
        print(
            f"{r['problem']:>10} {r['m']:>5} {r['wall_seconds']:>7.2f} {r['iterations']:>6} "
            f"{r['relative_gap']:>9.2e} {r['status']:>9} {r['peak_rss_mb']:>8.0f} "
            f"{r['rss_with_data_mb'] or float('nan'):>8.0f} {r['recon_error']:>10.3e} "
            f"{r['nuclear_norm']:>12.6f} {r['truth_nuclear_norm']:>12.6f}",
            flush=True,
        )
    print(json.dumps({"d": D, "rank": RANK, "tol": args.tol, "cases": results}))


if __name__ == "__main__":
    main()
