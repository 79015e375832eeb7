"""On-disk formats and atomic writes.

Ground truth (``.npz``)::

    W          float64 (d1, d2)   the matrix
    rank       int                its rank
    seed       int                the seed it was drawn with
    symmetric  bool

Observations (``.npz``), ``problem`` = "completion"::

    problem    str                "completion"
    shape      int64 (2,)         (d1, d2)
    rows, cols int64 (m,)         observed positions, in range, no duplicate pair
    values     float64 (m,)       observed values
    m, seed    int

A completion set split from real data (a ratings file) also holds its held-out part and
where it came from::

    test_rows, test_cols  int64 (m_test,)   held-out positions
    test_values           float64 (m_test,) held-out values
    dataset               str               the dataset's identity (e.g. "movielens100k_file_order")
    source_sha256         str               SHA-256 of the ratings file it was split from

or ``problem`` = "sensing"::

    problem    str                "sensing"
    shape      int64 (2,)
    A          float32/64 (m, d1, d2)  measurement matrices
    y          float64 (m,)       y[k] = <A[k], W*>
    m, seed    int

Every writer here writes to a temporary file in the destination folder and renames it
into place, so a killed job never leaves a partial file under the final name.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .problems import CompletionObservations, Observations, SensingObservations


class DataFileError(ValueError):
    """A data file is missing, unreadable or inconsistent; the message names the file."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``.

    A writer killed outright (SIGKILL, a node lost) leaves its temporary file behind; the next
    successful write of the same path removes such leftovers (one job writes a given output at a
    time, so any other ``.<name>.*.tmp`` beside it is an orphan)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        # mkstemp creates 0600 files: give the result the permissions a plain open() would
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
        for orphan in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            orphan.unlink(missing_ok=True)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _save_npz(path: str | os.PathLike, **arrays: Any) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks (a sensing set can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_parquet(path: str | os.PathLike, frame: Any) -> None:
    """Write a pandas DataFrame to Parquet atomically."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def save_ground_truth(path: str | os.PathLike, w: np.ndarray, rank: int, seed: int, symmetric: bool = False) -> None:
    _save_npz(path, W=np.asarray(w, dtype=np.float64), rank=rank, seed=seed, symmetric=symmetric)


def save_observations(
    path: str | os.PathLike,
    obs: Observations,
    seed: int,
    test: CompletionObservations | None = None,
    **metadata: Any,
) -> None:
    """An observation set; ``test`` (completion only) is its held-out part."""
    if isinstance(obs, CompletionObservations):
        held_out = {} if test is None else {
            "test_rows": test.rows, "test_cols": test.cols, "test_values": test.values,
        }
        _save_npz(
            path, problem="completion", shape=np.array(obs.shape), rows=obs.rows, cols=obs.cols,
            values=obs.values, m=obs.m, seed=seed, **held_out, **metadata,
        )
    else:
        _save_npz(path, problem="sensing", shape=np.array(obs.shape), A=obs.A, y=obs.y, m=obs.m, seed=seed)


def save_matrix(path: str | os.PathLike, w: np.ndarray, **metadata: Any) -> None:
    """A result matrix ``W`` with scalar metadata."""
    _save_npz(path, W=np.asarray(w, dtype=np.float64), **metadata)


def _open_npz(
    path: str | os.PathLike, required: tuple[str, ...], optional: tuple[str, ...] | None = ()
) -> dict[str, np.ndarray]:
    """The arrays ``required`` (an error names any missing) and those of ``optional`` that the
    file has; ``optional=None`` loads every array. Only these are read: a sensing set's
    measurement matrices are not loaded to look up its metadata."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as npz:
            names = npz.files
            wanted = names if optional is None else [k for k in names if k in required or k in optional]
            data = {k: npz[k] for k in wanted}
    except Exception as exc:  # zipfile/pickle/format errors all mean the same to a user
        raise DataFileError(
            f"{path}: not a readable .npz file ({exc}); if the workflow made it, delete it and rerun "
            "snakemake to regenerate it"
        ) from exc
    missing = [k for k in required if k not in names]
    if missing:
        raise DataFileError(f"{path}: missing array(s) {missing}; has {sorted(names)}")
    return data


def _fail(path: Any, msg: str) -> None:
    raise DataFileError(f"{path}: {msg}")


def load_ground_truth(path: str | os.PathLike) -> np.ndarray:
    """Load and validate a ground truth matrix (2-D, floating, finite)."""
    w = _open_npz(path, ("W",))["W"]
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.floating):
        _fail(path, f"W must be a 2-D float array, got {w.dtype} with shape {w.shape}")
    if not np.all(np.isfinite(w)):
        _fail(path, "W contains NaN or inf")
    return w.astype(np.float64)


