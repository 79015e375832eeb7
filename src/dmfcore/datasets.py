"""Synthetic data files of an experiment: low-rank ground truths and their observation sets
(:mod:`dmfcore.io` stores them; :mod:`dmfcore.seeds` gives each its random stream). A ratings
file's split is :mod:`dmfcore.real_data`'s: editing the ratings code regenerates no synthetic data.
"""

from __future__ import annotations

import os

from .io import load_ground_truth, save_ground_truth, save_observations
from .problems import PROBLEMS, low_rank_ground_truth, sample_completion, sample_sensing
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
