"""What every computed result shares: where it is written, which code computed it, how its data
are labelled and evaluated, its log, and how results become one table per experiment.

Every record carries ``code_fingerprint``, ``code_part`` and ``code_commit``
(:mod:`dmfcore.provenance`); a table is made only of records of today's code.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import __version__
from .io import (
    DataFileError,
    load_ground_truth,
    load_observations,
    load_test_observations,
    observation_metadata,
    write_parquet,
    write_text,
)
from .metrics import held_out_error, summary
from .problems import CompletionObservations
from .provenance import StaleResultError, code_commit, code_fingerprint


def provenance(part: str) -> dict[str, Any]:
    """The columns that say which code computed a record: that of ``part``, the entry module of
    the computation (:func:`dmfcore.provenance.code_fingerprint`)."""
    return {"code_fingerprint": code_fingerprint(part), "code_part": part, "code_commit": code_commit(),
            "dmfcore_version": __version__}


@dataclass(frozen=True)
class RunOutputs:
    """Where a run writes; ``trajectory`` is only written when recording."""

    matrix: str | os.PathLike
    metrics: str | os.PathLike
    log: str | os.PathLike
    trajectory: str | os.PathLike | None = None


def data_labels(obs: Any, observations_path: Any, gt_path: Any = None) -> dict[str, Any]:
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


def evaluation(w: np.ndarray, w_star: np.ndarray | None, test: CompletionObservations | None) -> dict[str, Any]:
    """The metrics of a final matrix: spectral ones, and the reconstruction or test error."""
    return {**summary(w, w_star), **({"test_error": held_out_error(w, test)} if test is not None else {})}


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
    records: list[dict[str, Any]], paths: list[str | os.PathLike], expected: dict[str, str]
) -> None:
    """Fail, listing them, if any record was computed by other code than today's: ``expected``
    maps each code part (a record's ``code_part``) to its fingerprint now.

    A table never mixes results of different code: the message lists the stale results and
    the command that recomputes them.
    """
    stale = [(str(p), r.get("code_fingerprint"), r.get("code_part")) for p, r in zip(paths, records)
             if r.get("code_fingerprint") is None or r.get("code_fingerprint") != expected.get(r.get("code_part"))]
    if not stale:
        return
    found = sorted({str(fingerprint) for _, fingerprint, _ in stale})
    now = sorted({f"{part} {expected[part]}" if part in expected else f"no code part {part!r}" for _, _, part in stale})
    stale = [p for p, _, _ in stale]
    listing = "\n  ".join(stale)
    raise StaleResultError(
        f"{len(stale)} of {len(records)} results were computed by other code (code fingerprint "
        f"{', '.join(found)}; the code now is {', '.join(now)}), so they cannot go into one "
        f"table with the others. Snakemake reruns a job whose code changed unless its metadata "
        f"(.snakemake/) was lost or --rerun-triggers excludes params; recompute them with\n"
        f"  snakemake --cores all --forcerun {' '.join(stale)}\nStale results:\n  {listing}"
    )


def aggregate_records(
    paths: list[str | os.PathLike],
    table_path: str | os.PathLike,
    experiment: str,
    expected_fingerprints: dict[str, str] | None = None,
) -> Any:
    """One Parquet table of an experiment's metrics records, one row per run.

    With ``expected_fingerprints`` (code part -> fingerprint), every record must come from
    today's code of its part (:func:`check_provenance`).
    """
    records = read_records(paths)
    if expected_fingerprints is not None:
        check_provenance(records, paths, expected_fingerprints)
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
    "code_part", "code_commit", "dmfcore_version",
]
