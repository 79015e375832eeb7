"""A configuration read, checked and completed: the schema's checks with one readable line per
problem, then the checks that span fields (an experiment's n_obs against its shape, per-depth
mappings against its depths, ...), with every run setting left out filled from the library's
defaults. Nothing here runs a job or imports Snakemake.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..runspec import TrainConfig, number
from .registry import DATASET_KINDS, DatasetSource

# The schema shipped with the workflow (the config's keys, types and enums).
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"

# A run's defaults are the library's (TrainConfig): one place for them.
EXPERIMENT_DEFAULTS: dict[str, Any] = {
    "init": TrainConfig.init,
    "init_scales": [TrainConfig.init_scale],
    "lrs": [TrainConfig.lr],
    "optimizer": TrainConfig.optimizer,
    "loss_threshold": TrainConfig.loss_threshold,
    "max_iters": TrainConfig.max_iters,
    "record_every": TrainConfig.record_every,
    "top_k": TrainConfig.top_k,
    "device": TrainConfig.device,
    "dtype": TrainConfig.dtype,
    "baselines": ["nuclear_norm", "ground_truth"],
    "figures": [],
    "batch": "auto",
    "batch_over": ["init_scale", "lr"],
}
DATASET_DEFAULTS: dict[str, Any] = {"ratings": None, "download": False, "split": "file_order"}


class ConfigError(ValueError):
    """The configuration is invalid; the message names the key and says why."""


# ---------------------------------------------------------------------------------------------
# Files and the schema


def merge_configs(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """``overlay`` merged into ``base`` key by key (mappings recursively, anything else
    replaced), as Snakemake merges several ``--configfile`` files."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_configs(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def read_config_files(paths: Iterable[str | Path]) -> dict[str, Any]:
    """The configuration of one or more YAML files, later ones merged into earlier ones."""
    import yaml

    config: dict[str, Any] = {}
    for path in paths:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file {path} not found") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"config file {path}: expected a mapping of keys, got {type(loaded).__name__}")
        config = merge_configs(config, loaded)
    return config


def config_location(path: Iterable[Any]) -> str:
    """config.experiments.tiny.n_obs[0] for the path ('experiments', 'tiny', 'n_obs', 0)."""
    text = "config"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _schema_problem(error: Any) -> str:
    """One line for a schema violation: where, and why (for an unknown key, the closest)."""
    from jsonschema.exceptions import best_match

    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        lines = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(known)})"
            lines.append(f"{config_location(error.absolute_path)}: unknown key '{key}'{hint}")
        return "\n".join(lines)
    if error.context:
        # oneOf (a list, or a mapping of lists): explain the branch of the value's own type
        same_type = [e for e in error.context if not (e.validator == "type" and not e.relative_path)]
        error = best_match(same_type or error.context)
    return f"{config_location(error.absolute_path)}: {error.message}"


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(Path(path).read_text())


