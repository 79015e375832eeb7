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
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from .backend import DEVICES, DTYPES, resolve_backend
from .convex import NUCLEAR_NORM_TOL
from .baselines import run_min_nuclear_norm
from .datasets import generate_ground_truth, generate_observations
from .runs import run_dmf
from .runspec import TrainConfig
from .records import RunOutputs
from .io import DataFileError
from .model import INITS, factor_shapes
from .optimizers import OPTIMIZERS, make_optimizer
from .problems import PROBLEMS


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each option's default in its help, except where there is none (None: a required
    argument, or an optional one that is simply absent)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.required:
            return action.help
        return super()._get_help_string(action)


def _outputs(out: Path, record: bool) -> RunOutputs:
    return RunOutputs(out / "matrix.npz", out / "metrics.json", out / "run.log", out / "trajectory.parquet" if record else None)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", choices=PROBLEMS, default="completion", help="problem")
    p.add_argument("--d", type=int, default=100, help="square size d (d1 = d2 = d)")
    p.add_argument("--d1", type=int, help="rows (overrides --d)")
    p.add_argument("--d2", type=int, help="columns (overrides --d)")
    p.add_argument("--rank", type=int, default=5, help="ground-truth rank")
    p.add_argument("--n-obs", type=int, default=2000, help="observed entries / measurements")
    p.add_argument("--seed", type=int, default=0, help="seed of data and initialization")
    p.add_argument("--ground-truth", type=Path, help="existing ground truth .npz (skips generation)")
    p.add_argument("--observations", type=Path, help="existing observations .npz (skips generation)")
    p.add_argument("--out", type=Path, required=True, help="output folder (required)")


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


def _run_config(args: argparse.Namespace) -> TrainConfig:
    """The run's settings, checked (depth, init scale, learning rate, device) before any work."""
    config = TrainConfig(
        depth=args.depth, init=args.init, init_scale=args.init_scale, lr=args.lr,
        optimizer=args.optimizer, seed=args.seed, max_iters=args.max_iters,
        loss_threshold=args.loss_threshold, record_every=args.record_every, top_k=args.top_k,
        device=args.device, dtype=args.dtype,
    )
    factor_shapes((2, 2), config.depth)  # depth >= 1
    if not (config.init_scale > 0 and math.isfinite(config.init_scale)):
        raise ValueError(f"--init-scale must be a positive finite number, got {config.init_scale!r}")
    make_optimizer(config.optimizer, config.lr)  # lr > 0
    if config.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {config.top_k}")
    resolve_backend(config.device, config.dtype)  # e.g. cuda without a GPU
    return config


