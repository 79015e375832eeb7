"""What every computed result shares: where it is written, which code computed it, how its data
are labelled and evaluated, and its log.

Every record carries ``code_fingerprint``, ``code_part`` and ``code_commit``
(:mod:`dmfcore.provenance`); :mod:`dmfcore.tables` makes tables of records of today's code only.
"""

from __future__ import annotations

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
    load_ground_truth,
    load_observations,
    load_test_observations,
    observation_metadata,
    write_text,
)
from .metrics import held_out_error, summary
from .problems import CompletionObservations
from .provenance import code_commit, code_fingerprint


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
    """(ground truth or None, observations, held-out test set or None): synthetic data have a
    ground truth, real data a test set, a fixed small matrix neither (its runs are measured by
    their spectrum and entries alone)."""
    w_star = load_ground_truth(ground_truth_path) if ground_truth_path is not None else None
    obs = load_observations(observations_path, shape=None if w_star is None else w_star.shape)
    return w_star, obs, load_test_observations(observations_path)


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
