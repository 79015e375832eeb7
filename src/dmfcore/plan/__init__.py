"""Planning: a configuration checked and expanded into runs, observation sets, reference rows,
batches and target files (:func:`make_plan`), with the registries that extend it
(:mod:`dmfcore.plan.registry`). Imported by the workflow and ``dmf plan``, by no job's code: a
job's results do not depend on how it was planned, only on its own parameters and code.
"""

from .config import ConfigError, merge_configs, read_config_files
from .make import Batch, ObservationSet, Plan, data_paths, make_plan
from .registry import DATASET_KINDS, DatasetKind

__all__ = [
    "Batch",
    "ConfigError",
    "DATASET_KINDS",
    "DatasetKind",
    "ObservationSet",
    "Plan",
    "data_paths",
    "make_plan",
    "merge_configs",
    "read_config_files",
]
