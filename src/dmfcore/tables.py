"""Results become one table per experiment: its runs' and reference rows' one-row records, and
its runs' trajectories, each checked to come from today's code (:mod:`dmfcore.provenance`)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .io import write_parquet
from .provenance import StaleResultError


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
