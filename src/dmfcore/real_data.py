"""Jobs on a ratings file (:mod:`dmfcore.ratings` reads and splits it): its training/test split
stored as an observation set, and the constant-prediction reference rows scored on the test set.

The workflow fingerprints these jobs by this module's import closure, apart from the synthetic
data and the training runs, so an edit to the ratings code reruns only real-data jobs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .io import file_sha256, save_observations, write_json
from .ratings import baseline_test_errors, read_ratings, split_ratings
from .records import data_labels, load_data, provenance
from .seeds import stream_seed


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
        **data_labels(obs, observations_path),
        "method": predictor,
        "seed": seed,
        "train_loss": float(np.mean((obs.values - (obs.values.mean() if predictor == "mean_predictor" else 0.0)) ** 2)),
        "test_error": baseline_test_errors(obs, test)[predictor],
        **provenance("real_data"),
    }
    write_json(metrics_path, record)
    return record
