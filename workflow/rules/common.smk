"""Helpers shared by the rules: the config's experiments expanded into runs and paths."""

import itertools
from types import SimpleNamespace as Namespace

from dmfcore.convex import NUCLEAR_NORM_TOL
from dmfcore.experiment import TrainConfig
from dmfcore.provenance import code_fingerprint

# A run's defaults are the library's (dmfcore.experiment.TrainConfig): one place for them.
EXPERIMENT_DEFAULTS = {
    "init": TrainConfig.init,
    "init_scales": [TrainConfig.init_scale],
    "lrs": [TrainConfig.lr],
    "optimizer": TrainConfig.optimizer,
    "loss_threshold": TrainConfig.loss_threshold,
    "max_iters": TrainConfig.max_iters,
    "record_every": TrainConfig.record_every,
    "top_k": TrainConfig.top_k,
    "device": TrainConfig.device,
    "dtype": TrainConfig.dtype,
    "baselines": ["nuclear_norm", "ground_truth"],
    "figures": [],
}
RECORDING_KEYS = ("record_every", "top_k")

# The code that computes results, and the plotting code: every job gets its fingerprint as a
# parameter, so Snakemake reruns exactly the jobs whose code changed (dmfcore.provenance).
CODE = code_fingerprint()
PLOTS_CODE = code_fingerprint("plots")

# Tables, figures and logs of this configuration (config.yaml: "default"; a preset: its own
# name), so that presets never overwrite each other's; data and runs are shared by all.
OUT = f"results/{config.get('name', 'default')}"
NUCLEAR_NORM_TOLERANCE = config.get("nuclear_norm_tol", NUCLEAR_NORM_TOL)

# Path patterns (the rules spell them out in full; these build target lists).
RUN_BASE = "results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}"
DMF_DIR = (
    "results/runs/{problem}/{d1}x{d2}_rank{rank}/n{n_obs}/seed{seed}/dmf_depth{depth}_"
    "{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}"
)


wildcard_constraints:
    d1="[0-9]+",
    d2="[0-9]+",
    rank="[0-9]+",
    seed="[0-9]+",
    n_obs="[0-9]+",
    depth="[0-9]+",
    max_iters="[0-9]+",
    problem="completion|sensing",
    init="gaussian|identity|orthogonal|balanced",
    optimizer="gd|group_rmsprop",
    init_scale="[0-9.e+-]+",
    lr="[0-9.e+-]+",
    loss_threshold="[0-9.e+-]+",
    device="cpu|auto|torch-cpu|cuda(:[0-9]+)?",
    dtype="float32|float64",
    experiment="[A-Za-z][A-Za-z0-9_-]*",
    figure="figure1|figure2|figure3",


def number(x):
    """Canonical text of a number in a path: the shortest text that reads back as the same
    float64 (0.001 -> '0.001', 1e-06 -> '1e-06', 0.0012345678 -> '0.0012345678')."""
    return repr(float(x))


def check_canonical(wildcards):
    """A run requested by its path must spell its numbers canonically (one run, one path)."""
    for key in ("init_scale", "lr", "loss_threshold"):
        text = wildcards[key]
        if number(text) != text:
            raise ValueError(
                f"run path has {key} '{text}': write it as '{number(text)}' (numbers in paths are "
                "canonical, so that one run has one path)"
            )


def per_key(value, key, what, experiment):
    """A list, or a mapping key -> list, resolved for one rank or depth."""
    if isinstance(value, list):
        return value
    if str(key) not in value:
        raise ValueError(
            f"config: experiments.{experiment}.{what} has no entry for {key} "
            f"(has {sorted(value)})"
        )
    return value[str(key)]


def check_unique(values, what, as_text=str):
    """Reject a value listed twice (after canonicalisation: 0.001 and 1.0e-3 are one value)."""
    seen = {}
    for v in values:
        key = as_text(v)
        if key in seen:
            raise ValueError(
                f"config: {what}: {v!r} is listed twice (as {seen[key]!r} and {v!r}); "
                "a run would be counted twice in the tables"
            )
        seen[key] = v


def lists_per_key(value, keys, what, by):
    """(key, list) for each rank or depth; a mapping must have an entry for each key, and no
    entry for a key the experiment does not have (a typo would silently be ignored)."""
    if isinstance(value, dict):
        unused = sorted(set(value) - {str(k) for k in keys}, key=int)
        if unused:
            raise ValueError(
                f"config: {what} has entries for {by} {', '.join(unused)}, which the experiment "
                f"does not have (its {by}s: {list(keys)})"
            )
        missing = [k for k in keys if str(k) not in value]
        if missing:
            raise ValueError(
                f"config: {what} has no entry for {by} {missing[0]} (has {sorted(value)})"
            )
    return [(k, value if isinstance(value, list) else value[str(k)]) for k in keys]


