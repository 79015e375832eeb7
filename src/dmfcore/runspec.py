"""A training run's identity: its settings (:class:`TrainConfig`) and where it lives
(:class:`RunSpec`, the one definition of a run's path, to and from workflow wildcards).

A run is stored under its parameters, not under the experiment that asked for it, so that
experiments sharing a run train it once::

    results/runs/{problem}/{dataset}/n{n_obs}/seed{seed}/dmf_depth{depth}_{init}{init_scale}_
        {optimizer}_lr{lr}_stop{loss_threshold}_max{max_iters}_{device}_{dtype}/

Numbers in paths are canonical (:func:`number`: the shortest text that reads back as the same
float64), so that one run has one path.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields
from typing import Any, Mapping

from .model import INITS


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


def number(x: Any) -> str:
    """Canonical text of a number in a path: the shortest text that reads back as the same
    float64 (0.001 -> '0.001', 1e-06 -> '1e-06', 0.0012345678 -> '0.0012345678')."""
    return repr(float(x))


RUNS_ROOT = "results/runs"
# An observation set's folder: its runs and reference rows live under it.
OBSERVATION_SET_DIR = RUNS_ROOT + "/{problem}/{dataset}/n{n_obs}/seed{seed}"
RUN_DIR = (
    OBSERVATION_SET_DIR + "/dmf_depth{depth}_{init}{init_scale}_{optimizer}_lr{lr}_stop{loss_threshold}"
    "_max{max_iters}_{device}_{dtype}"
)
# A run's files (each is an output of its training job).
RUN_FILES = ("matrix.npz", "metrics.json", "trajectory.parquet")
# The fields written as canonical float text.
NUMBER_FIELDS = ("init_scale", "lr", "loss_threshold")


@dataclass(frozen=True)
class RunSpec:
    """One training run, as named by its path. Numbers that are floats are held as their
    canonical text (:func:`number`), so that two specs are equal exactly when their paths are."""

    problem: str
    dataset: str
    n_obs: int
    seed: int
    depth: int
    init: str
    init_scale: str
    optimizer: str
    lr: str
    loss_threshold: str
    max_iters: int
    device: str
    dtype: str

    @classmethod
    def make(cls, **values: Any) -> RunSpec:
        """A spec from settings as numbers or text (floats are canonicalized)."""
        values = {**values, **{k: number(values[k]) for k in NUMBER_FIELDS}}
        return cls(**{f.name: (int(values[f.name]) if f.type == "int" else values[f.name]) for f in fields(cls)})

    @classmethod
    def from_wildcards(cls, wildcards: Mapping[str, Any]) -> RunSpec:
        """The run that a path names (its wildcards); a number spelled other than canonically
        is refused, so that one run is never trained under two paths."""
        for key in NUMBER_FIELDS:
            text = str(wildcards[key])
            if number(text) != text:
                raise ValueError(
                    f"run path has {key} '{text}': write it as '{number(text)}' (numbers in paths are "
                    "canonical, so that one run has one path)"
                )
        return cls(**{f.name: (int(wildcards[f.name]) if f.type == "int" else str(wildcards[f.name]))
                      for f in fields(cls)})

    def wildcards(self) -> dict[str, Any]:
        """The path's fields (the inverse of :meth:`from_wildcards`)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @property
    def dir(self) -> str:
        return RUN_DIR.format(**self.wildcards())

    @property
    def observation_set_dir(self) -> str:
        return OBSERVATION_SET_DIR.format(**self.wildcards())

    def files(self) -> list[str]:
        """The run's output files (:data:`RUN_FILES`)."""
        return [f"{self.dir}/{name}" for name in RUN_FILES]

    def train_config(self, recording: Mapping[str, int]) -> TrainConfig:
        """The run's :class:`TrainConfig`, with how it records its trajectory (``record_every``
        and ``top_k``, which are not part of its path)."""
        return TrainConfig(
            depth=self.depth, init=self.init, init_scale=float(self.init_scale), lr=float(self.lr),
            optimizer=self.optimizer, seed=self.seed, max_iters=self.max_iters,
            loss_threshold=float(self.loss_threshold), record_every=int(recording["record_every"]),
            top_k=int(recording["top_k"]), device=self.device, dtype=self.dtype,
        )

    def sort_key(self) -> tuple:
        return astuple(self)
