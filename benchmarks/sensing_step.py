"""Matrix sensing step throughput vs. the two-pass memory bound, measured in the same run.

A sensing step reads the stacked measurement matrix A (m x d1*d2) twice: predictions
``A vec(W)`` and the gradient ``A^T r``. On CPU it is bound by memory bandwidth, so the
reference is the time of exactly those two matrix-vector products on the same buffers.
Also measures whether runs sharing one measurement set would gain from sharing each pass
over A (one ``A @ X`` with k right-hand sides instead of k products with one).

    python benchmarks/sensing_step.py [--m 1000 2000 5000] [--iters 100]

Prints a table and, as its last line, one JSON object.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from dmfcore.backend import resolve_backend  # noqa: E402
from dmfcore.model import init_factors  # noqa: E402
from dmfcore.optimizers import group_rmsprop  # noqa: E402
from dmfcore.problems import low_rank_ground_truth, make_objective, sample_sensing  # noqa: E402
from dmfcore.training import train  # noqa: E402

D = 100


def _best(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - start) / reps)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--m", type=int, nargs="+", default=[1000, 2000, 5000])
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--depths", type=int, nargs="+", default=[2, 3, 4])
    args = parser.parse_args()
    backend = resolve_backend("cpu", "float32")
    w_star = low_rank_ground_truth(D, D, 5, seed=0)
    result = {"d": D, "m": {}}
    print(f"{'m':>6} {'bound ms':>9} {'GB/s':>6} " + " ".join(f"{'depth ' + str(n) + ' ms':>11}" for n in args.depths)
          + f" {'ratio d3':>8}   shared pass, time per run for k = 1, 2, 4, 8")
    for m in args.m:
        objective = make_objective(sample_sensing(w_star, m, seed=1), backend)
        a = objective.A_t
        x = np.ones(a.shape[1], np.float32)
        r = np.empty(m, np.float32)
        g = np.empty(a.shape[1], np.float32)

        def two_pass() -> None:
            np.matmul(a, x, out=r)
            np.matmul(a.T, r, out=g)

        bound = _best(two_pass, max(10, args.iters // 4))
        ours = {}
        for depth in args.depths:
            factors = [backend.asarray(f) for f in init_factors((D, D), depth, "gaussian", 1e-3, seed=0)]
            res = train(objective, factors, group_rmsprop(), max_iters=args.iters, loss_threshold=0.0)
            ours[depth] = res.wall_seconds / res.iterations
        shared = {}
        for k in (1, 2, 4, 8):
            xs = np.ones((a.shape[1], k), np.float32)
            rs = np.empty((m, k), np.float32)
            gs = np.empty((a.shape[1], k), np.float32)

            def shared_pass() -> None:
                np.matmul(a, xs, out=rs)
                np.matmul(a.T, rs, out=gs)

            shared[k] = _best(shared_pass, max(5, args.iters // 10)) / k
        ratio = ours.get(3, next(iter(ours.values()))) / bound
        print(f"{m:>6} {bound * 1e3:>9.2f} {2 * a.nbytes / bound / 1e9:>6.1f} "
              + " ".join(f"{ours[n] * 1e3:>11.2f}" for n in args.depths)
              + f" {ratio:>8.2f}   " + ", ".join(f"{shared[k] * 1e3:.2f}" for k in shared) + " ms")
        result["m"][str(m)] = {
            "two_pass_bound_ms": round(bound * 1e3, 3),
            "ours_ms": {str(n): round(t * 1e3, 3) for n, t in ours.items()},
            "ratio_depth3": round(ratio, 3),
            "shared_pass_ms_per_run": {str(k): round(t * 1e3, 3) for k, t in shared.items()},
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
