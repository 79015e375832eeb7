"""What the planner knows by name. Each registry maps a name to what planning needs of it; a
new dataset kind, figure, theory check, init or optimizer is an entry, not a branch.

The library's own registries are the source (:data:`dmfcore.model.INITS`,
:data:`dmfcore.optimizers.OPTIMIZERS`, :data:`dmfcore.plots.FIGURES`,
:data:`dmfcore.theory.THEORY_CHECKS`, ...); the config schema's enums and the workflow's
wildcard constraints are held equal to them (tests/test_plan.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..backend import DTYPES
from ..convex import SOLVERS
from ..model import INITS
from ..optimizers import OPTIMIZERS
from ..problems import PROBLEMS

# The reference rows an experiment can ask for (config: baselines) and the ones real data get.
BASELINES = ("nuclear_norm", "ground_truth")
PREDICTORS = ("mean_predictor", "zero_predictor")
# The run settings a batch may vary (config: batch_over), in the order a batch sorts its runs.
BATCHABLE = ("init_scale", "lr", "seed", "n_obs", "depth")
RATINGS_SPLITS = ("file_order", "random")
NUCLEAR_NORM_SOLVERS = tuple(SOLVERS)
DEVICE_PATTERN = "cpu|auto|torch-cpu|cuda(:[0-9]+)?"


@dataclass(frozen=True)
class DatasetKind:
    """A kind of data an experiment trains on, and what the planner needs to know of it.

    - ``identity``: the regular expression of a dataset's name in paths (it tells the data
      rules apart, so that no rule branches on where data came from);
    - ``ground_truth``: a ground truth is known (runs are scored by reconstruction error and a
      ground-truth file is an input of every job on the data);
    - ``held_out``: the observation set holds a test set (runs are scored on it);
    - ``problems``: the problems it poses;
    - ``baselines``: the experiment's reference rows that apply to it, and ``rows``: those it
      always gets;
    - ``data_rule``: the workflow rule that makes an observation set of it;
    - ``name_of(key, source)``: its identity in paths, from an experiment's rank (synthetic) or a
      configured dataset.

    Kinds: ``synthetic`` (low-rank ground truths of an experiment's shape and ranks), ``ratings``
    (a ratings file, split into training and test ratings) and ``fixed`` (a small matrix given
    entry by entry in the config, e.g. Razin & Cohen's 2 x 2 problem: nothing is held out and
    there is no ground truth; its runs are read by their entries and norms).
    """

    name: str
    description: str
    identity: str
    ground_truth: bool
    held_out: bool
    problems: tuple[str, ...]
    baselines: tuple[str, ...]
    data_rule: str
    name_of: Callable[[Any, Any], str]
    rows: tuple[str, ...] = ()

    def reference_rows(self, asked: list[str]) -> list[str]:
        """The reference rows of an observation set, given the experiment's ``baselines``."""
        return list(self.rows) + [b for b in asked if b in self.baselines]


@dataclass(frozen=True)
class DatasetSource:
    """A dataset configured by name (top-level ``datasets``): its kind and its settings."""

    name: str
    kind: str
    spec: Mapping[str, Any] = field(default_factory=dict)


def _synthetic_name(rank: int, shape: Any) -> str:
    d1, d2 = shape
    return f"{d1}x{d2}_rank{rank}"


def _ratings_name(_: Any, source: DatasetSource) -> str:
    return f"{source.name}_{source.spec['split']}"


DATASET_KINDS: dict[str, DatasetKind] = {
    "synthetic": DatasetKind(
        name="synthetic",
        description="synthetic low-rank ground truths",
        identity="[0-9]+x[0-9]+_rank[0-9]+",
        ground_truth=True,
        held_out=False,
        problems=tuple(PROBLEMS),
        baselines=BASELINES,
        data_rule="observations",
        name_of=_synthetic_name,
    ),
    "ratings": DatasetKind(
        name="ratings",
        description="ratings",
        identity="[A-Za-z][A-Za-z0-9-]*_(?:" + "|".join(RATINGS_SPLITS) + ")",
        ground_truth=False,
        held_out=True,
        problems=("completion",),
        baselines=("nuclear_norm",),
        data_rule="ratings_split",
        name_of=_ratings_name,
        rows=PREDICTORS,
    ),
    "fixed": DatasetKind(
        name="fixed",
        description="fixed small matrices",
        identity="[A-Za-z][A-Za-z0-9-]*_fixed",
        ground_truth=False,
        held_out=False,
        problems=("completion",),
        baselines=("nuclear_norm",),
        data_rule="fixed_observations",
        name_of=lambda _, source: f"{source.name}_fixed",
    ),
}


def kind_of_dataset(dataset: str) -> DatasetKind:
    """The kind whose identity pattern a dataset's name in paths matches."""
    import re

    for kind in DATASET_KINDS.values():
        if re.fullmatch(kind.identity, dataset):
            return kind
    raise ValueError(f"dataset {dataset!r} is of no known kind ({', '.join(DATASET_KINDS)})")


def figures() -> tuple[str, ...]:
    from ..plots import FIGURES

    return tuple(FIGURES)


def theory_checks() -> tuple[str, ...]:
    from ..theory import THEORY_CHECKS

    return tuple(THEORY_CHECKS)


def enums() -> dict[str, tuple[str, ...]]:
    """Every enumerated config value by what it enumerates (the schema's enums and the
    workflow's wildcard constraints must agree with these)."""
    return {
        "problem": tuple(PROBLEMS),
        "init": tuple(INITS),
        "optimizer": tuple(OPTIMIZERS),
        "dtype": tuple(DTYPES),
        "figure": figures(),
        "theory": theory_checks(),
        "baseline": BASELINES,
        "batch_over": BATCHABLE,
        "split": RATINGS_SPLITS,
        "nuclear_norm_solver": NUCLEAR_NORM_SOLVERS,
    }