def _completion_entries(
    path: Any, shape: tuple[int, int], data: dict[str, np.ndarray], prefix: str = "", what: str = "observed"
) -> CompletionObservations:
    """The validated entries ``{prefix}rows``, ``{prefix}cols``, ``{prefix}values`` of a file:
    1-D integer positions in range, float values, equally long, not empty, no pair twice, finite."""
    names = [f"{prefix}{k}" for k in ("rows", "cols", "values")]
    missing = [k for k in names if k not in data]
    if missing:
        _fail(path, f"missing array(s) {missing}")
    rows, cols, values = (data[k] for k in names)
    for name, arr in zip(names, (rows, cols)):
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            _fail(path, f"{name} must be a 1-D integer array, got {arr.dtype} with shape {arr.shape}")
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.floating):
        _fail(path, f"{names[2]} must be a 1-D float array, got {values.dtype} with shape {values.shape}")
    if not (rows.shape == cols.shape == values.shape):
        _fail(path, f"{', '.join(names)} lengths differ: {rows.shape}, {cols.shape}, {values.shape}")
    if rows.size == 0:
        _fail(path, "no observations" if not prefix else f"no {what} observations")
    d1, d2 = shape
    if rows.min() < 0 or rows.max() >= d1 or cols.min() < 0 or cols.max() >= d2:
        _fail(path, f"{what} indices out of range for shape {shape}")
    flat = rows.astype(np.int64) * d2 + cols
    if np.unique(flat).size != flat.size:
        _fail(path, f"{flat.size - np.unique(flat).size} duplicate {what} entries")
    if not np.all(np.isfinite(values)):
        _fail(path, f"{names[2]} contain NaN or inf")
    return CompletionObservations(shape, rows.astype(np.int64), cols.astype(np.int64), values.astype(np.float64))


def load_test_observations(path: str | os.PathLike) -> CompletionObservations | None:
    """The held-out part of an observation set split from real data (None if it has none)."""
    data = _open_npz(path, ("problem", "shape"), ("test_rows", "test_cols", "test_values"))
    if "test_values" not in data:
        return None
    shape = tuple(int(s) for s in np.ravel(data["shape"]))
    return _completion_entries(path, shape, data, prefix="test_", what="held-out")


def observation_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of an observation set (``dataset``, ``source_sha256``), if any."""
    data = _open_npz(path, ("problem",), ("dataset", "source_sha256"))
    return {k: str(data[k]) for k in ("dataset", "source_sha256") if k in data}


def load_observations(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> Observations:
    """Load and validate an observation set; ``shape`` (if given) must match the file's."""
    data = _open_npz(path, ("problem", "shape"))
    problem = str(data["problem"])
    file_shape = tuple(int(s) for s in np.ravel(data["shape"]))
    if len(file_shape) != 2 or min(file_shape) < 1:
        _fail(path, f"shape must be two positive integers, got {file_shape}")
    if shape is not None and tuple(shape) != file_shape:
        _fail(path, f"shape {file_shape} does not match the ground truth's {tuple(shape)}")
    d1, d2 = file_shape
    if problem == "completion":
        return _completion_entries(path, file_shape, _open_npz(path, ("rows", "cols", "values")))
    if problem == "sensing":
        data = _open_npz(path, ("A", "y"))
        a, y = data["A"], data["y"]
        if a.ndim != 3 or a.shape[1:] != file_shape or not np.issubdtype(a.dtype, np.floating):
            _fail(path, f"A must be a float array of shape (m, {d1}, {d2}), got {a.dtype} {a.shape}")
        if y.ndim != 1 or y.shape[0] != a.shape[0] or not np.issubdtype(y.dtype, np.floating):
            _fail(path, f"y must be a float array of shape ({a.shape[0]},), got {y.dtype} {y.shape}")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(y))):
            _fail(path, "A or y contains NaN or inf")
        return SensingObservations(file_shape, a, y.astype(np.float64))
    _fail(path, f"unknown problem {problem!r} (expected 'completion' or 'sensing')")
    raise AssertionError  # unreachable