def check_schema(config: Mapping[str, Any], schema: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` with one line per schema violation."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(config), key=lambda e: list(map(str, e.path)))
    if errors:
        raise ConfigError("invalid config:\n" + "\n".join(_schema_problem(e) for e in errors))


# ---------------------------------------------------------------------------------------------
# Cross-field checks


def per_key(value: Any, key: Any) -> list:
    """A list, or a mapping key -> list, resolved for one rank, dataset or depth."""
    return value if isinstance(value, list) else value[str(key)]


def check_unique(values: Iterable[Any], what: str, as_text: Any = str) -> None:
    """Reject a value listed twice (after canonicalisation: 0.001 and 1.0e-3 are one value)."""
    seen: dict[str, Any] = {}
    for v in values:
        key = as_text(v)
        if key in seen:
            raise ConfigError(
                f"config: {what}: {v!r} is listed twice (as {seen[key]!r} and {v!r}); "
                "a run would be counted twice in the tables"
            )
        seen[key] = v


def lists_per_key(value: Any, keys: list, what: str, by: str) -> list[tuple[Any, list]]:
    """(key, list) for each rank or depth; a mapping must have an entry for each key, and no
    entry for a key the experiment does not have (a typo would silently be ignored)."""
    if isinstance(value, dict):
        unused = sorted(set(value) - {str(k) for k in keys})
        if unused:
            raise ConfigError(
                f"config: {what} has entries for {by} {', '.join(unused)}, which the experiment "
                f"does not have (its {by}s: {list(keys)})"
            )
        missing = [k for k in keys if str(k) not in value]
        if missing:
            raise ConfigError(f"config: {what} has no entry for {by} {missing[0]} (has {sorted(value)})")
    return [(k, per_key(value, k)) for k in keys]


def decided_device(device: str) -> str:
    """`auto` is decided here, once, so that run paths, records and the GPU resource say what
    each run uses: cuda where torch sees a GPU on this machine, else cpu. (On a cluster say cuda
    or cpu: the GPUs of the machine that plans the jobs are not the compute nodes'.)"""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


# The keys of a configured dataset that only one kind takes.
KIND_KEYS = {"ratings": ("ratings", "download", "url", "sha256", "split"), "fixed": ("observed",)}


def dataset_sources(config: Mapping[str, Any]) -> dict[str, DatasetSource]:
    """The configured datasets (top-level ``datasets``) with their defaults, by name: a ratings
    file (``kind: ratings``, the default) or a fixed small matrix (``kind: fixed``)."""
    sources = {}
    for name, spec in config.get("datasets", {}).items():
        kind = spec.get("kind", "ratings")
        for other, keys in KIND_KEYS.items():
            wrong = sorted(k for k in keys if k in spec and other != kind)
            if wrong:
                raise ConfigError(f"config: datasets.{name}: {', '.join(wrong)} belong to kind {other}, "
                                  f"and this dataset is of kind {kind}")
        if kind == "fixed":
            if "observed" not in spec:
                raise ConfigError(f"config: datasets.{name}: a fixed matrix lists its observed entries "
                                  "(observed: [[row, column, value], ...], 1-based)")
            from ..datasets import fixed_observations

            try:
                fixed_observations(spec["observed"], tuple(spec["shape"]))
            except ValueError as err:
                raise ConfigError(f"config: datasets.{name}.observed: {err}") from None
            sources[name] = DatasetSource(name=name, kind=kind, spec=dict(spec))
        else:
            sources[name] = DatasetSource(name=name, kind=kind, spec={**DATASET_DEFAULTS, **spec})
    return sources


def experiment_config(name: str, config: Mapping[str, Any], sources: Mapping[str, DatasetSource]) -> dict[str, Any]:
    """An experiment with defaults filled in and every cross-field check done (before any job)."""
    exp = {**EXPERIMENT_DEFAULTS, "ranks": [], "datasets": [], **config["experiments"][name]}
    where = f"experiments.{name}"
    if not exp["ranks"] and not exp["datasets"]:
        raise ConfigError(f"config: {where}: give ranks (synthetic data) or datasets (or both)")
    keys = exp["ranks"] + exp["datasets"]
    # one device, or one per rank or dataset: stored as the mapping, decided (`auto`) once
    devices = exp["device"]
    if isinstance(devices, dict):
        lists_per_key({k: [v] for k, v in devices.items()}, keys, f"{where}.device", "rank or dataset")
    exp["device"] = {
        str(key): decided_device(devices[str(key)] if isinstance(devices, dict) else devices) for key in keys
    }
    if exp["batch"] is True and "cpu" in exp["device"].values():
        raise ConfigError(
            f"config: {where}.batch: batched training runs on torch devices; set device: cuda "
            "(or torch-cpu), or batch: auto"
        )
    if exp["ranks"] and "shape" not in exp:
        raise ConfigError(f"config: {where}: ranks need a shape [d1, d2]")
    for key in ("ranks", "depths", "seeds", "datasets"):
        check_unique(exp[key], f"{where}.{key}")
    for dataset in exp["datasets"]:
        if dataset not in sources:
            raise ConfigError(f"config: {where}.datasets: {dataset!r} is not in datasets (has {sorted(sources)})")
        kind = DATASET_KINDS[sources[dataset].kind]
        if exp["problem"] not in kind.problems:
            raise ConfigError(f"config: {where}.datasets: {kind.description} are a {' or '.join(kind.problems)} problem")
    shapes = {rank: tuple(exp["shape"]) for rank in exp["ranks"]}
    shapes.update({ds: tuple(sources[ds].spec["shape"]) for ds in exp["datasets"]})
    for rank in exp["ranks"]:
        if rank > min(exp["shape"]):
            raise ConfigError(f"config: {where}.ranks: rank {rank} exceeds min(shape) = {min(exp['shape'])}")
    for key, n_obs in lists_per_key(exp["n_obs"], keys, f"{where}.n_obs", "rank or dataset"):
        check_unique(n_obs, f"{where}.n_obs")
        source = sources.get(key) if isinstance(key, str) else None
        if source is not None and source.kind == "fixed" and list(n_obs) != [len(source.spec["observed"])]:
            raise ConfigError(f"config: {where}.n_obs: dataset {key} observes {len(source.spec['observed'])} entries "
                              f"(its observed), so its n_obs is [{len(source.spec['observed'])}], not {n_obs}")
        d1, d2 = shapes[key]
        for n in n_obs:
            if n > d1 * d2:
                what = "entries" if exp["problem"] == "completion" else "measurements"
                raise ConfigError(
                    f"config: {where}.n_obs: {n} {what} exceed the {d1 * d2} entries of a {d1}x{d2} matrix"
                )
    for key in ("init_scales", "lrs"):
        for _, values in lists_per_key(exp[key], exp["depths"], f"{where}.{key}", "depth"):
            check_unique(values, f"{where}.{key}", number)
    smallest = min(min(shape) for shape in shapes.values())
    if exp["top_k"] > smallest:
        raise ConfigError(
            f"config: {where}.top_k: {exp['top_k']} exceeds the {smallest} singular values "
            f"of a {'x'.join(map(str, min(shapes.values(), key=min)))} matrix"
        )
    from ..plots import FIGURES

    for figure in exp["figures"]:
        if FIGURES[figure].needs_trajectories and exp["record_every"] == 0:
            raise ConfigError(
                f"config: {where}.figures: {figure} draws recorded trajectories, but record_every is 0"
            )
    if "phase" in exp:
        from ..phase import PHASE_DEFAULTS

        exp["phase"] = {**PHASE_DEFAULTS, **(exp["phase"] or {})}
        if exp["datasets"]:
            raise ConfigError(f"config: {where}.phase: a phase diagram scores runs by their reconstruction "
                              f"error, which needs a ground truth: give ranks, not datasets ({exp['datasets']})")
        for key in ("init_scales", "lrs"):
            for depth, values in lists_per_key(exp[key], exp["depths"], f"{where}.{key}", "depth"):
                if len(values) > 1:
                    raise ConfigError(f"config: {where}.phase: a phase diagram has one method per depth, so one "
                                      f"value of {key} per depth; depth {depth} has {values}")
    return exp
