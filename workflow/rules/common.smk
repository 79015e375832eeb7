"""Helpers shared by the rules: the config's experiments expanded into runs and paths."""

import itertools
import re
from pathlib import Path
from types import SimpleNamespace as Namespace

from dmfcore.convex import NUCLEAR_NORM_TOL
from dmfcore.experiment import TrainConfig
from dmfcore.model import step_flops
from dmfcore.provenance import code_fingerprint
from dmfcore.ratings import MOVIELENS_100K_SHA256, MOVIELENS_100K_URL

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
    "batch": "auto",
    "batch_over": ["init_scale", "lr"],
}
RECORDING_KEYS = ("record_every", "top_k")

# The code of each kind of job (its entry module in dmfcore and all that it imports): every job
# gets its fingerprint as a parameter, so Snakemake reruns exactly the jobs whose code changed
# (dmfcore.provenance); a change to training code reruns neither the data nor the baselines.
CODE = {
    part: code_fingerprint(part)
    for part in ("datasets", "real_data", "experiment", "baselines", "records", "theory", "plots")
}

# Tables, figures and logs of this configuration (config.yaml: "default"; a preset: its own
# name), so that presets never overwrite each other's; data and runs are shared by all.
OUT = f"results/{config.get('name', 'default')}"
NUCLEAR_NORM_TOLERANCE = config.get("nuclear_norm_tol", NUCLEAR_NORM_TOL)
# a param only when set: the baselines made before this setting existed keep their params
NUCLEAR_NORM_SOLVER = (
    {"solver": config["nuclear_norm_solver"]}
    if config.get("nuclear_norm_solver", "auto") != "auto"
    else {}
)

# Path patterns (the rules spell them out in full; these build target lists). A dataset is
# named in paths by its identity: "{d1}x{d2}_rank{rank}" for a synthetic ground truth,
# "{name}_{split}" for a ratings file; the rules never branch on which.
DATA_BASE = "results/data/{dataset}/seed{seed}"
RUN_BASE = "results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}"
DMF_DIR = (
    "results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/dmf_depth{depth}_"
    "{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}"
)
SYNTHETIC_ID = "[0-9]+x[0-9]+_rank[0-9]+"
RATINGS_ID = "[A-Za-z][A-Za-z0-9-]*_(?:file_order|random)"
# Reference rows of real data (no ground truth): constant predictions, scored on the test set.
RATINGS_BASELINES = ["mean_predictor", "zero_predictor"]


wildcard_constraints:
    dataset=f"{SYNTHETIC_ID}|{RATINGS_ID}",
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


def per_key(value, key):
    """A list, or a mapping key -> list, resolved for one rank, dataset or depth (the
    mappings are checked by :func:`lists_per_key` when the config is read)."""
    return value if isinstance(value, list) else value[str(key)]


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
        unused = sorted(set(value) - {str(k) for k in keys})
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
    return [(k, per_key(value, k)) for k in keys]


DATASET_DEFAULTS = {"ratings": None, "download": False, "split": "file_order"}
DATASETS = {
    name: {**DATASET_DEFAULTS, **spec}
    for name, spec in config.get("datasets", {}).items()
}


def ratings_id(name):
    return f"{name}_{DATASETS[name]['split']}"


RATINGS_IDS = {ratings_id(name): name for name in DATASETS}


def ratings_file(name):
    """The ratings file of a dataset (the user's, or the download rule's), or None."""
    spec = DATASETS[name]
    if spec["ratings"]:
        return spec["ratings"]
    return f"results/downloads/{name}/u.data" if spec["download"] else None


def unavailable(name):
    """Why a dataset's data cannot be had (None when it can): its runs are left out, and the
    figures and the log say why instead."""
    spec = DATASETS[name]
    if spec["ratings"] and not Path(spec["ratings"]).is_file():
        return f"datasets.{name}.ratings: {spec['ratings']} not found"
    if ratings_file(name) is None:
        return (
            f"no data: set datasets.{name}.ratings to your copy of u.data, or "
            f"datasets.{name}.download: true to fetch it"
        )
    return None


def dataset_shape(dataset):
    """(d1, d2) of a dataset identity."""
    m = re.fullmatch("([0-9]+)x([0-9]+)_rank([0-9]+)", dataset)
    if m:
        return int(m[1]), int(m[2])
    return tuple(DATASETS[RATINGS_IDS[dataset]]["shape"])


