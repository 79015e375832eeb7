"""Synthetic data files of an experiment: low-rank ground truths and their observation sets, and
fixed small matrices given entry by entry (:mod:`dmfcore.io` stores them; :mod:`dmfcore.seeds`
gives each its random stream). A ratings file's split is :mod:`dmfcore.real_data`'s: editing the
ratings code regenerates none of these.
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from .io import load_ground_truth, save_ground_truth, save_observations
from .problems import PROBLEMS, CompletionObservations, low_rank_ground_truth, sample_completion, sample_sensing
from .seeds import stream_seed


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


def fixed_observations(observed: Sequence[Sequence[float]], shape: tuple[int, int]) -> CompletionObservations:
    """The observation set of a fixed small matrix: ``observed`` lists (row, column, value)
    with 1-based row and column (as a ratings file's ids), each entry once."""
    d1, d2 = shape
    if len(observed) == 0:
        raise ValueError("a fixed matrix needs at least one observed entry")
    rows = np.array([int(e[0]) - 1 for e in observed], dtype=np.int64)
    cols = np.array([int(e[1]) - 1 for e in observed], dtype=np.int64)
    if rows.min() < 0 or cols.min() < 0 or rows.max() >= d1 or cols.max() >= d2:
        raise ValueError(f"observed entries must lie in 1..{d1} x 1..{d2} (1-based), got {list(observed)}")
    if len(set(zip(rows.tolist(), cols.tolist()))) != len(observed):
        raise ValueError(f"an entry is observed twice in {list(observed)}")
    return CompletionObservations(shape=(d1, d2), rows=rows, cols=cols,
                                  values=np.array([float(e[2]) for e in observed]))


def generate_fixed_observations(
    path: str | os.PathLike, observed: Sequence[Sequence[float]], shape: tuple[int, int], seed: int, dataset: str
) -> None:
    """Store a fixed small matrix's observation set (:func:`fixed_observations`) under its name."""
    save_observations(path, fixed_observations(observed, shape), seed, dataset=dataset)
