"""Helpers shared by the rules: the config's experiments expanded into runs and paths."""

import itertools

EXPERIMENT_DEFAULTS = {
    "init": "gaussian",
    "init_scales": [0.001],
    "lrs": [0.001],
    "optimizer": "group_rmsprop",
    "loss_threshold": 1.0e-6,
    "max_iters": 1000000,
    "record_every": 1000,
    "top_k": 10,
    "device": "cpu",
    "dtype": "float32",
    "baselines": ["nuclear_norm", "ground_truth"],
    "figures": [],
}

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
    """Canonical text of a number in a path: 0.001 -> '0.001', 1e-06 -> '1e-06'."""
    return format(float(x), "g")


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


def experiment_config(name):
    """An experiment with defaults filled in and cross-field checks done."""
    exp = {**EXPERIMENT_DEFAULTS, **config["experiments"][name]}
    d1, d2 = exp["shape"]
    for rank in exp["ranks"]:
        if rank > min(d1, d2):
            raise ValueError(
                f"config: experiments.{name}.ranks: rank {rank} exceeds min(shape) = {min(d1, d2)}"
            )
        for n in per_key(exp["n_obs"], rank, "n_obs", name):
            if exp["problem"] == "completion" and n > d1 * d2:
                raise ValueError(
                    f"config: experiments.{name}.n_obs: {n} exceeds the {d1 * d2} entries of a "
                    f"{d1}x{d2} matrix"
                )
    for depth in exp["depths"]:
        per_key(exp["init_scales"], depth, "init_scales", name)
        per_key(exp["lrs"], depth, "lrs", name)
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


# Settings of a run that are not in its path (they do not change its numbers). A run
# shared by two experiments takes the settings of the last one listed.
RUN_SETTINGS = {
    DMF_DIR.format(**run): {"record_every": exp["record_every"], "top_k": exp["top_k"]}
    for name, exp in EXPERIMENTS.items()
    for run in dmf_runs(name)
}


def training_settings(wildcards):
    # a run asked for by its path alone (not in any experiment) gets the defaults
    default = {k: EXPERIMENT_DEFAULTS[k] for k in ("record_every", "top_k")}
    return RUN_SETTINGS.get(DMF_DIR.format(**dict(wildcards.items())), default)


def figure_files():
    return [
        f"results/figures/{name}_{figure}.{ext}"
        for name, exp in EXPERIMENTS.items()
        for figure in exp["figures"]
        for ext in ("png", "pdf")
    ]


def all_targets():
    tables = [f"results/tables/{name}.parquet" for name in EXPERIMENTS]
    return tables + figure_files()