def synthetic_params(wildcards):
    m = re.fullmatch("([0-9]+)x([0-9]+)_rank([0-9]+)", wildcards.dataset)
    return {"d1": int(m[1]), "d2": int(m[2]), "rank": int(m[3])}


def decided_device(device):
    """`auto` is decided here, once, so that run paths, records and the GPU resource say
    what each run uses: cuda where torch sees a GPU on this machine, else cpu. (On a cluster
    say cuda or cpu: the GPUs of the machine that plans the jobs are not the compute nodes'.)
    """
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def experiment_config(name):
    """An experiment with defaults filled in and every cross-field check done (before any job)."""
    exp = {
        **EXPERIMENT_DEFAULTS,
        "ranks": [],
        "datasets": [],
        **config["experiments"][name],
    }
    where = f"experiments.{name}"
    if not exp["ranks"] and not exp["datasets"]:
        raise ValueError(
            f"config: {where}: give ranks (synthetic data) or datasets (or both)"
        )
    keys = exp["ranks"] + exp["datasets"]
    # one device, or one per rank or dataset: stored as the mapping, decided (`auto`) once
    devices = exp["device"]
    if isinstance(devices, dict):
        lists_per_key(
            {k: [v] for k, v in devices.items()},
            keys,
            f"{where}.device",
            "rank or dataset",
        )
    exp["device"] = {
        str(key): decided_device(
            devices[str(key)] if isinstance(devices, dict) else devices
        )
        for key in keys
    }
    if exp["batch"] is True and "cpu" in exp["device"].values():
        raise ValueError(
            f"config: {where}.batch: batched training runs on torch devices; set device: cuda "
            "(or torch-cpu), or batch: auto"
        )
    if exp["ranks"] and "shape" not in exp:
        raise ValueError(f"config: {where}: ranks need a shape [d1, d2]")
    for key in ("ranks", "depths", "seeds", "datasets"):
        check_unique(exp[key], f"{where}.{key}")
    for dataset in exp["datasets"]:
        if dataset not in DATASETS:
            raise ValueError(
                f"config: {where}.datasets: {dataset!r} is not in datasets (has {sorted(DATASETS)})"
            )
        if exp["problem"] != "completion":
            raise ValueError(
                f"config: {where}.datasets: ratings are a completion problem"
            )
    shapes = {rank: tuple(exp["shape"]) for rank in exp["ranks"]}
    shapes.update({ds: tuple(DATASETS[ds]["shape"]) for ds in exp["datasets"]})
    for rank in exp["ranks"]:
        if rank > min(exp["shape"]):
            raise ValueError(
                f"config: {where}.ranks: rank {rank} exceeds min(shape) = {min(exp['shape'])}"
            )
    for key, n_obs in lists_per_key(
        exp["n_obs"], keys, f"{where}.n_obs", "rank or dataset"
    ):
        check_unique(n_obs, f"{where}.n_obs")
        d1, d2 = shapes[key]
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
    smallest = min(min(shape) for shape in shapes.values())
    if exp["top_k"] > smallest:
        raise ValueError(
            f"config: {where}.top_k: {exp['top_k']} exceeds the {smallest} singular values "
            f"of a {'x'.join(map(str, min(shapes.values(), key=min)))} matrix"
        )
    if "figure3" in exp["figures"] and exp["record_every"] == 0:
        raise ValueError(
            f"config: {where}.figures: figure3 draws recorded trajectories, but record_every is 0"
        )
    return exp


EXPERIMENTS = {name: experiment_config(name) for name in config["experiments"]}


def data_blocks(name):
    """The datasets of an experiment that can be had: identity, whether synthetic, rank, n_obs."""
    exp = EXPERIMENTS[name]
    for rank in exp["ranks"]:
        d1, d2 = exp["shape"]
        yield dict(
            dataset=f"{d1}x{d2}_rank{rank}",
            synthetic=True,
            n_obs=per_key(exp["n_obs"], rank),
            device=exp["device"][str(rank)],
        )
    for ds in exp["datasets"]:
        if unavailable(ds) is None:
            yield dict(
                dataset=ratings_id(ds),
                synthetic=False,
                n_obs=per_key(exp["n_obs"], ds),
                device=exp["device"][ds],
            )