def experiment_config(name):
    """An experiment with defaults filled in and every cross-field check done (before any job)."""
    exp = {**EXPERIMENT_DEFAULTS, **config["experiments"][name]}
    where = f"experiments.{name}"
    d1, d2 = exp["shape"]
    for key in ("ranks", "depths", "seeds"):
        check_unique(exp[key], f"{where}.{key}")
    for rank in exp["ranks"]:
        if rank > min(d1, d2):
            raise ValueError(
                f"config: {where}.ranks: rank {rank} exceeds min(shape) = {min(d1, d2)}"
            )
    for rank, n_obs in lists_per_key(
        exp["n_obs"], exp["ranks"], f"{where}.n_obs", "rank"
    ):
        check_unique(n_obs, f"{where}.n_obs")
        for n in n_obs:
            if n > d1 * d2:
                what = "entries" if exp["problem"] == "completion" else "measurements"
                raise ValueError(
                    f"config: {where}.n_obs: {n} {what} exceed the {d1 * d2} entries of a "
                    f"{d1}x{d2} matrix"
                )
    for key in ("init_scales", "lrs"):
        for _, values in lists_per_key(
            exp[key], exp["depths"], f"{where}.{key}", "depth"
        ):
            check_unique(values, f"{where}.{key}", number)
    if exp["top_k"] > min(d1, d2):
        raise ValueError(
            f"config: {where}.top_k: {exp['top_k']} exceeds the {min(d1, d2)} singular values "
            f"of a {d1}x{d2} matrix"
        )
    if "figure3" in exp["figures"] and exp["record_every"] == 0:
        raise ValueError(
            f"config: {where}.figures: figure3 draws recorded trajectories, but record_every is 0"
        )
    return exp


EXPERIMENTS = {name: experiment_config(name) for name in config["experiments"]}


def dmf_runs(name):
    """Wildcard values of every training run of an experiment."""
    exp = EXPERIMENTS[name]
    d1, d2 = exp["shape"]
    for rank, depth, seed in itertools.product(
        exp["ranks"], exp["depths"], exp["seeds"]
    ):
        scales = per_key(exp["init_scales"], depth, "init_scales", name)
        lrs = per_key(exp["lrs"], depth, "lrs", name)
        n_obs = per_key(exp["n_obs"], rank, "n_obs", name)
        for n, scale, lr in itertools.product(n_obs, scales, lrs):
            yield dict(
                problem=exp["problem"],
                d1=d1,
                d2=d2,
                rank=rank,
                n_obs=n,
                seed=seed,
                depth=depth,
                init=exp["init"],
                init_scale=number(scale),
                optimizer=exp["optimizer"],
                lr=number(lr),
                loss_threshold=number(exp["loss_threshold"]),
                max_iters=exp["max_iters"],
                device=exp["device"],
                dtype=exp["dtype"],
            )


def observation_sets(name):
    """Wildcard values of every (ground truth, observation set) of an experiment."""
    exp = EXPERIMENTS[name]
    d1, d2 = exp["shape"]
    for rank, seed in itertools.product(exp["ranks"], exp["seeds"]):
        for n in per_key(exp["n_obs"], rank, "n_obs", name):
            yield dict(
                problem=exp["problem"], d1=d1, d2=d2, rank=rank, n_obs=n, seed=seed
            )


def metrics_files(wildcards):
    """Every one-row metrics record of an experiment: its runs and its reference rows."""
    name = wildcards.experiment
    files = [f"{DMF_DIR.format(**run)}/metrics.json" for run in dmf_runs(name)]
    for obs in observation_sets(name):
        for baseline in EXPERIMENTS[name]["baselines"]:
            files.append(f"{RUN_BASE.format(**obs)}/{baseline}/metrics.json")
    return files


def trajectory_files(wildcards):
    """The recorded training dynamics of every run of an experiment."""
    return [
        f"{DMF_DIR.format(**run)}/trajectory.parquet"
        for run in dmf_runs(wildcards.experiment)
    ]


def recording(name):
    return {key: EXPERIMENTS[name][key] for key in RECORDING_KEYS}


def run_recording_settings():
    """How each run records its trajectory; a run shared by experiments that ask for different
    recordings is rejected (one run, one trajectory)."""
    settings, owner = {}, {}
    for name in EXPERIMENTS:
        for run in dmf_runs(name):
            path = DMF_DIR.format(**run)
            if path in settings and settings[path] != recording(name):
                raise ValueError(
                    f"config: experiments {owner[path]} and {name} share the run {path} but "
                    f"record it differently ({owner[path]}: {settings[path]}, {name}: "
                    f"{recording(name)}): give both the same record_every and top_k"
                )
            settings[path], owner[path] = recording(name), name
    return settings


RUN_SETTINGS = run_recording_settings()


def training_settings(wildcards):
    check_canonical(wildcards)
    # a run asked for by its path alone (not in any experiment) gets the defaults
    default = {k: EXPERIMENT_DEFAULTS[k] for k in RECORDING_KEYS}
    return RUN_SETTINGS.get(DMF_DIR.format(**dict(wildcards.items())), default)


def figure_files():
    return [
        f"{OUT}/figures/{name}_{figure}.{ext}"
        for name, exp in EXPERIMENTS.items()
        for figure in exp["figures"]
        for ext in ("png", "pdf")
    ]


def run_files(name):
    """Every file a table of the experiment is built from: data, runs and reference rows.

    They are targets themselves, so that a deleted or lost one is rebuilt (Snakemake looks
    for missing files only among the targets and the jobs that must run anyway).
    """
    files = metrics_files(Namespace(experiment=name)) + trajectory_files(
        Namespace(experiment=name)
    )
    files += [f"{DMF_DIR.format(**run)}/matrix.npz" for run in dmf_runs(name)]
    for obs in observation_sets(name):
        base = "results/data/{d1}x{d2}_rank{rank}/seed{seed}".format(**obs)
        files += [
            f"{base}/ground_truth.npz",
            f"{base}/{obs['problem']}_n{obs['n_obs']}.npz",
        ]
        if "nuclear_norm" in EXPERIMENTS[name]["baselines"]:
            files.append(f"{RUN_BASE.format(**obs)}/nuclear_norm/matrix.npz")
    return files


def all_targets():
    tables = [f"{OUT}/tables/{name}.parquet" for name in EXPERIMENTS]
    runs = sorted({f for name in EXPERIMENTS for f in run_files(name)})
    return tables + figure_files() + runs
