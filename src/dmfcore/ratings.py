"""Real rating data (MovieLens 100K) as matrix completion observations.

File format (GroupLens ``u.data``): one rating per line, four tab-separated columns::

    user_id <TAB> item_id <TAB> rating <TAB> timestamp

- ``user_id``, ``item_id``: 1-based integers; the matrix is ``n_users x n_items`` and the
  rating of user ``u`` for item ``i`` is the entry ``W[u - 1, i - 1]``;
- ``rating``: a number in ``[1, 5]`` (MovieLens 100K: the integers 1..5);
- ``timestamp``: not used and not checked (some copies store 0 there);
- each (user, item) pair appears at most once; blank lines are allowed only at the end;
  ``\\r\\n`` line endings and a UTF-8 byte order mark are accepted.

Every problem is reported as a :class:`dmfcore.io.DataFileError` whose message starts with
``<path>:<line>:`` (1-based line number), e.g. ``u.data:17: expected 4 tab-separated
columns, got 3``.

Train/test split: the paper trains on ``n_train`` of the ``m`` ratings and reports the mean
squared error on the other ``m - n_train`` (MovieLens 100K: 10,000 / 90,000).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .io import DataFileError, atomic_path
from .problems import CompletionObservations

MOVIELENS_100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
MOVIELENS_100K_SHA256 = "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"

SPLITS = ("file_order", "random")

N_COLUMNS = 4
MIN_RATING = 1.0
MAX_RATING = 5.0
# Ids index rows and columns of a dense matrix; anything beyond int32 is a corrupt file,
# and the cap keeps ``user * n_items + item`` (the duplicate check) far from int64 overflow.
MAX_ID = 2**31 - 1


@dataclass(frozen=True)
class Ratings:
    """Ratings ``values[k]`` of user ``users[k]`` for item ``items[k]``, in file order.

    ``users``, ``items`` are 0-based (int64), ``values`` float64, all of length ``m``;
    ``shape`` is ``(n_users, n_items)``; ``source`` is the path the ratings were read from.
    """

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]
    source: str

    @property
    def m(self) -> int:
        return int(self.values.shape[0])


# ----------------------------------------------------------------------------------------
# Reading


def read_ratings(path: str | os.PathLike, shape: tuple[int, int] | None = None) -> Ratings:
    """Read and validate a GroupLens ``u.data`` ratings file (format: module docstring).

    With ``shape = (n_users, n_items)`` the ids must satisfy ``1 <= user_id <= n_users`` and
    ``1 <= item_id <= n_items``; without it the shape is ``(max user_id, max item_id)``.
    Raises :class:`DataFileError` naming the file and the offending line.
    """
    if shape is not None:
        shape = _checked_shape(shape)
    lines = _read_lines(path)
    parsed = _parse_canonical(lines, shape)
    if parsed is None:
        parsed = _parse_line_by_line(lines, shape, path)
    users, items, values = parsed
    if shape is None:
        shape = (int(users.max()), int(items.max()))
    _check_no_duplicates(users, items, shape, path)
    return Ratings(users - 1, items - 1, values, shape, str(path))


def _checked_shape(shape: tuple[int, int]) -> tuple[int, int]:
    dims = tuple(shape)
    if len(dims) != 2 or not all(
        isinstance(d, (int, np.integer)) and not isinstance(d, bool) and 1 <= d <= MAX_ID for d in dims
    ):
        raise ValueError(f"shape must be two positive integers (n_users, n_items), got {shape!r}")
    return int(dims[0]), int(dims[1])


def _read_lines(path: str | os.PathLike) -> list[str]:
    """The file's lines without line endings and without trailing blank lines (never empty)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DataFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8-sig")  # -sig: drop the byte order mark Windows tools write
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataFileError(f"{path}:{line}: not UTF-8 text") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFileError(f"{path}: no ratings (the file is empty)")
    return lines


# The canonical layout (ASCII digits, plain decimals): this covers every real u.data, and
# is parsed with one regular expression and three vectorized conversions. Anything else,
# valid or not, goes through the line-by-line parser, which is the reference semantics.
_CANONICAL_ROW = r"[0-9]{1,10}\t[0-9]{1,10}\t[0-9]{1,10}(?:\.[0-9]{1,17})?\t[^\t\n]*"
_CANONICAL_FILE = re.compile(rf"(?:{_CANONICAL_ROW}\n)*{_CANONICAL_ROW}")


