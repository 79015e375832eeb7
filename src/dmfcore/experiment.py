"""One experiment step from files to files: the code path shared by the CLI and the workflow.

- :func:`generate_ground_truth`, :func:`generate_observations`: data files (see :mod:`dmfcore.io`);
- :func:`run_dmf`: train one deep factorization and write its matrix, one-row metrics
  record (JSON), trajectory (Parquet, when recording) and log;
- :func:`run_min_nuclear_norm`, :func:`ground_truth_record`: the reference rows.

Seeds: seed ``s`` of an experiment draws the ground truth from ``s``, the observations
from ``(s, n_obs)`` and the initialization from ``(s, depth, 1)`` (:func:`stream_seed`); every
depth and the baseline of seed ``s`` therefore share the ground truth and the observation set
(paired), and no two streams coincide.

Every record carries ``code_fingerprint`` and ``code_commit`` (:mod:`dmfcore.provenance`).
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import logging
import os
import platform
import time
import traceback
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import __version__
from .backend import resolve_backend
from .convex import NUCLEAR_NORM_TOL, min_nuclear_norm
from .io import (
    load_ground_truth,
    load_observations,
    load_test_observations,
    observation_metadata,
    DataFileError,
    file_sha256,
    save_ground_truth,
    save_matrix,
    save_observations,
    write_json,
    write_parquet,
    write_text,
)
from .metrics import held_out_error, summary
from .model import INITS, init_factors
from .optimizers import make_optimizer
from .problems import (
    PROBLEMS,
    CompletionObservations,
    low_rank_ground_truth,
    make_objective,
    max_constraint_residual,
    observed_targets,
    observed_values,
    sample_completion,
    sample_sensing,
)
from .provenance import StaleResultError, code_commit, code_fingerprint
from .ratings import baseline_test_errors, read_ratings, split_ratings
from .training import Checkpointing, TrainResult, train

# Random streams of a seed s, as numpy SeedSequence entropy. numpy pads entropy with zeros,
# so (s, k) and (s, k, 0) are one stream: each stream ends with its own tag, except the
# observations' (s, n_obs), kept as it was so that existing data files stay valid. The ground
# truth's stream is s itself, i.e. (s, 0): no stream has key 0 (n_obs, depth, n_train >= 1).
STREAM_TAGS = {"observations": 0, "init": 1, "split": 2}

# Long runs save their state every this many updates (dmfcore.training.Checkpointing).
CHECKPOINT_EVERY = 10_000


def stream_seed(seed: int, stream: str, key: int) -> tuple[int, ...]:
    """The seed of random stream ``stream`` (see :data:`STREAM_TAGS`) for ``key`` (n_obs, depth...)."""
    tag = STREAM_TAGS[stream]
    return (seed, key) if tag == 0 else (seed, key, tag)


def provenance() -> dict[str, Any]:
    """The columns that say which code computed a record."""
    return {"code_fingerprint": code_fingerprint(), "code_commit": code_commit(), "dmfcore_version": __version__}


def generate_ground_truth(path: str | os.PathLike, d1: int, d2: int, rank: int, seed: int, symmetric: bool = False) -> None:
    save_ground_truth(path, low_rank_ground_truth(d1, d2, rank, seed, symmetric), rank, seed, symmetric)


def generate_observations(
    ground_truth_path: str | os.PathLike, path: str | os.PathLike, problem: str, n_obs: int, seed: int
) -> None:
    w_star = load_ground_truth(ground_truth_path)
    if problem == "completion":
        obs = sample_completion(w_star, n_obs, seed=stream_seed(seed, "observations", n_obs))
    elif problem == "sensing":
        obs = sample_sensing(w_star, n_obs, seed=stream_seed(seed, "observations", n_obs))
    else:
        raise ValueError(f"problem must be one of {PROBLEMS}, got {problem!r}")
    save_observations(path, obs, seed)


def generate_ratings_split(
    ratings_path: str | os.PathLike,
    path: str | os.PathLike,
    n_train: int,
    split: str,
    seed: int,
    shape: tuple[int, int] | None = None,
    dataset: str | None = None,
) -> None:
    """Split a ratings file (:mod:`dmfcore.ratings`) into a training set of ``n_train``
    ratings and a held-out test set (the rest), stored as one observation set.

    ``split="random"`` draws the training set from seed ``(seed, n_train, 2)``;
    ``"file_order"`` takes the first ``n_train`` ratings (the paper's split of its copy).
    """
    ratings = read_ratings(ratings_path, shape)
    train_set, test_set = split_ratings(ratings, n_train, split, stream_seed(seed, "split", n_train))
    digest = file_sha256(ratings_path)
    dataset = dataset or f"{Path(ratings_path).parent.name}_{split}"
    save_observations(path, train_set, seed, test=test_set, dataset=dataset, source_sha256=digest)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run besides its data.

    The defaults here are the project's only defaults for a run: the command line and the
    workflow take theirs from this class.
    """

    depth: int
    init: str = "gaussian"
    init_scale: float = 1e-3
    lr: float = 1e-3
    optimizer: str = "group_rmsprop"
    seed: int = 0
    max_iters: int = 1_000_000
    loss_threshold: float = 1e-6
    record_every: int = 1000
    top_k: int = 10
    width: int | None = None
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.max_iters < 0 or self.loss_threshold < 0 or self.record_every < 0:
            raise ValueError("max_iters, loss_threshold and record_every must be >= 0")


def run_train_config(fields: dict[str, Any], recording: dict[str, int]) -> TrainConfig:
    """The :class:`TrainConfig` of a run named by the fields of its workflow path (text or
    numbers: depth, init, init_scale, optimizer, lr, seed, max_iters, loss_threshold, device,
    dtype; other fields are ignored) and its ``record_every`` and ``top_k``."""
    return TrainConfig(
        depth=int(fields["depth"]),
        init=fields["init"],
        init_scale=float(fields["init_scale"]),
        lr=float(fields["lr"]),
        optimizer=fields["optimizer"],
        seed=int(fields["seed"]),
        max_iters=int(fields["max_iters"]),
        loss_threshold=float(fields["loss_threshold"]),
        record_every=recording["record_every"],
        top_k=recording["top_k"],
        device=fields["device"],
        dtype=fields["dtype"],
    )


@dataclass(frozen=True)
class RunOutputs:
    """Where a run writes; ``trajectory`` is only written when recording."""

    matrix: str | os.PathLike
    metrics: str | os.PathLike
    log: str | os.PathLike
    trajectory: str | os.PathLike | None = None


def _data_labels(obs: Any, observations_path: Any, gt_path: Any = None) -> dict[str, Any]:
    """Which data a record is about: the dataset's identity (as in the workflow's paths), its
    shape, the ground truth's rank (synthetic data) and the number of observations."""
    d1, d2 = obs.shape
    rank = None
    if gt_path is not None:
        with np.load(gt_path) as npz:
            rank = int(npz["rank"]) if "rank" in npz.files else int(np.linalg.matrix_rank(npz["W"]))
    dataset = observation_metadata(observations_path).get("dataset", f"{d1}x{d2}_rank{rank}")
    return {
        "problem": "completion" if isinstance(obs, CompletionObservations) else "sensing",
        "dataset": dataset,
        "d1": int(d1),
        "d2": int(d2),
        "rank": rank,
        "n_obs": obs.m,
    }


def load_data(
    ground_truth_path: str | os.PathLike | None, observations_path: str | os.PathLike
) -> tuple[np.ndarray | None, Any, CompletionObservations | None]:
    """(ground truth or None, observations, held-out test set or None); real data have a test
    set and no ground truth, synthetic data a ground truth."""
    w_star = load_ground_truth(ground_truth_path) if ground_truth_path is not None else None
    obs = load_observations(observations_path, shape=None if w_star is None else w_star.shape)
    test = load_test_observations(observations_path)
    if w_star is None and test is None:
        raise DataFileError(
            f"{observations_path}: no held-out test set and no ground truth given: nothing to evaluate on"
        )
    return w_star, obs, test


def _test_error_on(test: CompletionObservations, backend: Any) -> Any:
    """``W -> {"test_error": mean squared error on the held-out entries}`` on a backend."""
    index = backend.index_array(test.rows * test.shape[1] + test.cols)
    values = backend.asarray(test.values)

    def evaluate(w: Any) -> dict[str, float]:
        r = w.reshape(-1)[index] - values
        return {"test_error": float(r @ r) / test.m}

    return evaluate


def evaluation(w: np.ndarray, w_star: np.ndarray | None, test: CompletionObservations | None) -> dict[str, Any]:
    """The metrics of a final matrix: spectral ones, and the reconstruction or test error."""
    return {**summary(w, w_star), **({"test_error": held_out_error(w, test)} if test is not None else {})}


def _logger(buffer: _io.StringIO) -> logging.Logger:
    log = logging.getLogger(f"dmfcore.run.{id(buffer)}")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    log.handlers[:] = [handler]
    return log


def _run_log(ground_truth_path: Any, observations_path: Any, config: TrainConfig) -> tuple[logging.Logger, _io.StringIO]:
    """A run's log (kept in memory, written with its outputs), opened with what the run is."""
    buffer = _io.StringIO()
    log = _logger(buffer)
    log.info("dmfcore %s, python %s, %s", __version__, platform.python_version(), platform.machine())
    log.info("data: %s, %s", ground_truth_path, observations_path)
    log.info("config: %s", json.dumps(asdict(config), sort_keys=True))
    return log, buffer


def _write_run(result: TrainResult, config: TrainConfig, device: str, outputs: RunOutputs, log: logging.Logger,
               buffer: _io.StringIO, obs: Any, w_star: np.ndarray | None, test: CompletionObservations | None,
               labels: dict[str, Any], batch_size: int = 1) -> dict[str, Any]:
    """A trained run's record, matrix, trajectory and log (the same files alone or in a batch)."""
    record = {
        **labels,
        "method": "dmf",
        "depth": config.depth,
        "init": config.init,
        "init_scale": config.init_scale,
        "lr": config.lr,
        "optimizer": config.optimizer,
        "seed": config.seed,
        "iterations": result.iterations,
        "converged": result.converged,
        "train_loss": result.train_loss,
        **evaluation(result.w, w_star, test),
        # the paper reports the best test error seen during training
        **({"min_test_error": min(result.trajectory["test_error"])} if "test_error" in result.trajectory else {}),
        "wall_seconds": result.wall_seconds,
        "flow_time": result.flow_time,
        "device": device,
        "dtype": config.dtype,
        "batch_size": batch_size,
        "max_residual": max_constraint_residual(result.w, obs),
        "loss_threshold": config.loss_threshold,
        "max_iters": config.max_iters,
        "record_every": config.record_every,
        "top_k": config.top_k,
        **provenance(),
    }
    error = "recon error" if w_star is not None else "test error"
    log.info(
        "done: %d iterations, converged=%s, train loss %.3e, %s %.3e, %.2f s (%.1f us/iter)%s",
        result.iterations, result.converged, result.train_loss, error,
        record["recon_error" if w_star is not None else "test_error"],
        result.wall_seconds, 1e6 * result.wall_seconds / max(result.iterations, 1),
        f" for a batch of {batch_size} runs" if batch_size > 1 else "",
    )
    save_matrix(outputs.matrix, result.w, iterations=result.iterations, converged=result.converged)
    if outputs.trajectory is not None:
        import pandas as pd

        frame = pd.DataFrame(result.trajectory)
        frame.insert(0, "depth", config.depth)
        write_parquet(outputs.trajectory, frame)
    write_json(outputs.metrics, record)
    write_text(outputs.log, buffer.getvalue())
    return record


def run_dmf(
    ground_truth_path: str | os.PathLike,
    observations_path: str | os.PathLike,
    config: TrainConfig,
    outputs: RunOutputs,
    labels: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train one deep factorization; write its outputs; return its metrics record.

    ``ground_truth_path`` is None for real data (the observation set then holds a test set).
    The run checkpoints beside its matrix every :data:`CHECKPOINT_EVERY` updates and resumes
    from a checkpoint of itself; the checkpoint is removed once the outputs are written.
    """
    w_star, obs, test = load_data(ground_truth_path, observations_path)
    backend = resolve_backend(config.device, config.dtype)
    log, buffer = _run_log(ground_truth_path, observations_path, config)
    optimizer = make_optimizer(config.optimizer, config.lr)
    init_seed = stream_seed(config.seed, "init", config.depth)
    factors = init_factors(obs.shape, config.depth, config.init, config.init_scale, init_seed, config.width)
    recording = outputs.trajectory is not None
    # a checkpoint is this run's only if the config, the data and the code are the same
    data_digest = file_sha256(observations_path)
    checkpoint_key = json.dumps([asdict(config), data_digest, str(ground_truth_path), code_fingerprint(), recording])
    checkpointing = Checkpointing(
        Path(outputs.matrix).parent / "checkpoint.npz", CHECKPOINT_EVERY,
        hashlib.sha256(checkpoint_key.encode()).hexdigest(),
    )
    result = train(
        make_objective(obs, backend),
        [backend.asarray(f) for f in factors],
        optimizer,
        max_iters=config.max_iters,
        loss_threshold=config.loss_threshold,
        # a trajectory file with record_every = 0 holds the first and the last step
        record_every=(config.record_every or config.max_iters + 1) if recording else 0,
        top_k=config.top_k,
        ground_truth=backend.asarray(w_star) if recording and w_star is not None else None,
        evaluate=_test_error_on(test, backend) if recording and test is not None else None,
        checkpointing=checkpointing,
    )
    if result.resumed_from is not None:
        log.info("resumed from the checkpoint at step %d (%s)", result.resumed_from, checkpointing.path)
    record = _write_run(result, config, backend.label, outputs, log, buffer, obs, w_star, test,
                        {**(labels or {}), **_data_labels(obs, observations_path, ground_truth_path)})
    checkpointing.remove()
    return record


def run_dmf_batch(
    data: list[tuple[str | os.PathLike | None, str | os.PathLike]],
    configs: list[TrainConfig],
    outputs: list[RunOutputs],
    labels: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train runs of one shape, depth, init, optimizer, stopping rule, recording, device and
    dtype together on one torch device (:func:`dmfcore.batched.train_batch`); run k trains on
    ``data[k]`` (ground truth or None, observations) with ``configs[k]`` (its own init scale,
    learning rate and seed) and writes ``outputs[k]`` as :func:`run_dmf` would.

    Runs on the same observation file share it (a sensing set's measurement matrix is read
    once per step for all of them). Batches do not checkpoint: a killed batch trains again.
    """
    from .batched import BatchRun, train_batch

    own = ("init_scale", "lr", "seed")
    shared = {k: v for k, v in asdict(configs[0]).items() if k not in own}
    for config in configs[1:]:
        other = {k: v for k, v in asdict(config).items() if k not in own}
        if other != shared:
            raise ValueError(f"a batch's runs differ only in init_scale, lr, seed and data; got {shared} and {other}")
    if not len(data) == len(outputs) == len(configs):
        raise ValueError(f"a batch needs data and outputs for each of its {len(configs)} runs")
    recording = {out.trajectory is not None for out in outputs}
    if len(recording) != 1:
        raise ValueError("a batch's runs are all recorded, or none")
    recorded = recording.pop()
    first = configs[0]
    backend = resolve_backend(first.device, first.dtype)
    loaded: dict[tuple[str, str], tuple[Any, Any, Any, dict[str, Any]]] = {}  # each file once: runs share it
    for gt_path, obs_path in data:
        if (str(gt_path), str(obs_path)) not in loaded:
            w_star, obs, test = load_data(gt_path, obs_path)
            loaded[(str(gt_path), str(obs_path))] = (w_star, obs, test, _data_labels(obs, obs_path, gt_path))
    runs = []
    for (gt_path, obs_path), c in zip(data, configs):
        w_star, obs, test, _ = loaded[(str(gt_path), str(obs_path))]
        factors = init_factors(obs.shape, c.depth, c.init, c.init_scale, stream_seed(c.seed, "init", c.depth), c.width)
        runs.append(BatchRun(obs, factors, c.lr, ground_truth=w_star if recorded else None,
                             evaluate=_test_error_on(test, backend) if recorded and test is not None else None,
                             label=f"{obs_path}, init_scale {c.init_scale!r}, lr {c.lr!r}"))
    results = train_batch(
        runs, backend, first.optimizer, max_iters=first.max_iters, loss_threshold=first.loss_threshold,
        record_every=(first.record_every or first.max_iters + 1) if recorded else 0, top_k=first.top_k,
    )
    records = []
    for (gt_path, obs_path), config, result, out in zip(data, configs, results, outputs):
        w_star, obs, test, data_labels = loaded[(str(gt_path), str(obs_path))]
        log, buffer = _run_log(gt_path, obs_path, config)
        log.info("trained in a batch of %d runs", len(configs))
        records.append(_write_run(result, config, backend.label, out, log, buffer, obs, w_star, test,
                                  {**(labels or {}), **data_labels}, batch_size=len(configs)))
    return records


def run_min_nuclear_norm(
    ground_truth_path: str | os.PathLike,
    observations_path: str | os.PathLike,
    outputs: RunOutputs,
    labels: dict[str, Any] | None = None,
    seed: int = 0,
    solver: str = "auto",
    tol: float = NUCLEAR_NORM_TOL,
) -> dict[str, Any]:
    """Solve the minimum nuclear norm problem for one observation set; write matrix, record, log.

    ``solver="auto"`` picks cvxpy + SCS or the certified first-order solver by size
    (:func:`dmfcore.convex.choose_solver`); the record names the solver used.
    """
    w_star, obs, test = load_data(ground_truth_path, observations_path)
    res = min_nuclear_norm(obs, solver, tol)
    record = {
        **(labels or {}),
        **_data_labels(obs, observations_path, ground_truth_path),
        "method": "nuclear_norm",
        "seed": seed,
        "iterations": res.iterations,
        "converged": res.status == "optimal",
        "train_loss": float(np.mean((observed_values(res.w, obs) - observed_targets(obs)) ** 2)),
        **evaluation(res.w, w_star, test),
        "wall_seconds": res.wall_seconds,
        "device": "cpu",
        "dtype": "float64",
        "solver": res.solver,
        "max_residual": res.max_residual,
        "relative_gap": res.relative_gap,
        "tol": tol,
        **provenance(),
    }
    save_matrix(outputs.matrix, res.w)
    write_json(outputs.metrics, record)
    write_text(
        outputs.log,
        f"{res.solver}: status {res.status}, {res.wall_seconds:.2f} s, nuclear norm {res.nuclear_norm:.10g}, "
        f"max residual {res.max_residual:.3e}, relative gap {res.relative_gap}\n",
    )
    return record


def ground_truth_record(
    ground_truth_path: str | os.PathLike,
    observations_path: str | os.PathLike,
    metrics_path: str | os.PathLike,
    labels: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The reference row: the ground truth's own nuclear norm and effective rank."""
    w_star = load_ground_truth(ground_truth_path)
    obs = load_observations(observations_path, shape=w_star.shape)
    record = {
        **(labels or {}),
        **_data_labels(obs, observations_path, ground_truth_path),
        "method": "ground_truth",
        "seed": seed,
        **summary(w_star, w_star),
        **provenance(),
    }
    write_json(metrics_path, record)
    return record


PREDICTORS = ("mean_predictor", "zero_predictor")


def predictor_record(
    observations_path: str | os.PathLike,
    predictor: str,
    metrics_path: str | os.PathLike,
    labels: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """A reference row for real data: a constant prediction (the training mean, or 0: the
    entries a depth-1 run never moves) scored on the held-out test set."""
    if predictor not in PREDICTORS:
        raise ValueError(f"predictor must be one of {PREDICTORS}, got {predictor!r}")
    _, obs, test = load_data(None, observations_path)
    record = {
        **(labels or {}),
        **_data_labels(obs, observations_path),
        "method": predictor,
        "seed": seed,
        "train_loss": float(np.mean((obs.values - (obs.values.mean() if predictor == "mean_predictor" else 0.0)) ** 2)),
        "test_error": baseline_test_errors(obs, test)[predictor],
        **provenance(),
    }
    write_json(metrics_path, record)
    return record


@contextmanager
def logged(log_path: str | os.PathLike) -> Iterator[None]:
    """Run a step so that its log file always exists afterwards.

    On success a log the step did not write itself gets a one-line note; on failure the
    traceback is written to the log (and the exception re-raised), so a failed workflow
    job points at a log that says why.
    """
    start = time.perf_counter()
    try:
        yield
    except BaseException:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as fh:
            fh.write(traceback.format_exc())
        raise
    if not Path(log_path).exists():
        write_text(log_path, f"dmfcore {__version__}: done in {time.perf_counter() - start:.2f} s\n")


def check_provenance(
    records: list[dict[str, Any]], paths: list[str | os.PathLike], expected_fingerprint: str
) -> None:
    """Fail, listing them, if any record was computed by other code than ``expected_fingerprint``.

    A table never mixes results of different code: the message lists the stale results and
    the command that recomputes them.
    """
    stale = [(str(p), r.get("code_fingerprint")) for p, r in zip(paths, records)
             if r.get("code_fingerprint") != expected_fingerprint]
    if not stale:
        return
    found = sorted({str(fingerprint) for _, fingerprint in stale})
    stale = [p for p, _ in stale]
    listing = "\n  ".join(stale)
    raise StaleResultError(
        f"{len(stale)} of {len(records)} results were computed by other code (code fingerprint "
        f"{', '.join(found)}; the code now is {expected_fingerprint}), so they cannot go into one "
        f"table with the others. Snakemake reruns a job whose code changed unless its metadata "
        f"(.snakemake/) was lost or --rerun-triggers excludes params; recompute them with\n"
        f"  snakemake --cores all --forcerun {' '.join(stale)}\nStale results:\n  {listing}"
    )


def aggregate_records(
    paths: list[str | os.PathLike],
    table_path: str | os.PathLike,
    experiment: str,
    expected_fingerprint: str | None = None,
) -> Any:
    """One Parquet table of an experiment's metrics records, one row per run.

    With ``expected_fingerprint``, every record must come from that code
    (:func:`check_provenance`).
    """
    records = read_records(paths)
    if expected_fingerprint is not None:
        check_provenance(records, paths, expected_fingerprint)
    frame = records_frame(records)
    frame["experiment"] = experiment
    write_parquet(table_path, frame)
    return frame


TRAJECTORY_LABELS = [
    "problem", "dataset", "d1", "d2", "rank", "n_obs", "seed", "depth", "init", "init_scale", "lr", "optimizer",
]


def aggregate_trajectories(
    paths: list[str | os.PathLike],
    table_path: str | os.PathLike,
    experiment: str,
    recording: dict[str, int] | None = None,
) -> Any:
    """One Parquet table of an experiment's training trajectories, labelled by run.

    Each ``trajectory.parquet`` is labelled from the ``metrics.json`` beside it. With
    ``recording`` (``{"record_every": k, "top_k": j}``), every run must have been recorded
    with exactly those settings.
    """
    import pandas as pd

    frames = []
    for p in paths:
        record = json.loads((Path(p).parent / "metrics.json").read_text())
        if recording is not None:
            found = {key: record.get(key) for key in recording}
            if found != recording:
                raise StaleResultError(
                    f"{p}: recorded with {found}, but experiment {experiment} asks for {recording}; "
                    f"recompute it with: snakemake --cores all --forcerun {p}"
                )
        frame = pd.read_parquet(p).drop(columns=["depth"], errors="ignore")
        for i, key in enumerate(TRAJECTORY_LABELS):
            frame.insert(i, key, record[key])
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=TRAJECTORY_LABELS)
    table.insert(0, "experiment", experiment)
    write_parquet(table_path, table)
    return table


def read_records(paths: list[str | os.PathLike]) -> list[dict[str, Any]]:
    """Metrics records (JSON files), one dict each; an unreadable file is named."""
    records = []
    for p in paths:
        try:
            records.append(json.loads(Path(p).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"{p}: unreadable metrics record ({exc}); delete it and rerun snakemake to recompute it"
            ) from exc
    return records


def records_frame(records: list[dict[str, Any]]) -> Any:
    """Records as one pandas DataFrame, one row each, with the :data:`TABLE_COLUMNS` first."""
    import pandas as pd

    frame = pd.DataFrame(records)
    for col in TABLE_COLUMNS:
        if col not in frame:
            frame[col] = None
    return frame[TABLE_COLUMNS + [c for c in frame.columns if c not in TABLE_COLUMNS]]


TABLE_COLUMNS = [
    "experiment", "problem", "dataset", "d1", "d2", "rank", "n_obs", "method", "depth", "init", "init_scale",
    "lr", "optimizer", "seed", "loss_threshold", "max_iters", "iterations", "converged", "train_loss", "recon_error", "test_error",
    "min_test_error", "nuclear_norm",
    "effective_rank", "numerical_rank", "spectral_norm", "wall_seconds", "flow_time", "device", "dtype",
    "batch_size", "solver", "max_residual", "relative_gap", "tol", "record_every", "top_k", "code_fingerprint",
    "code_commit", "dmfcore_version",
]