def _check_data_args(args: argparse.Namespace) -> None:
    """The data to generate (when no files are given): sizes, rank and number of observations."""
    if args.ground_truth is not None:
        return
    d1, d2 = args.d1 or args.d, args.d2 or args.d
    if min(d1, d2) < 1 or args.rank < 1 or args.n_obs < 1:
        raise ValueError(f"--d/--d1/--d2, --rank and --n-obs must be >= 1, got {d1}x{d2}, {args.rank}, {args.n_obs}")
    if args.rank > min(d1, d2):
        raise ValueError(f"--rank {args.rank} exceeds min(d1, d2) = {min(d1, d2)}")
    if args.n_obs > d1 * d2:
        raise ValueError(f"n_obs={args.n_obs} exceeds the {d1 * d2} entries of a {d1}x{d2} matrix")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dmf", description="Deep matrix factorization: one run outside Snakemake.",
        formatter_class=_HelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = _HelpFormatter
    run = sub.add_parser(
        "run", help="train one deep factorization and write matrix, metrics, log (and trajectory)",
        formatter_class=defaults,
    )
    _data_args(run)
    # defaults: the library's own (TrainConfig, NUCLEAR_NORM_TOL), shared with the workflow
    run.add_argument("--depth", type=int, default=3, help="factorization depth N (1: train W itself)")
    run.add_argument("--init", choices=INITS, default=TrainConfig.init, help="initialization")
    run.add_argument("--init-scale", type=float, default=TrainConfig.init_scale, help="scale of the initial product")
    run.add_argument("--lr", type=float, default=TrainConfig.lr, help="learning rate")
    run.add_argument("--optimizer", choices=OPTIMIZERS, default=TrainConfig.optimizer, help="optimizer")
    run.add_argument("--max-iters", type=int, default=TrainConfig.max_iters, help="at most this many updates")
    run.add_argument("--loss-threshold", type=float, default=TrainConfig.loss_threshold, help="stop at this train loss")
    run.add_argument(
        "--record-every", type=int, default=TrainConfig.record_every,
        help="record dynamics every k steps into trajectory.parquet (0: the first and the last step only, "
        "as record_every: 0 in the workflow)",
    )
    run.add_argument("--top-k", type=int, default=TrainConfig.top_k, help="singular values recorded")
    run.add_argument("--device", choices=DEVICES, default=TrainConfig.device, help="where to train")
    run.add_argument("--dtype", choices=DTYPES, default=TrainConfig.dtype, help="training precision")
    nn = sub.add_parser(
        "nuclear-norm", help="minimum nuclear norm baseline (cvxpy + SCS or certified ADMM, chosen by size)",
        description="The minimum nuclear norm matrix that fits the observations exactly: cvxpy + SCS for "
        "small problems, the certified first-order solver (ADMM) for large ones, chosen by size.",
        formatter_class=defaults,
    )
    _data_args(nn)
    nn.add_argument(
        "--tol", type=float, default=NUCLEAR_NORM_TOL, help="relative duality gap of the first-order solver"
    )
    plan = sub.add_parser(
        "plan", help="print a configuration's runs, batches and jobs per rule (no Snakemake)",
        description="Check a workflow configuration and print what `snakemake --cores all` would run from "
        "scratch: runs per experiment, batches and jobs per rule. Several files merge as Snakemake's "
        "--configfile does.",
        formatter_class=defaults,
    )
    plan.add_argument("--configfile", nargs="+", default=["config.yaml"], help="configuration files, merged in order")
    plan.add_argument("--schema", default=None, help="config schema (default: the workflow's)")
    plan.add_argument("--json", action="store_true", help="print the summary as JSON")
    plan.add_argument("--runs", action="store_true", help="also list every run's folder")
    why = sub.add_parser(
        "why", help="say whether results come from today's code and, if not, which modules changed",
        description="For each result folder (a run, a reference row: the folder of a metrics.json), compare the "
        "code that computed it with today's: up to date, or stale with the modules of its code part that "
        "changed since (from the module hashes its run.log records).",
        formatter_class=defaults,
    )
    why.add_argument("results", nargs="+", help="result folders (or their metrics.json)")
    why.add_argument("--json", action="store_true", help="print the explanations as JSON")
    return parser


def _why_command(args: argparse.Namespace) -> int:
    from .codediff import describe, explain

    explanations = [explain(result) for result in args.results]
    print(json.dumps(explanations, indent=2) if args.json else "\n".join(describe(e) for e in explanations))
    return 0


def _plan_command(args: argparse.Namespace) -> int:
    from .plan import make_plan, read_config_files
    from .plan.report import print_plan

    print(print_plan(make_plan(read_config_files(args.configfile), args.schema), args.json, args.runs))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "plan":
            return _plan_command(args)
        if args.command == "why":
            return _why_command(args)
        # every argument is checked before anything is written under --out
        config = _run_config(args) if args.command == "run" else None
        _check_data_args(args)
        gt, obs = _data_paths(args)
        if config is not None:
            record = run_dmf(gt, obs, config, _outputs(args.out, True), {"experiment": "cli"})
        else:
            record = run_min_nuclear_norm(
                gt, obs, _outputs(args.out, False), {"experiment": "cli"}, args.seed, tol=args.tol
            )
    except (ValueError, DataFileError, RuntimeError, FloatingPointError, OSError, KeyError) as exc:
        print(f"dmf: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(record, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
