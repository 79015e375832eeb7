"""``dmf``: one run from the command line, writing the same files as a workflow run.

    dmf run --problem completion --d 100 --rank 5 --n-obs 2000 --depth 3 --out results/cli
    dmf run ... --ground-truth gt.npz --observations obs.npz      # reuse existing data files
    dmf nuclear-norm --ground-truth gt.npz --observations obs.npz --out results/cli/nn
"""

from __future__ import annotations

from .threads import limit_blas_threads

# before NumPy is imported (by the modules below): one BLAS thread unless the user says otherwise
limit_blas_threads(1, override=False)

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from .backend import DEVICES, DTYPES
from .experiment import RunOutputs, TrainConfig, generate_ground_truth, generate_observations, run_dmf, run_min_nuclear_norm
from .io import DataFileError
from .model import INITS
from .optimizers import OPTIMIZERS
from .problems import PROBLEMS


def _outputs(out: Path, record: bool) -> RunOutputs:
    return RunOutputs(out / "matrix.npz", out / "metrics.json", out / "run.log", out / "trajectory.parquet" if record else None)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", choices=PROBLEMS, default="completion")
    p.add_argument("--d", type=int, default=100, help="square size d (d1 = d2 = d)")
    p.add_argument("--d1", type=int, help="rows (overrides --d)")
    p.add_argument("--d2", type=int, help="columns (overrides --d)")
    p.add_argument("--rank", type=int, default=5)
    p.add_argument("--n-obs", type=int, default=2000, help="observed entries / measurements")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ground-truth", type=Path, help="existing ground truth .npz (skips generation)")
    p.add_argument("--observations", type=Path, help="existing observations .npz (skips generation)")
    p.add_argument("--out", type=Path, required=True, help="output folder")


def _data_paths(args: argparse.Namespace) -> tuple[Path, Path]:
    if (args.ground_truth is None) != (args.observations is None):
        raise SystemExit("error: give both --ground-truth and --observations, or neither")
    if args.ground_truth is not None:
        return args.ground_truth, args.observations
    d1, d2 = args.d1 or args.d, args.d2 or args.d
    gt = args.out / "data" / "ground_truth.npz"
    obs = args.out / "data" / f"observations_n{args.n_obs}.npz"
    generate_ground_truth(gt, d1, d2, args.rank, args.seed)
    generate_observations(gt, obs, args.problem, args.n_obs, args.seed)
    return gt, obs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dmf", description="Deep matrix factorization: one run outside Snakemake.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train one deep factorization and write matrix, metrics, log (and trajectory)")
    _data_args(run)
    run.add_argument("--depth", type=int, default=3)
    run.add_argument("--init", choices=INITS, default="gaussian")
    run.add_argument("--init-scale", type=float, default=1e-3)
    run.add_argument("--lr", type=float, default=1e-3)
    run.add_argument("--optimizer", choices=OPTIMIZERS, default="group_rmsprop")
    run.add_argument("--max-iters", type=int, default=1_000_000)
    run.add_argument("--loss-threshold", type=float, default=1e-6)
    run.add_argument("--record-every", type=int, default=0, help="record dynamics every k steps (0: off)")
    run.add_argument("--top-k", type=int, default=10, help="singular values recorded")
    run.add_argument("--device", choices=DEVICES, default="cpu")
    run.add_argument("--dtype", choices=DTYPES, default="float32")
    nn = sub.add_parser("nuclear-norm", help="minimum nuclear norm baseline (cvxpy + SCS)")
    _data_args(nn)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        gt, obs = _data_paths(args)
        if args.command == "run":
            config = TrainConfig(
                depth=args.depth, init=args.init, init_scale=args.init_scale, lr=args.lr,
                optimizer=args.optimizer, seed=args.seed, max_iters=args.max_iters,
                loss_threshold=args.loss_threshold, record_every=args.record_every, top_k=args.top_k,
                device=args.device, dtype=args.dtype,
            )
            record = run_dmf(gt, obs, config, _outputs(args.out, args.record_every > 0), {"experiment": "cli"})
        else:
            record = run_min_nuclear_norm(gt, obs, _outputs(args.out, False), {"experiment": "cli"}, args.seed)
    except (ValueError, DataFileError, RuntimeError, FloatingPointError) as exc:
        print(f"dmf: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(record, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
