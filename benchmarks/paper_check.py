"""The paper's matrix completion setting (Section 5, Figure 1), checked end to end.

d = 100, rank 5, m = 2000 observed entries, seeds 0 and 1; depth 2 and 3 (gaussian init
1e-3, GroupRMSprop lr 1e-3, stop at train loss 1e-6) and the minimum nuclear norm solution.
Prints reconstruction error, nuclear norm, effective rank, iterations and wall seconds.

    python benchmarks/paper_check.py [--seeds 0 1] [--n-obs 2000]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402

from dmfcore.backend import resolve_backend  # noqa: E402
from dmfcore.convex import min_nuclear_norm_completion  # noqa: E402
from dmfcore.metrics import summary  # noqa: E402
from dmfcore.model import init_factors  # noqa: E402
from dmfcore.optimizers import group_rmsprop  # noqa: E402
from dmfcore.problems import low_rank_ground_truth, make_objective, sample_completion  # noqa: E402
from dmfcore.training import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n-obs", type=int, default=2000)
    parser.add_argument("--rank", type=int, default=5)
    args = parser.parse_args()
    d = 100
    backend = resolve_backend("cpu", "float32")
    print(f"{'seed':>4} {'method':>14} {'recon_error':>12} {'nuclear_norm':>13} {'eff_rank':>9} {'iters':>7} {'seconds':>8}")
    for seed in args.seeds:
        w_star = low_rank_ground_truth(d, d, args.rank, seed)
        obs = sample_completion(w_star, args.n_obs, (seed, args.n_obs))
        rows = []
        gt = summary(w_star, w_star)
        rows.append(("ground truth", gt, "", ""))
        for depth in (2, 3):
            factors = [backend.asarray(f) for f in init_factors((d, d), depth, "gaussian", 1e-3, (seed, depth))]
            res = train(make_objective(obs, backend), factors, group_rmsprop(1e-3))
            rows.append((f"depth {depth}", summary(res.w, w_star), res.iterations, f"{res.wall_seconds:.2f}"))
        nn = min_nuclear_norm_completion(obs)
        rows.append(("nuclear norm", summary(nn.w, w_star), "", f"{nn.wall_seconds:.2f}"))
        for name, s, iters, secs in rows:
            print(f"{seed:>4} {name:>14} {s['recon_error']:>12.3e} {s['nuclear_norm']:>13.4f} "
                  f"{s['effective_rank']:>9.3f} {iters!s:>7} {secs:>8}")


if __name__ == "__main__":
    main()
