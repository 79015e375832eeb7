"""Training runs from files to files: the code path shared by the CLI and the workflow.

:func:`run_dmf` trains one deep factorization and writes its matrix, one-row metrics record
(JSON), trajectory (Parquet, when recording) and log; :func:`run_dmf_batch` trains several
together on a torch device and writes each run's files as :func:`run_dmf` would. Data files
come from :mod:`dmfcore.datasets`, the reference rows from :mod:`dmfcore.baselines`, and what
all records share (outputs, provenance, labels) from :mod:`dmfcore.records`.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import logging
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import __version__
from .backend import resolve_backend
from .seeds import stream_seed
from .io import file_sha256, save_matrix, write_json, write_parquet, write_text
from .model import init_factors_and_draws
from .optimizers import make_optimizer
from .problems import CompletionObservations, make_objective, max_constraint_residual
from .provenance import code_fingerprint
from .records import RunOutputs, data_labels, evaluation, load_data, provenance
from .runspec import TrainConfig
from .checkpoints import Checkpointing
from .training import SMALL_MATRIX_ENTRIES, TrainResult, train

# Long runs save their state every this many updates (dmfcore.checkpoints.Checkpointing).
CHECKPOINT_EVERY = 10_000


def _test_error_on(test: CompletionObservations, backend: Any) -> Any:
    """``W -> {"test_error": mean squared error on the held-out entries}`` on a backend."""
    index = backend.index_array(test.rows * test.shape[1] + test.cols)
    values = backend.asarray(test.values)

    def evaluate(w: Any) -> dict[str, float]:
        r = backend.asarray(w).reshape(-1)[index] - values  # (a batch may record on the host)
        return {"test_error": float(r @ r) / test.m}

    return evaluate


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
               labels: dict[str, Any], batch_size: int = 1, init_draws: int = 1) -> dict[str, Any]:
    """A trained run's record, matrix, trajectory and log (the same files alone or in a batch)."""
    record = {
        **labels,
        "method": "dmf",
        "depth": config.depth,
        "init": config.init,
        "init_scale": config.init_scale,
        # draws of a determinant-conditioned init until det(W(0)) had its sign (else 1)
        "init_draws": init_draws,
        "lr": config.lr,
        "optimizer": config.optimizer,
        "seed": config.seed,
        "iterations": result.iterations,
        "converged": result.converged,
        "train_loss": result.train_loss,
        **evaluation(result.w, w_star, test),
        # a small matrix's entries (Razin & Cohen: the unobserved w11 is the result)
        **({f"w_{i + 1}{j + 1}": float(result.w[i, j]) for i in range(result.w.shape[0])
            for j in range(result.w.shape[1])} if result.w.size <= SMALL_MATRIX_ENTRIES else {}),
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
        **provenance("runs"),
    }
    # the error the data allow: against the ground truth, on the test set, or none (the norm)
    error = next(key for key in ("recon_error", "test_error", "nuclear_norm") if key in record)
    log.info(
        "done: %d iterations, converged=%s, train loss %.3e, %s %.3e, %.2f s (%.1f us/iter)%s",
        result.iterations, result.converged, result.train_loss, error.replace("_", " "), record[error],
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
    factors, init_draws = init_factors_and_draws(obs.shape, config.depth, config.init, config.init_scale, init_seed,
                                                 config.width)
    recording = outputs.trajectory is not None
    # a checkpoint is this run's only if the config, the data and the code are the same
    data_digest = file_sha256(observations_path)
    checkpoint_key = json.dumps([asdict(config), data_digest, str(ground_truth_path), code_fingerprint("runs"), recording])
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
                        {**(labels or {}), **data_labels(obs, observations_path, ground_truth_path)},
                        init_draws=init_draws)
    checkpointing.remove()
    return record


def _progress_report(runs: int, max_iters: int, every_seconds: float = 30.0) -> Callable[[int, int], None]:
    """A batch's progress on stderr (a job's console: a batch writes its run logs only at its
    end) every ``every_seconds`` and when it ends: its step, how many runs still train."""
    start = last = time.perf_counter()

    def report(step: int, still_training: int) -> None:
        nonlocal last
        now = time.perf_counter()
        if now - last >= every_seconds or not still_training:
            last = now
            print(f"batch of {runs} runs: step {step} of at most {max_iters}, {still_training} still training, "
                  f"{now - start:.0f} s", file=sys.stderr, flush=True)

    return report


def run_dmf_batch(
    data: list[tuple[str | os.PathLike | None, str | os.PathLike]],
    configs: list[TrainConfig],
    outputs: list[RunOutputs],
    labels: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Train runs of one shape, init, optimizer, stopping rule, recording, device and dtype
    together on one torch device (:func:`dmfcore.batched.train_batch`); run k trains on
    ``data[k]`` (ground truth or None, observations) with ``configs[k]`` (its own depth, init
    scale, learning rate and seed) and writes ``outputs[k]`` as :func:`run_dmf` would.

    Runs on the same observation file share it (a sensing set's measurement matrix is read
    once per step for all of them, of every depth). Batches do not checkpoint: a killed batch
    trains again.
    """
    from .batched import BatchRun, train_batch

    own = ("depth", "init_scale", "lr", "seed")
    shared = {k: v for k, v in asdict(configs[0]).items() if k not in own}
    for config in configs[1:]:
        other = {k: v for k, v in asdict(config).items() if k not in own}
        if other != shared:
            raise ValueError(f"a batch's runs differ only in depth, init_scale, lr, seed and data; "
                             f"got {shared} and {other}")
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
            loaded[(str(gt_path), str(obs_path))] = (w_star, obs, test, data_labels(obs, obs_path, gt_path))
    runs, init_draws = [], []
    for (gt_path, obs_path), c in zip(data, configs):
        w_star, obs, test, _ = loaded[(str(gt_path), str(obs_path))]
        factors, draws = init_factors_and_draws(obs.shape, c.depth, c.init, c.init_scale,
                                                stream_seed(c.seed, "init", c.depth), c.width)
        init_draws.append(draws)
        runs.append(BatchRun(obs, factors, c.lr, ground_truth=w_star if recorded else None,
                             evaluate=_test_error_on(test, backend) if recorded and test is not None else None,
                             label=f"{obs_path}, init_scale {c.init_scale!r}, lr {c.lr!r}"))
    results = train_batch(
        runs, backend, first.optimizer, max_iters=first.max_iters, loss_threshold=first.loss_threshold,
        record_every=(first.record_every or first.max_iters + 1) if recorded else 0, top_k=first.top_k,
        progress=_progress_report(len(runs), first.max_iters),
    )
    records = []
    for (gt_path, obs_path), config, result, out, draws in zip(data, configs, results, outputs, init_draws):
        w_star, obs, test, labels_of_data = loaded[(str(gt_path), str(obs_path))]
        log, buffer = _run_log(gt_path, obs_path, config)
        log.info("trained in a batch of %d runs", len(configs))
        records.append(_write_run(result, config, backend.label, out, log, buffer, obs, w_star, test,
                                  {**(labels or {}), **labels_of_data}, batch_size=len(configs), init_draws=draws))
    return records
