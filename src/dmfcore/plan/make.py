"""The plan of a configuration: every run, observation set, reference row, batch, table and
figure it asks for, and the files that hold them. The workflow's DAG is a view of it
(workflow/rules/common.smk adapts it to rules); ``dmf plan`` prints it without Snakemake.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..runspec import OBSERVATION_SET_DIR, RunSpec
from .config import (
    ConfigError,
    check_schema,
    dataset_sources,
    experiment_config,
    load_schema,
    per_key,
)
from .registry import DATASET_KINDS, PREDICTORS, DatasetKind, DatasetSource, kind_of_dataset

DATA_DIR = "results/data/{dataset}/seed{seed}"
DOWNLOAD_FILE = "results/downloads/{name}/u.data"
# fp32 matrix products on one CPU core at these sizes (0.3 s for a 18 GFLOP MovieLens step)
CPU_GFLOPS = 60
# The minimum nuclear norm by the first-order solver (dmfcore.nuclear_admm, `admm-svt`) on one
# core: 80 minutes for its 20,000-iteration cap at MovieLens 100K's 943 x 1682 (measured), an
# iteration costing about (short side)^2 x (long side) (the Gram matrix of its prox).
ADMM_REFERENCE_SECONDS_PER_ITERATION = 80 * 60 / 20_000
ADMM_REFERENCE_SHAPE = (943, 1682)
# The interior-point method (dmfcore.nuclear_ipm, what `auto` runs there) on one core: 348 s to a
# 3.6e-10 gap at MovieLens 100K (m = 10,000 observations; measured), its Schur complement's
# Cholesky factor (m^3 / 3 flops an iteration) the main cost.
IPM_REFERENCE_SECONDS = 348.0
IPM_REFERENCE_OBS = 10_000
# SLURM time limits (minutes) from an estimate: this many times the estimate, at least the
# short job's limit (a completion run on the CPU takes seconds and goes out in a bundle)
RUNTIME_MARGIN = 1.5
# A step's cost beside its matrix products: the objective's gradient over the d1 x d2 matrix
# (a depth-1 MovieLens step, which has no products: 3.1 ms for 943 x 1682 on one core)
OBJECTIVE_SECONDS_PER_ENTRY = 2e-9
# The recording settings of a run: how its trajectory is kept (not part of its path).
RECORDING_KEYS = ("record_every", "top_k")


def data_paths(fields: Mapping[str, Any]) -> dict[str, str]:
    """The data of a run or a reference row (a mapping with dataset, seed, problem, n_obs): the
    observations, and the ground truth where its dataset's kind has one."""
    base = DATA_DIR.format(**fields)
    inputs = {"observations": f"{base}/{fields['problem']}_n{fields['n_obs']}.npz"}
    if kind_of_dataset(str(fields["dataset"])).ground_truth:
        inputs["ground_truth"] = f"{base}/ground_truth.npz"
    return inputs


def synthetic_params(dataset: str) -> dict[str, int]:
    """d1, d2 and the rank of a synthetic dataset's identity ("{d1}x{d2}_rank{rank}")."""
    m = re.fullmatch("([0-9]+)x([0-9]+)_rank([0-9]+)", dataset)
    if m is None:
        raise ValueError(f"{dataset!r} is not a synthetic dataset's name (d1xd2_rankR)")
    return {"d1": int(m[1]), "d2": int(m[2]), "rank": int(m[3])}


@dataclass(frozen=True)
class DataBlock:
    """The data of an experiment for one rank or configured dataset: its identity in paths,
    its kind, its observation counts and the device its runs train on."""

    dataset: str
    kind: DatasetKind
    n_obs: tuple[int, ...]
    device: str
    source: str | None = None