def _parse_canonical(
    lines: list[str], shape: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Fast path: 1-based (users, items, values) if the file is canonical and valid, else None.

    Returns None rather than raising, so that every error message comes from one place
    (:func:`_parse_line_by_line`); it accepts only files that parser accepts identically.
    """
    body = "\n".join(lines)
    if not _CANONICAL_FILE.fullmatch(body):
        return None
    fields = body.replace("\n", "\t").split("\t")
    users = np.array(fields[0::N_COLUMNS], dtype=np.int64)
    items = np.array(fields[1::N_COLUMNS], dtype=np.int64)
    values = np.array(fields[2::N_COLUMNS], dtype=np.float64)
    max_user, max_item = shape if shape is not None else (MAX_ID, MAX_ID)
    if (
        users.min() < 1 or users.max() > max_user
        or items.min() < 1 or items.max() > max_item
        or values.min() < MIN_RATING or values.max() > MAX_RATING
    ):
        return None
    return users, items, values


_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _parse_line_by_line(
    lines: list[str], shape: tuple[int, int] | None, path: str | os.PathLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference parser: 1-based (users, items, values); raises at the first bad line."""
    max_user, max_item = shape if shape is not None else (MAX_ID, MAX_ID)
    users: list[int] = []
    items: list[int] = []
    values: list[float] = []
    for number, line in enumerate(lines, start=1):
        try:
            if not line.strip():
                raise ValueError("blank line (blank lines are allowed only at the end of the file)")
            columns = line.split("\t")
            if len(columns) != N_COLUMNS:
                raise ValueError(f"expected {N_COLUMNS} tab-separated columns, got {len(columns)}")
            users.append(_parse_id(columns[0], "user", max_user, "n_users"))
            items.append(_parse_id(columns[1], "item", max_item, "n_items"))
            values.append(_parse_rating(columns[2]))
        except ValueError as exc:
            raise DataFileError(f"{path}:{number}: {exc}") from None
    return (
        np.array(users, dtype=np.int64),
        np.array(items, dtype=np.int64),
        np.array(values, dtype=np.float64),
    )


def _parse_id(text: str, what: str, max_id: int, bound_name: str) -> int:
    """A 1-based id in ``[1, max_id]``; ValueError with the reason otherwise."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{what} id {text!r} is not an integer")
    value = int(text)
    if value < 1:
        raise ValueError(f"{what} id {value} is out of range: ids are 1-based")
    if value > max_id:
        bound = f"{bound_name} = {max_id}" if max_id != MAX_ID else f"the largest supported id {MAX_ID}"
        raise ValueError(f"{what} id {value} exceeds {bound}")
    return value


def _parse_rating(text: str) -> float:
    """A rating in ``[MIN_RATING, MAX_RATING]``; ValueError with the reason otherwise."""
    # A pattern rather than bare float(): float() also takes 'nan', 'inf', ' 3' and '3_0'
    if not _DECIMAL.fullmatch(text):
        raise ValueError(f"rating {text!r} is not a number")
    value = float(text)
    if not MIN_RATING <= value <= MAX_RATING:
        raise ValueError(f"rating {text} is outside [{MIN_RATING:g}, {MAX_RATING:g}]")
    return value


def _check_no_duplicates(
    users: np.ndarray, items: np.ndarray, shape: tuple[int, int], path: str | os.PathLike
) -> None:
    """Raise at the first line that repeats an earlier (user, item) pair (1-based ids).

    Data row ``k`` is line ``k + 1``: both parsers reject blank lines before the last rating.
    """
    flat = (users - 1) * shape[1] + (items - 1)
    order = np.argsort(flat, kind="stable")  # stable: equal pairs stay in file order
    sorted_flat = flat[order]
    repeats = np.flatnonzero(sorted_flat[1:] == sorted_flat[:-1]) + 1
    if repeats.size == 0:
        return
    later = int(order[repeats].min())
    first = int(np.flatnonzero(flat == flat[later])[0])
    more = f"; {repeats.size} repeated lines in all" if repeats.size > 1 else ""
    raise DataFileError(
        f"{path}:{later + 1}: duplicate rating of user {users[later]}, item {items[later]} "
        f"(first rated on line {first + 1}){more}"
    )


# ----------------------------------------------------------------------------------------
# Train/test split and trivial baselines


def split_ratings(
    ratings: Ratings, n_train: int, split: str, seed: Any
) -> tuple[CompletionObservations, CompletionObservations]:
    """Split the ratings into (train, test) observation sets of sizes ``n_train``, ``m - n_train``.

    - ``"file_order"``: the first ``n_train`` ratings of the file are the train set (the
      paper's split: the authors' stored copy is shuffled, so a prefix is a uniform random
      subset); ``seed`` is ignored.
    - ``"random"``: a uniformly random ``n_train``-subset drawn with
      ``np.random.default_rng(seed)``; ``seed`` is anything default_rng accepts except None.

    Both parts keep the ratings in file order, and both have the matrix shape of ``ratings``.
    """
    m = ratings.m
    if not isinstance(n_train, (int, np.integer)) or isinstance(n_train, bool) or not 1 <= n_train < m:
        raise ValueError(f"n_train must be an integer with 1 <= n_train < m = {m}, got {n_train!r}")
    if split == "file_order":
        in_train = np.arange(m) < n_train
    elif split == "random":
        if seed is None:  # default_rng(None) draws fresh entropy: the split would not reproduce
            raise ValueError("split='random' needs a seed (None would not be reproducible)")
        in_train = np.zeros(m, dtype=bool)
        in_train[np.random.default_rng(seed).choice(m, size=int(n_train), replace=False)] = True
    else:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    return _observations(ratings, np.flatnonzero(in_train)), _observations(ratings, np.flatnonzero(~in_train))


def _observations(ratings: Ratings, index: np.ndarray) -> CompletionObservations:
    """The ratings at positions ``index`` (increasing) as completion observations."""
    return CompletionObservations(
        ratings.shape, ratings.users[index], ratings.items[index], ratings.values[index]
    )


def baseline_test_errors(train: CompletionObservations, test: CompletionObservations) -> dict[str, float]:
    """Test mean squared errors of two predictors that ignore (user, item).

    - ``mean_predictor``: ``mean_k (y_test_k - ybar)^2`` with ``ybar`` the training mean;
    - ``zero_predictor``: ``mean_k y_test_k^2`` (the all-zeros matrix, e.g. a factorization
      at its small initialization).
    """
    if train.m == 0 or test.m == 0:
        raise ValueError(f"need non-empty train and test sets, got m = {train.m} and {test.m}")
    train_mean = float(np.mean(train.values))
    return {
        "mean_predictor": float(np.mean((test.values - train_mean) ** 2)),
        "zero_predictor": float(np.mean(test.values**2)),
    }


# ----------------------------------------------------------------------------------------
# Download

_CHUNK_BYTES = 1 << 20
_DOWNLOAD_TIMEOUT_S = 60


def download_ratings(
    url: str, dest: str | os.PathLike, sha256: str, member: str = "ml-100k/u.data"
) -> Path:
    """Download the zip at ``url``, check its SHA-256, and extract ``member`` to ``dest``.

    ``url`` is anything urllib opens (https://, file://). The archive is held in an
    anonymous temporary file; ``dest`` is written atomically (replacing any old file) and
    only after the digest matched, so a failure leaves nothing under ``dest``.
    Returns ``Path(dest)``.
    """
    dest = Path(dest)
    expected = sha256.strip().lower()
    with tempfile.TemporaryFile() as archive:
        actual = _download(url, archive)
        if actual != expected:
            raise DataFileError(
                f"{url}: SHA-256 mismatch: expected {expected}, got {actual}; nothing was written to {dest}"
            )
        archive.seek(0)
        try:
            with zipfile.ZipFile(archive) as zf:
                if member not in zf.namelist():
                    listing = ", ".join(zf.namelist()[:10])
                    raise DataFileError(f"{url}: the archive has no member {member!r} (has: {listing})")
                with atomic_path(dest) as tmp, zf.open(member) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK_BYTES)
        except zipfile.BadZipFile as exc:
            raise DataFileError(f"{url}: not a zip archive ({exc})") from exc
    return dest


def _download(url: str, out: Any) -> str:
    """Copy the body at ``url`` into the binary file ``out``; return its SHA-256 hex digest."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            while chunk := response.read(_CHUNK_BYTES):
                digest.update(chunk)
                out.write(chunk)
    # URLError, HTTPError, timeouts and file:// errors are OSErrors; a cut connection is not
    except (OSError, http.client.HTTPException) as exc:
        raise DataFileError(f"{url}: download failed ({exc})") from exc
    return digest.hexdigest()
