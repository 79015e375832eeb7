"""Data files of an experiment: synthetic ground truths, their observation sets, and training/test
splits of a ratings file (:mod:`dmfcore.io` stores them).

Seeds: seed ``s`` of an experiment draws the ground truth from ``s``, the observations
from ``(s, n_obs)`` and the initialization from ``(s, depth, 1)`` (:func:`stream_seed`); every
depth and the baseline of seed ``s`` therefore share the ground truth and the observation set
(paired), and no two streams coincide.
"""

from __future__ import annotations

import os
from pathlib import Path

from .io import file_sha256, load_ground_truth, save_ground_truth, save_observations
from .problems import PROBLEMS, low_rank_ground_truth, sample_completion, sample_sensing
from .ratings import read_ratings, split_ratings

# Random streams of a seed s, as numpy SeedSequence entropy. numpy pads entropy with zeros,
# so (s, k) and (s, k, 0) are one stream: each stream ends with its own tag, except the
# observations' (s, n_obs), kept as it was so that existing data files stay valid. The ground
# truth's stream is s itself, i.e. (s, 0): no stream has key 0 (n_obs, depth, n_train >= 1).
STREAM_TAGS = {"observations": 0, "init": 1, "split": 2}


def stream_seed(seed: int, stream: str, key: int) -> tuple[int, ...]:
    """The seed of random stream ``stream`` (see :data:`STREAM_TAGS`) for ``key`` (n_obs, depth...)."""
    tag = STREAM_TAGS[stream]
    return (seed, key) if tag == 0 else (seed, key, tag)


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