@dataclass(frozen=True)
class ObservationSet:
    """One observation set (problem, dataset, n_obs, seed) and its reference rows."""

    problem: str
    dataset: str
    n_obs: int
    seed: int
    kind: DatasetKind
    baselines: tuple[str, ...]

    def fields(self) -> dict[str, Any]:
        return {"problem": self.problem, "dataset": self.dataset, "n_obs": self.n_obs, "seed": self.seed}

    @property
    def dir(self) -> str:
        return OBSERVATION_SET_DIR.format(**self.fields())

    def data_paths(self) -> dict[str, str]:
        return data_paths(self.fields())

    def data_files(self) -> list[str]:
        """Its observations file, then the ground truth where there is one."""
        paths = self.data_paths()
        return [paths["observations"]] + ([paths["ground_truth"]] if "ground_truth" in paths else [])

    def nuclear_norm_files(self) -> dict[str, str]:
        """Where its minimum nuclear norm solution goes: matrix, metrics and log."""
        base = f"{self.dir}/nuclear_norm"
        return {"matrix": f"{base}/matrix.npz", "metrics": f"{base}/metrics.json", "log": f"{base}/run.log"}

    def reference_metrics(self) -> list[str]:
        return [f"{self.dir}/{baseline}/metrics.json" for baseline in self.baselines]


@dataclass(frozen=True)
class Batch:
    """Runs trained together in one job (:mod:`dmfcore.batched`), named by a hash of their
    shared settings so that a batch keeps its name whatever else the config lists."""

    name: str
    key: tuple[tuple[str, Any], ...]
    runs: tuple[RunSpec, ...]
    recording: Mapping[str, int]

    @property
    def device(self) -> str:
        return dict(self.key)["device"]

    def inputs(self) -> list[str]:
        return sorted({path for run in self.runs for path in data_paths(run.wildcards()).values()})

    def outputs(self) -> list[str]:
        return [path for run in self.runs for path in run.files()]

    def logs(self) -> list[str]:
        return [f"{run.dir}/run.log" for run in self.runs]

    def members(self) -> list[dict[str, Any]]:
        """Each run's path fields with its data files (the batch job's parameter)."""
        return [{**run.wildcards(), **data_paths(run.wildcards())} for run in self.runs]


def batch_name(key: tuple[tuple[str, Any], ...], rule: str = "train") -> str:
    digest = hashlib.sha256(json.dumps([list(kv) for kv in key]).encode()).hexdigest()
    return f"{rule}_batch_{digest[:10]}"


# the per-set rules whose jobs a SetBatch makes in one: data (observations) and baselines
SET_BATCH_RULES = ("observations", "min_nuclear_norm")


@dataclass(frozen=True)
class SetBatch:
    """The observation sets of one (problem, dataset, seed) whose data (``rule`` =
    ``observations``) or minimum nuclear norm solutions (``min_nuclear_norm``) are made in one
    job, one after another: those of experiments whose runs train in batches over ``n_obs``
    (a phase diagram's grid: dozens of sets that take milliseconds each, where a job of its
    own costs a process start and a pass of Snakemake's scheduler). Each set keeps its files,
    log included, where its own job would write them. Named by a hash of the rule and key."""

    name: str
    rule: str
    sets: tuple[ObservationSet, ...]

    def inputs(self) -> list[str]:
        if self.rule == "observations":
            return sorted({s.data_paths()["ground_truth"] for s in self.sets})
        return sorted({path for s in self.sets for path in s.data_files()})

    def outputs(self) -> list[str]:
        return [path for member in self.members() for path in member["outputs"].values()]

    def logs(self) -> list[str]:
        return [member["log"] for member in self.members()]

    def members(self) -> list[dict[str, Any]]:
        """Each set's path fields, its data files, its outputs and its log (the job's parameter)."""
        out = []
        for s in self.sets:
            paths = s.data_paths()
            if self.rule == "observations":
                outputs = {"observations": paths["observations"]}
                log = paths["observations"].removesuffix(".npz") + ".log"
            else:
                files = s.nuclear_norm_files()
                outputs, log = {k: files[k] for k in ("matrix", "metrics")}, files["log"]
            out.append({**s.fields(), **paths, "outputs": outputs, "log": log})
        return out


def batch_rule(name: str) -> str:
    """A rule's name with a batch's hash suffix removed (``train_batch_0bae1c8473`` ->
    ``train_batch``): what the batch does."""
    return re.sub(r"_batch_[0-9a-f]{10}$", "_batch", name)