def missing_data(name):
    """{dataset: why its runs are missing} of an experiment (for the figures)."""
    why = {ds: unavailable(ds) for ds in EXPERIMENTS[name]["datasets"]}
    return {ds: reason for ds, reason in why.items() if reason is not None}


for _name in EXPERIMENTS:
    for _ds, _why in missing_data(_name).items():
        logger.warning(f"experiment {_name}: dataset {_ds} left out ({_why})")


def dmf_runs(name):
    """Wildcard values of every training run of an experiment."""
    exp = EXPERIMENTS[name]
    for block, depth, seed in itertools.product(
        data_blocks(name), exp["depths"], exp["seeds"]
    ):
        scales = per_key(exp["init_scales"], depth)
        lrs = per_key(exp["lrs"], depth)
        for n, scale, lr in itertools.product(block["n_obs"], scales, lrs):
            yield dict(
                problem=exp["problem"],
                dataset=block["dataset"],
                n_obs=n,
                seed=seed,
                depth=depth,
                init=exp["init"],
                init_scale=number(scale),
                optimizer=exp["optimizer"],
                lr=number(lr),
                loss_threshold=number(exp["loss_threshold"]),
                max_iters=exp["max_iters"],
                device=block["device"],
                dtype=exp["dtype"],
            )


# fp32 matrix products on one CPU core at these sizes (0.3 s for a 18 GFLOP MovieLens step)
CPU_GFLOPS = 60


def warn_of_long_cpu_runs(name):
    """Say, before they start, how long an experiment's real-data runs take on the CPU."""
    exp = EXPERIMENTS[name]
    runs = [
        run
        for run in dmf_runs(name)
        if run["dataset"] in RATINGS_IDS and run["device"] == "cpu"
    ]
    if not runs:
        return
    flops = sum(
        step_flops(dataset_shape(run["dataset"]), run["depth"]) * run["max_iters"]
        for run in runs
    )
    logger.warning(
        f"experiment {name}: {len(runs)} runs on real data on the CPU, up to "
        f"{flops / CPU_GFLOPS / 1e9 / 3600:.0f} CPU-hours at ~{CPU_GFLOPS} GFLOP/s "
        f"({exp['max_iters']} steps each; they stop earlier at the loss threshold). On a GPU "
        f"machine set device: cuda in experiments.{name} (or for the dataset only: "
        f"device: {{<rank>: cpu, <dataset>: cuda}})."
    )


for _name in EXPERIMENTS:
    warn_of_long_cpu_runs(_name)


def observation_sets(name):
    """Every observation set of an experiment, with its reference rows."""
    exp = EXPERIMENTS[name]
    for block, seed in itertools.product(data_blocks(name), exp["seeds"]):
        for n in block["n_obs"]:
            yield dict(
                problem=exp["problem"],
                dataset=block["dataset"],
                n_obs=n,
                seed=seed,
                synthetic=block["synthetic"],
                baselines=(
                    exp["baselines"]
                    if block["synthetic"]
                    else RATINGS_BASELINES
                    + [b for b in exp["baselines"] if b == "nuclear_norm"]
                ),
            )


def data_files(obs):
    """The data files of an observation set (ground truth and observations, or the split)."""
    base = DATA_BASE.format(**obs)
    files = [f"{base}/{obs['problem']}_n{obs['n_obs']}.npz"]
    return files + ([f"{base}/ground_truth.npz"] if obs["synthetic"] else [])


def data_paths(fields):
    """The data of a run or a baseline (a mapping with dataset, seed, problem, n_obs): the
    observations, and the ground truth where there is one."""
    base = DATA_BASE.format(**fields)
    inputs = {"observations": f"{base}/{fields['problem']}_n{fields['n_obs']}.npz"}
    if re.fullmatch(SYNTHETIC_ID, fields["dataset"]):
        inputs["ground_truth"] = f"{base}/ground_truth.npz"
    return inputs


def data_inputs(wildcards):
    return data_paths(dict(wildcards.items()))


def ratings_input(wildcards):
    return ratings_file(RATINGS_IDS[wildcards.dataset])


def ratings_params(wildcards):
    spec = DATASETS[RATINGS_IDS[wildcards.dataset]]
    return {"split": spec["split"], "shape": spec["shape"]}