class Plan:
    """Everything a configuration asks for (see :func:`make_plan`)."""

    def __init__(self, config: Mapping[str, Any]):
        self.config = config
        self.name: str = config.get("name", "default")
        # tables, figures and logs of this configuration; data and runs are shared by all
        self.out = f"results/{self.name}"
        self.sources: dict[str, DatasetSource] = dataset_sources(config)
        self._check_ratings_files()
        self.experiments: dict[str, dict[str, Any]] = {
            name: experiment_config(name, config, self.sources) for name in config["experiments"]
        }
        self.theory: list[str] = list(config.get("theory", []))
        from ..convex import NUCLEAR_NORM_TOL

        self.nuclear_norm_tol = config.get("nuclear_norm_tol", NUCLEAR_NORM_TOL)
        solver = config.get("nuclear_norm_solver", "auto")
        # a param only when set: baselines made before the setting existed keep their params
        self.nuclear_norm_params = {**({"solver": solver} if solver != "auto" else {}), "tol": self.nuclear_norm_tol}
        self.missing = {name: self._missing_data(name) for name in self.experiments}
        self.blocks = {name: list(self._data_blocks(name)) for name in self.experiments}
        self.runs = {name: list(self._runs(name)) for name in self.experiments}
        self.observation_sets = {name: list(self._observation_sets(name)) for name in self.experiments}
        self.recording = self._run_recording()
        self.batches = self._batches()
        self.batch_of = {run.dir: batch.name for batch in self.batches.values() for run in batch.runs}
        self.set_batches = self._set_batches()
        # (rule, observation set directory) -> the set batch that makes it
        self.set_batch_of = {(b.rule, s.dir): b.name for b in self.set_batches.values() for s in b.sets}
        self.warnings = [
            f"experiment {name}: dataset {ds} left out ({why})"
            for name, missing in self.missing.items()
            for ds, why in missing.items()
        ] + [w for name in self.experiments for w in self._long_cpu_runs(name)]

    # -- datasets ------------------------------------------------------------------------------

    def ratings_file(self, name: str) -> str | None:
        """The ratings file of a configured dataset (the user's, or the download rule's), or None."""
        spec = self.sources[name].spec
        if spec["ratings"]:
            return spec["ratings"]
        return DOWNLOAD_FILE.format(name=name) if spec["download"] else None

    def _check_ratings_files(self) -> None:
        """A ratings file the user set must be there: a mistyped path is an error naming it, not
        a dataset quietly left out (leaving ``ratings`` unset is the way to run without it)."""
        for name, source in self.sources.items():
            path = source.spec.get("ratings")
            if path and not Path(path).is_file():
                raise ConfigError(
                    f"config: datasets.{name}.ratings: {path} not found (relative paths are from the "
                    f"directory the workflow runs in, {Path.cwd()}); fix the path, or set it to null to "
                    f"leave {name} out"
                )

    def unavailable(self, name: str) -> str | None:
        """Why a configured dataset's data cannot be had (None when they can): a ratings file
        left unset (one that is set exists: :meth:`_check_ratings_files`; a fixed matrix is in
        the config itself)."""
        if self.sources[name].kind != "ratings":
            return None
        if self.ratings_file(name) is None:
            return (
                f"no data: set datasets.{name}.ratings to your copy of u.data, or "
                f"datasets.{name}.download: true to fetch it"
            )
        return None

    def source_of(self, dataset: str) -> DatasetSource:
        """The configured dataset whose identity in paths is ``dataset``."""
        for source in self.sources.values():
            if DATASET_KINDS[source.kind].name_of(None, source) == dataset:
                return source
        raise KeyError(f"no configured dataset is named {dataset!r} in paths")

    def dataset_shape(self, dataset: str) -> tuple[int, int]:
        if kind_of_dataset(dataset).name == "synthetic":
            params = synthetic_params(dataset)
            return params["d1"], params["d2"]
        return tuple(self.source_of(dataset).spec["shape"])

    def ratings_params(self, dataset: str) -> dict[str, Any]:
        spec = self.source_of(dataset).spec
        return {"split": spec["split"], "shape": spec["shape"]}

    def fixed_params(self, dataset: str) -> dict[str, Any]:
        spec = self.source_of(dataset).spec
        return {"shape": list(spec["shape"]), "observed": [list(entry) for entry in spec["observed"]]}

    def data_params(self, dataset: str) -> dict[str, Any]:
        """The params of the job that makes a configured dataset's observation sets."""
        source = self.source_of(dataset)
        if source.kind == "fixed":
            return {"fixed": self.fixed_params(dataset)}
        return {"dataset": self.ratings_params(dataset)}

    def download_params(self, name: str) -> dict[str, str]:
        from ..ratings import MOVIELENS_100K_SHA256, MOVIELENS_100K_URL

        spec = self.sources[name].spec
        return {"url": spec.get("url", MOVIELENS_100K_URL), "sha256": spec.get("sha256", MOVIELENS_100K_SHA256)}

    def sensing_mem_mb(self, problem: str, dataset: str, n_obs: int) -> int:
        """Memory for the m x d1 x d2 measurement matrices of a sensing problem."""
        if problem != "sensing":
            return 0
        d1, d2 = self.dataset_shape(dataset)
        return int(n_obs) * d1 * d2 * 12 // 2**20

    def nuclear_norm_mem_mb(self, problem: str, dataset: str, n_obs: int) -> int:
        """min_nuclear_norm's memory: 2 GB, plus the sensing measurement matrices, plus for
        completion the interior-point method's dense m x m Schur complement (about three m x m
        float64 arrays at their peak: 2.3 GB measured at MovieLens 100K's m = 10,000)."""
        from ..convex import IPM_MAX_OBS

        schur = 3 * 8 * int(n_obs) ** 2 // 2**20 if problem == "completion" and int(n_obs) <= IPM_MAX_OBS else 0
        return 2000 + self.sensing_mem_mb(problem, dataset, n_obs) + schur

    def _missing_data(self, name: str) -> dict[str, str]:
        why = {ds: self.unavailable(ds) for ds in self.experiments[name]["datasets"]}
        return {ds: reason for ds, reason in why.items() if reason is not None}

    def _data_blocks(self, name: str):
        exp = self.experiments[name]
        synthetic = DATASET_KINDS["synthetic"]
        for rank in exp["ranks"]:
            yield DataBlock(synthetic.name_of(rank, exp["shape"]), synthetic, tuple(per_key(exp["n_obs"], rank)),
                            exp["device"][str(rank)])
        for ds in exp["datasets"]:
            if ds not in self.missing[name]:
                source = self.sources[ds]
                kind = DATASET_KINDS[source.kind]
                yield DataBlock(kind.name_of(None, source), kind, tuple(per_key(exp["n_obs"], ds)),
                                exp["device"][ds], source=ds)

    # -- runs and observation sets -------------------------------------------------------------

    def _runs(self, name: str):
        exp = self.experiments[name]
        for block, depth, seed in itertools.product(self.blocks[name], exp["depths"], exp["seeds"]):
            scales, lrs = per_key(exp["init_scales"], depth), per_key(exp["lrs"], depth)
            for n, scale, lr in itertools.product(block.n_obs, scales, lrs):
                yield RunSpec.make(
                    problem=exp["problem"], dataset=block.dataset, n_obs=n, seed=seed, depth=depth,
                    init=exp["init"], init_scale=scale, optimizer=exp["optimizer"], lr=lr,
                    loss_threshold=exp["loss_threshold"], max_iters=exp["max_iters"], device=block.device,
                    dtype=exp["dtype"],
                )

    def _observation_sets(self, name: str):
        exp = self.experiments[name]
        for block, seed in itertools.product(self.blocks[name], exp["seeds"]):
            for n in block.n_obs:
                yield ObservationSet(exp["problem"], block.dataset, n, seed, block.kind,
                                     tuple(block.kind.reference_rows(exp["baselines"])))

    def recording_of(self, name: str) -> dict[str, int]:
        return {key: self.experiments[name][key] for key in RECORDING_KEYS}

    def _run_recording(self) -> dict[str, dict[str, int]]:
        """How each run records its trajectory; a run shared by experiments that ask for
        different recordings is refused (one run, one trajectory)."""
        settings: dict[str, dict[str, int]] = {}
        owner: dict[str, str] = {}
        for name in self.experiments:
            for run in self.runs[name]:
                path = run.dir
                if path in settings and settings[path] != self.recording_of(name):
                    raise ConfigError(
                        f"config: experiments {owner[path]} and {name} share the run {path} but "
                        f"record it differently ({owner[path]}: {settings[path]}, {name}: "
                        f"{self.recording_of(name)}): give both the same record_every and top_k"
                    )
                settings[path], owner[path] = self.recording_of(name), name
        return settings

    def training_settings(self, wildcards: Mapping[str, Any]) -> dict[str, int]:
        """The recording of the run a path names (its numbers must be canonical); a run asked
        for by its path alone (in no experiment) gets the defaults."""
        from .config import EXPERIMENT_DEFAULTS

        run = RunSpec.from_wildcards(wildcards)
        return self.recording.get(run.dir, {k: EXPERIMENT_DEFAULTS[k] for k in RECORDING_KEYS})

    # -- batches -------------------------------------------------------------------------------

    def _batches(self) -> dict[str, Batch]:
        """Runs whose paths differ only in the fields of their experiment's ``batch_over``
        train together (`batch: auto`: on CUDA devices; true: on torch-cpu too). A run that two
        experiments would train differently is refused: where it trains must not depend on
        which asked first."""
        from .registry import BATCHABLE

        groups: dict[tuple, dict[str, RunSpec]] = {}
        owner: dict[str, tuple[str, tuple | None]] = {}
        for name, exp in self.experiments.items():
            for run in self.runs[name]:
                on = run.device.startswith("cuda") if exp["batch"] == "auto" else exp["batch"]
                how = tuple(sorted(exp["batch_over"])) if on else None
                path = run.dir
                if path in owner and owner[path][1] != how:
                    raise ConfigError(
                        f"config: experiments {owner[path][0]} and {name} share the run {path} but "
                        f"batch it differently ({owner[path][0]}: {owner[path][1] or 'alone'}, {name}: "
                        f"{how or 'alone'}): give both the same batch and batch_over"
                    )
                owner[path] = (name, how)
                if how:
                    key = tuple((k, v) for k, v in run.wildcards().items() if k not in how)
                    groups.setdefault(key, {})[path] = run

        def order(run: RunSpec) -> tuple:
            fields = run.wildcards()
            return tuple(float(fields[k]) for k in BATCHABLE)

        batches = {}
        for key, members in sorted(groups.items()):
            if len(members) < 2:
                continue
            runs = tuple(sorted(members.values(), key=order))
            recordings = {json.dumps(self.recording[run.dir], sort_keys=True) for run in runs}
            if len(recordings) > 1:
                raise ConfigError(
                    f"config: the runs batched with {runs[0].dir} are recorded differently "
                    f"({', '.join(sorted(recordings))}): give their experiments the same record_every "
                    "and top_k, or batch_over fewer fields"
                )
            name = batch_name(key)
            batches[name] = Batch(name, key, runs, self.recording[runs[0].dir])
        return batches

    def _set_batches(self) -> dict[str, SetBatch]:
        """The synthetic observation sets of the experiments batched over n_obs, grouped by
        (problem, dataset, seed), per rule (their observations; their minimum nuclear norm
        solutions where it is a baseline); groups of one stay single jobs."""
        groups: dict[tuple[str, tuple], dict[str, ObservationSet]] = {}
        for name, exp in self.experiments.items():
            if "n_obs" not in exp["batch_over"]:
                continue
            # the datasets and seeds whose runs train in batches (batch: auto batches cuda runs only)
            batched = {(run.dataset, run.seed) for run in self.runs[name] if run.dir in self.batch_of}
            for obs in self.observation_sets[name]:
                if not obs.kind.ground_truth or (obs.dataset, obs.seed) not in batched:
                    continue
                key = (("problem", obs.problem), ("dataset", obs.dataset), ("seed", obs.seed))
                groups.setdefault(("observations", key), {})[obs.dir] = obs
                if "nuclear_norm" in obs.baselines:
                    groups.setdefault(("min_nuclear_norm", key), {})[obs.dir] = obs
        batches = {}
        for (rule, key), members in sorted(groups.items()):
            if len(members) < 2:
                continue
            name = batch_name(key, rule)
            batches[name] = SetBatch(name, rule, tuple(sorted(members.values(), key=lambda s: s.n_obs)))
        return batches

    def set_batch_mem_mb(self, batch: SetBatch) -> int:
        """A set batch's memory: its largest member's (the sets are made one at a time)."""
        if batch.rule == "observations":
            return max(500 + self.sensing_mem_mb(s.problem, s.dataset, s.n_obs) for s in batch.sets)
        return max(self.nuclear_norm_mem_mb(s.problem, s.dataset, s.n_obs) for s in batch.sets)

    def set_batch_runtime(self, batch: SetBatch) -> int:
        """A set batch's time limit in minutes: its members' limits added up."""
        if batch.rule == "observations":
            return 5 * len(batch.sets)
        return sum(self.nuclear_norm_runtime(s.fields()) for s in batch.sets)

    # -- files ---------------------------------------------------------------------------------

    def metrics_files(self, name: str) -> list[str]:
        """Every one-row metrics record of an experiment: its runs and its reference rows."""
        files = [f"{run.dir}/metrics.json" for run in self.runs[name]]
        return files + [path for obs in self.observation_sets[name] for path in obs.reference_metrics()]

    def trajectory_files(self, name: str) -> list[str]:
        return [f"{run.dir}/trajectory.parquet" for run in self.runs[name]]

    def run_files(self, name: str) -> list[str]:
        """Every file a table of the experiment is built from: data, runs and reference rows.
        They are targets themselves, so that a deleted or lost one is rebuilt (Snakemake looks
        for missing files only among the targets and the jobs that must run anyway)."""
        files = self.metrics_files(name) + self.trajectory_files(name)
        files += [f"{run.dir}/matrix.npz" for run in self.runs[name]]
        for obs in self.observation_sets[name]:
            files += obs.data_files()
            if "nuclear_norm" in obs.baselines:
                files.append(obs.nuclear_norm_files()["matrix"])
        return files

    def table_files(self, name: str) -> dict[str, str]:
        return {"table": f"{self.out}/tables/{name}.parquet",
                "trajectories": f"{self.out}/tables/{name}_trajectories.parquet"}

    def figure_files(self) -> list[str]:
        return [
            f"{self.out}/figures/{name}_{figure}.{ext}"
            for name, exp in self.experiments.items()
            for figure in exp["figures"]
            for ext in ("png", "pdf")
        ]

    def phase_experiments(self) -> list[str]:
        """The experiments with a recovery phase diagram (config: ``phase``)."""
        return [name for name, exp in self.experiments.items() if "phase" in exp]

    def phase_tables(self, name: str) -> dict[str, str]:
        return {"phase": f"{self.out}/tables/{name}_phase.parquet",
                "thresholds": f"{self.out}/tables/{name}_phase_thresholds.parquet"}

    def phase_figures(self, name: str) -> dict[str, str]:
        return {f"{figure}_{ext}": f"{self.out}/figures/{name}_{figure}.{ext}"
                for figure in ("phase", "phase_heatmap") for ext in ("png", "pdf")}

    def phase_params(self, name: str) -> dict[str, Any]:
        return dict(self.experiments[name]["phase"])

    def theory_files(self) -> list[str]:
        return [
            f"{self.out}/{kind}/theory_{check}{suffix}"
            for check in self.theory
            for kind, suffix in (("tables", ".parquet"), ("tables", "_points.parquet"),
                                 ("figures", ".png"), ("figures", ".pdf"))
        ]

    def targets(self) -> list[str]:
        """The default target: every table, figure and theory check, and every file they are
        built from."""
        tables = [f"{self.out}/tables/{name}.parquet" for name in self.experiments] + self.theory_files()
        runs = sorted({f for name in self.experiments for f in self.run_files(name)})
        phase = [path for name in self.phase_experiments()
                 for path in [*self.phase_tables(name).values(), *self.phase_figures(name).values()]]
        return tables + phase + self.figure_files() + runs

    # -- estimates: warnings and time limits -----------------------------------------------------

    def run_seconds(self, run: RunSpec) -> float | None:
        """An upper estimate of a run's time on one CPU core (all its max_iters steps: the
        matrix products at ~CPU_GFLOPS, the objective per entry), None on a GPU."""
        from ..model import step_flops

        if run.device.startswith("cuda"):
            return None
        shape = self.dataset_shape(run.dataset)
        step = step_flops(shape, run.depth) / (CPU_GFLOPS * 1e9) + OBJECTIVE_SECONDS_PER_ENTRY * shape[0] * shape[1]
        return step * run.max_iters

    def nuclear_norm_seconds(self, problem: str, dataset: str, n_obs: int) -> float | None:
        """An upper estimate of a minimum nuclear norm job's time on one core on real data (no
        exact low-rank solution stops a solver early), None where it is quick (synthetic
        low-rank matrices, which the solvers certify in seconds, and SCS's small instances):
        the interior-point method's time (``auto`` on MovieLens-sized matrices, ``ipm``) scaled
        by ``m^3``, or the first-order solver's at its iteration cap."""
        import inspect

        from ..convex import IPM_MAX_OBS, SCS_COMPLETION_MAX_ENTRIES
        from ..nuclear_admm import min_nuclear_norm_admm

        if not kind_of_dataset(dataset).held_out or problem != "completion":
            return None
        d1, d2 = self.dataset_shape(dataset)
        large = d1 * d2 > SCS_COMPLETION_MAX_ENTRIES
        solver = self.nuclear_norm_params.get("solver", "auto")
        if solver == "cvxpy-scs" or (solver == "auto" and not large):
            return None
        m = int(n_obs)
        if solver == "ipm" or (solver == "auto" and m <= IPM_MAX_OBS):
            return IPM_REFERENCE_SECONDS * max(m / IPM_REFERENCE_OBS, 0.1) ** 3
        iterations = inspect.signature(min_nuclear_norm_admm).parameters["max_iters"].default
        short, long = sorted((d1, d2))
        ref_short, ref_long = ADMM_REFERENCE_SHAPE
        return iterations * ADMM_REFERENCE_SECONDS_PER_ITERATION * (short**2 * long) / (ref_short**2 * ref_long)

    @staticmethod
    def _limit(base: int, seconds: float | None) -> int:
        import math

        return base if seconds is None else max(base, math.ceil(RUNTIME_MARGIN * seconds / 60))

    def train_runtime(self, wildcards: Mapping[str, Any]) -> int:
        """train_dmf's time limit in minutes (the SLURM profile's ``runtime``): 5 for a
        completion run on the CPU, 60 for sensing and GPU runs (measured at d = 100: they stop
        at the loss threshold long before max_iters), and on real data, which no run fits to the
        threshold, the estimate (:meth:`run_seconds`): MovieLens on the CPU takes hours."""
        run = RunSpec.from_wildcards(wildcards)
        base = 5 if run.problem == "completion" and not run.device.startswith("cuda") else 60
        real = not kind_of_dataset(run.dataset).ground_truth
        return self._limit(base, self.run_seconds(run) if real else None)

    def bundled(self, wildcards: Mapping[str, Any]) -> bool:
        """Whether a train_dmf job goes out in a SLURM bundle: completion runs on the CPU that
        take seconds (not sensing or GPU runs, nor runs estimated at more than 5 minutes)."""
        run = RunSpec.from_wildcards(wildcards)
        return (run.problem == "completion" and run.device in ("cpu", "torch-cpu")
                and self.train_runtime(wildcards) <= 5)

    def nuclear_norm_runtime(self, wildcards: Mapping[str, Any]) -> int:
        """min_nuclear_norm's time limit in minutes: 5 for completion, 30 for sensing, more
        where the estimate (:meth:`nuclear_norm_seconds`) says so."""
        base = 5 if wildcards["problem"] == "completion" else 30
        return self._limit(
            base, self.nuclear_norm_seconds(wildcards["problem"], wildcards["dataset"], wildcards["n_obs"])
        )

    def _long_cpu_runs(self, name: str) -> list[str]:
        """How long an experiment's real-data jobs on the CPU take (its runs on the CPU, and its
        minimum nuclear norm solutions, which run on the CPU wherever the runs do), said before
        they start."""
        exp = self.experiments[name]
        runs = [run for run in self.runs[name]
                if kind_of_dataset(run.dataset).held_out and self.run_seconds(run) is not None]
        baselines = [s for obs in self.observation_sets[name] if "nuclear_norm" in obs.baselines
                     if (s := self.nuclear_norm_seconds(obs.problem, obs.dataset, obs.n_obs)) is not None]
        if not runs and not baselines:
            return []
        seconds = sum(self.run_seconds(run) for run in runs) + sum(baselines)
        parts = []
        if runs:
            parts.append(
                f"{len(runs)} runs on real data on the CPU at ~{CPU_GFLOPS} GFLOP/s ({exp['max_iters']} steps "
                "each unless a run reaches the loss threshold first; on MovieLens none does)"
            )
        if baselines:
            parts.append(
                f"{len(baselines)} minimum nuclear norm solution{'s' if len(baselines) > 1 else ''} on real data "
                f"(always on the CPU: about {max(baselines) / 60:.0f} minutes each)"
            )
        hint = (f" On a GPU machine set device: cuda in experiments.{name} (or for the dataset only: "
                f"device: {{<rank>: cpu, <dataset>: cuda}}).") if runs else ""
        return [f"experiment {name}: up to {seconds / 3600:.0f} CPU-hours: {' and '.join(parts)}.{hint}"]

    # -- jobs ----------------------------------------------------------------------------------

    def jobs(self) -> list[dict[str, Any]]:
        """Every job of the default target as (rule, outputs, params): what Snakemake's DAG of
        this plan holds (tests/golden/ holds the two equal), sorted by rule and outputs."""
        jobs: dict[str, dict[str, Any]] = {}

        def add(rule: str, outputs: list[str], params: dict[str, Any] | None = None) -> None:
            outputs = sorted(outputs)
            jobs.setdefault(outputs[0], {"rule": rule, "output": outputs, "params": params or {}})

        for name, exp in self.experiments.items():
            for obs in self.observation_sets[name]:
                paths = obs.data_paths()
                if obs.kind.ground_truth:
                    add("ground_truth", [paths["ground_truth"]], {"synthetic": synthetic_params(obs.dataset)})
                    if ("observations", obs.dir) not in self.set_batch_of:
                        add(obs.kind.data_rule, [paths["observations"]])
                else:
                    add(obs.kind.data_rule, [paths["observations"]], self.data_params(obs.dataset))
                    source = self.source_of(obs.dataset)
                    if source.kind == "ratings" and not source.spec["ratings"]:
                        add("download_ratings", [DOWNLOAD_FILE.format(name=source.name)],
                            {"source": self.download_params(source.name)})
                for baseline in obs.baselines:
                    base = f"{obs.dir}/{baseline}"
                    if baseline == "nuclear_norm":
                        if ("min_nuclear_norm", obs.dir) not in self.set_batch_of:
                            files = obs.nuclear_norm_files()
                            add("min_nuclear_norm", [files["matrix"], files["metrics"]],
                                dict(self.nuclear_norm_params))
                    elif baseline == "ground_truth":
                        add("ground_truth_row", [f"{base}/metrics.json"])
                    elif baseline in PREDICTORS:
                        add("predictor_row", [f"{base}/metrics.json"])
            for run in self.runs[name]:
                if run.dir not in self.batch_of:
                    add("train_dmf", run.files(), {"settings": self.recording[run.dir]})
            add("aggregate", list(self.table_files(name).values()), {"recording": self.recording_of(name)})
            for figure in exp["figures"]:
                add("figure", [f"{self.out}/figures/{name}_{figure}.{ext}" for ext in ("png", "pdf")],
                    {"missing": self.missing[name]})
            if "phase" in exp:
                add("phase_tables", list(self.phase_tables(name).values()), {"phase": self.phase_params(name)})
                add("phase_figure", list(self.phase_figures(name).values()))
        for batch in self.batches.values():
            add(batch.name, batch.outputs(), {"members": batch.members(), "settings": dict(batch.recording)})
        for set_batch in self.set_batches.values():
            params = {} if set_batch.rule == "observations" else dict(self.nuclear_norm_params)
            add(set_batch.name, set_batch.outputs(), {"members": set_batch.members(), **params})
        for check in self.theory:
            add("theory_check", [f"{self.out}/tables/theory_{check}.parquet",
                                 f"{self.out}/tables/theory_{check}_points.parquet"])
            add("theory_figure", [f"{self.out}/figures/theory_{check}.{ext}" for ext in ("png", "pdf")])
        return sorted(jobs.values(), key=lambda j: (j["rule"], j["output"]))

    def job_counts(self) -> dict[str, int]:
        """Jobs per rule (batches counted together: ``train_batch``, ``observations_batch``,
        ``min_nuclear_norm_batch``)."""
        counts = Counter(batch_rule(j["rule"]) for j in self.jobs())
        return dict(sorted(counts.items()))


def make_plan(config: Mapping[str, Any], schema: Mapping[str, Any] | str | Path | None = None) -> Plan:
    """Check a configuration (the schema, then every cross-field check) and plan it.

    ``schema`` is the schema itself or its file (default: the workflow's). Raises
    :class:`~dmfcore.plan.config.ConfigError` naming the bad key.
    """
    if not isinstance(schema, Mapping):
        schema = load_schema(schema) if schema is not None else load_schema()
    check_schema(config, schema)
    return Plan(config)