def download_params(wildcards):
    spec = DATASETS[wildcards.name]
    return {
        "url": spec.get("url", MOVIELENS_100K_URL),
        "sha256": spec.get("sha256", MOVIELENS_100K_SHA256),
    }


def sensing_mem_mb(wildcards):
    """Memory for the m x d1 x d2 measurement matrices of a sensing problem."""
    if wildcards.problem != "sensing":
        return 0
    d1, d2 = dataset_shape(wildcards.dataset)
    return int(wildcards.n_obs) * d1 * d2 * 12 // 2**20


def metrics_files(wildcards):
    """Every one-row metrics record of an experiment: its runs and its reference rows."""
    name = wildcards.experiment
    files = [f"{DMF_DIR.format(**run)}/metrics.json" for run in dmf_runs(name)]
    for obs in observation_sets(name):
        for baseline in obs["baselines"]:
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

# Batched training (dmfcore.batched): runs whose paths differ only in the fields of
# `batch_over` (default: init scale and learning rate) train together in one job. The batch key
# is the rest of the path: with the default, adding a seed, an n_obs value or a depth makes new
# batches and keeps the others, and adding an init scale or a learning rate retrains its batch
# (a job's outputs are all its runs' files). Batching over seeds and n_obs makes larger
# batches (fewer GPU jobs) at the price of retraining a batch when a seed or n_obs joins it;
# batching over depth too puts the runs of every depth on a sensing set in one job, which
# then reads the set once per step for all of them (not once per depth).
BATCHABLE = ("init_scale", "lr", "seed", "n_obs", "depth")


def batched(exp, device):
    """`batch: auto` batches the runs on a CUDA device; true also on torch-cpu (tests)."""
    return device.startswith("cuda") if exp["batch"] == "auto" else exp["batch"]


def batch_plan():
    """Batch key (a run path's fields but those of `batch_over`) -> its runs, in a stable order.
    A run that two experiments would train differently (one batching it, one not, or batching
    over other fields) is refused: where it trains must not depend on which asked first.
    """
    batches, owner = {}, {}
    for name, exp in EXPERIMENTS.items():
        for run in dmf_runs(name):
            how = (
                tuple(sorted(exp["batch_over"]))
                if batched(exp, run["device"])
                else None
            )
            path = DMF_DIR.format(**run)
            if path in owner and owner[path][1] != how:
                raise ValueError(
                    f"config: experiments {owner[path][0]} and {name} share the run {path} but "
                    f"batch it differently ({owner[path][0]}: {owner[path][1] or 'alone'}, {name}: "
                    f"{how or 'alone'}): give both the same batch and batch_over"
                )
            owner[path] = (name, how)
            if how:
                key = tuple((k, v) for k, v in run.items() if k not in how)
                batches.setdefault(key, {})[path] = run

    def order(run):
        return tuple(float(run[k]) for k in BATCHABLE)

    return {
        key: sorted(members.values(), key=order)
        for key, members in sorted(batches.items())
        if len(members) > 1
    }


BATCHES = batch_plan()


def batch_settings(members):
    """The recording of a batch's runs: one for all of them (one recording loop)."""
    settings = {str(RUN_SETTINGS[DMF_DIR.format(**run)]) for run in members}
    if len(settings) > 1:
        raise ValueError(
            f"config: the runs batched with {DMF_DIR.format(**members[0])} are recorded "
            f"differently ({', '.join(sorted(settings))}): give their experiments the same "
            "record_every and top_k, or batch_over fewer fields"
        )
    return RUN_SETTINGS[DMF_DIR.format(**members[0])]


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
        files += data_files(obs)
        if "nuclear_norm" in obs["baselines"]:
            files.append(f"{RUN_BASE.format(**obs)}/nuclear_norm/matrix.npz")
    return files


def theory_files():
    return [
        f"{OUT}/{kind}/theory_{check}{suffix}"
        for check in config.get("theory", [])
        for kind, suffix in (
            ("tables", ".parquet"),
            ("tables", "_points.parquet"),
            ("figures", ".png"),
            ("figures", ".pdf"),
        )
    ]


def all_targets():
    tables = [f"{OUT}/tables/{name}.parquet" for name in EXPERIMENTS] + theory_files()
    runs = sorted({f for name in EXPERIMENTS for f in run_files(name)})
    return tables + figure_files() + runs
