import hashlib
import re
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dmfcore.io import DataFileError
from dmfcore.problems import CompletionObservations
from dmfcore.ratings import (
    MOVIELENS_100K_SHA256,
    MOVIELENS_100K_URL,
    Ratings,
    baseline_test_errors,
    download_ratings,
    read_ratings,
    split_ratings,
)

# The real data lives beside the project, never in it (see ../shared/data/README.md)
REAL_U_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/ml-100k/u.data"

# (user_id, item_id, rating) 1-based, as in a u.data file: 3 users x 4 items, 7 ratings
SMALL = [(1, 1, 5), (2, 3, 3), (1, 4, 1), (3, 2, 4), (2, 1, 2), (3, 4, 5), (1, 2, 3)]


def write_u_data(path: Path, rows, newline: str = "\n") -> Path:
    """A GroupLens-style file: ``user<TAB>item<TAB>rating<TAB>timestamp`` per line."""
    path.write_text("".join(f"{u}\t{i}\t{r}\t88125{k}{newline}" for k, (u, i, r) in enumerate(rows)))
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def small_lines() -> list[str]:
    return [f"{u}\t{i}\t{r}\t0" for u, i, r in SMALL]


def error_at(path: Path, line: int, reason: str) -> str:
    """The pattern of a DataFileError message: ``<path>:<line>: <reason>``."""
    return re.escape(f"{path}:{line}: {reason}")


# ----------------------------------------------------------------------------------------
# read_ratings


def test_read_valid_file_round_trip(tmp_path):
    path = write_u_data(tmp_path / "u.data", SMALL)
    ratings = read_ratings(path)
    assert isinstance(ratings, Ratings)
    assert ratings.m == 7
    assert ratings.shape == (3, 4)
    assert ratings.source == str(path)
    np.testing.assert_array_equal(ratings.users, [u - 1 for u, _, _ in SMALL])
    np.testing.assert_array_equal(ratings.items, [i - 1 for _, i, _ in SMALL])
    np.testing.assert_array_equal(ratings.values, [r for _, _, r in SMALL])
    assert ratings.users.dtype == ratings.items.dtype == np.int64
    assert ratings.values.dtype == np.float64
    with pytest.raises(AttributeError):  # frozen
        ratings.shape = (1, 1)


def test_read_with_shape_allows_unrated_users_and_items(tmp_path):
    ratings = read_ratings(write_u_data(tmp_path / "u.data", SMALL), shape=(10, 20))
    assert ratings.shape == (10, 20)
    assert ratings.m == 7
    with pytest.raises(ValueError, match="shape"):
        read_ratings(tmp_path / "u.data", shape=(0, 4))


def test_equivalent_spellings_read_the_same(tmp_path):
    """CRLF, a byte order mark, trailing blank lines, '4.0', '+2', an empty timestamp."""
    plain = read_ratings(write_u_data(tmp_path / "plain", SMALL))
    crlf = read_ratings(write_u_data(tmp_path / "crlf", SMALL, newline="\r\n"))
    lines = small_lines()
    lines[3] = "3\t2\t4.0\t"  # empty timestamp: the column is not used
    lines[1] = "+2\t3\t3e0\t0"  # not the canonical layout: parsed by the line-by-line reader
    odd = tmp_path / "odd"
    odd.write_bytes(b"\xef\xbb\xbf" + ("\r\n".join(lines) + "\r\n\r\n  \n\n").encode())
    for other in (crlf, read_ratings(odd)):
        assert other.shape == plain.shape
        for name in ("users", "items", "values"):
            np.testing.assert_array_equal(getattr(other, name), getattr(plain, name))


def test_non_integer_ratings_are_kept(tmp_path):
    ratings = read_ratings(write_lines(tmp_path / "u.data", ["1\t1\t3.5\t0", "2\t2\t1\t0"]))
    np.testing.assert_array_equal(ratings.values, [3.5, 1.0])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1\t2\t3", "expected 4 tab-separated columns, got 3"),
        ("1\t2\t3\t0\t9", "expected 4 tab-separated columns, got 5"),
        ("1 2 3 0", "expected 4 tab-separated columns, got 1"),
        ("x\t2\t3\t0", "user id 'x' is not an integer"),
        ("1.5\t2\t3\t0", "user id '1.5' is not an integer"),
        ("1\t\t3\t0", "item id '' is not an integer"),
        ("0\t2\t3\t0", "user id 0 is out of range: ids are 1-based"),
        ("1\t-2\t3\t0", "item id -2 is out of range: ids are 1-based"),
        ("1\t2\tgood\t0", "rating 'good' is not a number"),
        ("1\t2\tnan\t0", "rating 'nan' is not a number"),
        ("1\t2\t6\t0", "rating 6 is outside [1, 5]"),
        ("1\t2\t0.5\t0", "rating 0.5 is outside [1, 5]"),
        ("99999999999\t2\t3\t0", "user id 99999999999 exceeds the largest supported id"),
    ],
)
def test_bad_line_is_named(tmp_path, line, reason):
    lines = small_lines()
    lines.insert(4, line)  # line 5 of the file
    path = write_lines(tmp_path / "u.data", lines)
    with pytest.raises(DataFileError, match=error_at(path, 5, reason)):
        read_ratings(path)


def test_first_bad_line_is_reported(tmp_path):
    lines = small_lines()
    lines[1] = "1\t2\t7\t0"
    lines[5] = "1\t2"
    path = write_lines(tmp_path / "u.data", lines)
    with pytest.raises(DataFileError, match=error_at(path, 2, "rating 7 is outside")):
        read_ratings(path)


def test_ids_beyond_the_given_shape(tmp_path):
    path = write_u_data(tmp_path / "u.data", SMALL)  # user 3 on line 4, item 4 on line 3
    with pytest.raises(DataFileError, match=error_at(path, 4, "user id 3 exceeds n_users = 2")):
        read_ratings(path, shape=(2, 4))
    with pytest.raises(DataFileError, match=error_at(path, 3, "item id 4 exceeds n_items = 3")):
        read_ratings(path, shape=(3, 3))


def test_duplicate_pair_names_both_lines(tmp_path):
    lines = small_lines() + ["2\t3\t5\t0"]  # repeats (2, 3) of line 2 on line 8
    path = write_lines(tmp_path / "u.data", lines)
    reason = "duplicate rating of user 2, item 3 (first rated on line 2)"
    with pytest.raises(DataFileError, match=error_at(path, 8, reason)):
        read_ratings(path)


def test_first_of_several_duplicates_is_reported(tmp_path):
    lines = small_lines() + ["3\t4\t1\t0", "1\t1\t1\t0", "1\t1\t2\t0"]  # lines 8, 9, 10
    path = write_lines(tmp_path / "u.data", lines)
    reason = "duplicate rating of user 3, item 4 (first rated on line 6); 3 repeated lines in all"
    with pytest.raises(DataFileError, match=error_at(path, 8, reason)):
        read_ratings(path)


def test_blank_line_inside_the_file(tmp_path):
    lines = small_lines()
    lines.insert(2, "")
    path = write_lines(tmp_path / "u.data", lines)
    with pytest.raises(DataFileError, match=error_at(path, 3, "blank line")):
        read_ratings(path)


def test_empty_and_missing_files(tmp_path):
    for name, content in (("empty", ""), ("blank", "\n \n\r\n")):
        path = tmp_path / name
        path.write_text(content)
        with pytest.raises(DataFileError, match=re.escape(f"{path}: no ratings (the file is empty)")):
            read_ratings(path)
    missing = tmp_path / "nowhere" / "u.data"
    with pytest.raises(DataFileError, match=re.escape(f"{missing}: no such file")):
        read_ratings(missing)


def test_not_utf8_names_the_line(tmp_path):
    path = tmp_path / "u.data"
    path.write_bytes(b"1\t1\t5\t0\n2\t2\t\xff\t0\n")
    with pytest.raises(DataFileError, match=error_at(path, 2, "not UTF-8 text")):
        read_ratings(path)


# ----------------------------------------------------------------------------------------
# split_ratings


def many_ratings(tmp_path, n_users=30, n_items=40, m=300, seed=0) -> Ratings:
    rng = np.random.default_rng(seed)
    flat = rng.choice(n_users * n_items, size=m, replace=False)
    rows = [(f // n_items + 1, f % n_items + 1, int(rng.integers(1, 6))) for f in flat]
    return read_ratings(write_u_data(tmp_path / "u.data", rows), shape=(n_users, n_items))


def positions(ratings: Ratings, obs: CompletionObservations) -> np.ndarray:
    """Where each observation sits in the file (pairs are unique, so this is well defined)."""
    key = {(u, i): k for k, (u, i) in enumerate(zip(ratings.users.tolist(), ratings.items.tolist()))}
    return np.array([key[(u, i)] for u, i in zip(obs.rows.tolist(), obs.cols.tolist())])


@pytest.mark.parametrize("split", ["file_order", "random"])
def test_split_partitions_the_ratings(tmp_path, split):
    ratings = many_ratings(tmp_path)
    train, test = split_ratings(ratings, 120, split, seed=(3, 1))
    assert (train.m, test.m) == (120, 180)
    assert train.shape == test.shape == ratings.shape
    where_train, where_test = positions(ratings, train), positions(ratings, test)
    assert np.intersect1d(where_train, where_test).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([where_train, where_test])), np.arange(300))
    # file order within each part, and the values travel with their (user, item)
    assert np.all(np.diff(where_train) > 0) and np.all(np.diff(where_test) > 0)
    np.testing.assert_array_equal(train.values, ratings.values[where_train])
    np.testing.assert_array_equal(test.values, ratings.values[where_test])


def test_file_order_split_is_the_prefix(tmp_path):
    ratings = many_ratings(tmp_path)
    train, test = split_ratings(ratings, 100, "file_order", seed=None)
    np.testing.assert_array_equal(train.rows, ratings.users[:100])
    np.testing.assert_array_equal(train.cols, ratings.items[:100])
    np.testing.assert_array_equal(test.rows, ratings.users[100:])
    np.testing.assert_array_equal(test.values, ratings.values[100:])


def test_random_split_depends_only_on_the_seed(tmp_path):
    ratings = many_ratings(tmp_path)
    first, _ = split_ratings(ratings, 100, "random", seed=(7, 2))
    again, _ = split_ratings(ratings, 100, "random", seed=(7, 2))
    other, _ = split_ratings(ratings, 100, "random", seed=(7, 3))
    np.testing.assert_array_equal(positions(ratings, first), positions(ratings, again))
    assert not np.array_equal(positions(ratings, first), positions(ratings, other))
    assert not np.array_equal(positions(ratings, first), np.arange(100))


def test_split_argument_errors(tmp_path):
    ratings = many_ratings(tmp_path)
    for n_train in (0, 300, 301, -1, 2.5, True):
        with pytest.raises(ValueError, match="n_train"):
            split_ratings(ratings, n_train, "file_order", seed=0)
    with pytest.raises(ValueError, match="unknown split 'by_user'"):
        split_ratings(ratings, 10, "by_user", seed=0)
    with pytest.raises(ValueError, match="seed"):
        split_ratings(ratings, 10, "random", seed=None)


# ----------------------------------------------------------------------------------------
# baselines


def test_baselines_by_hand():
    shape = (2, 2)
    train = CompletionObservations(shape, np.array([0, 0]), np.array([0, 1]), np.array([2.0, 4.0]))
    test = CompletionObservations(shape, np.array([1, 1]), np.array([0, 1]), np.array([1.0, 5.0]))
    errors = baseline_test_errors(train, test)
    # training mean 3: ((1 - 3)^2 + (5 - 3)^2) / 2 = 4; zeros: (1 + 25) / 2 = 13
    assert errors == {"mean_predictor": pytest.approx(4.0), "zero_predictor": pytest.approx(13.0)}


# ----------------------------------------------------------------------------------------
# download


def make_zip(tmp_path: Path, member: str, content: bytes) -> tuple[Path, str]:
    archive = tmp_path / "ratings.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/README", "not the ratings")
        zf.writestr(member, content)
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def test_download_good_checksum_extracts(tmp_path):
    content = "".join(f"{u}\t{i}\t{r}\t0\n" for u, i, r in SMALL).encode()
    archive, digest = make_zip(tmp_path, "ml-100k/u.data", content)
    dest = tmp_path / "data" / "ml-100k" / "u.data"
    assert download_ratings(archive.as_uri(), dest, digest.upper()) == dest
    assert dest.read_bytes() == content
    assert sorted(p.name for p in dest.parent.iterdir()) == ["u.data"]  # no temporary left
    assert read_ratings(dest).m == len(SMALL)


def test_download_bad_checksum_leaves_nothing(tmp_path):
    archive, digest = make_zip(tmp_path, "ml-100k/u.data", b"1\t1\t5\t0\n")
    url = archive.as_uri()
    dest = tmp_path / "data" / "u.data"
    wrong = "0" * 64
    with pytest.raises(DataFileError, match=f"{re.escape(url)}: SHA-256 mismatch: expected {wrong}, got {digest}"):
        download_ratings(url, dest, wrong)
    assert not dest.exists() and not dest.parent.exists()


def test_download_missing_member_and_bad_url(tmp_path):
    archive, digest = make_zip(tmp_path, "ml-1m/ratings.dat", b"1::1::5::0\n")
    dest = tmp_path / "data" / "u.data"
    with pytest.raises(DataFileError, match="no member 'ml-100k/u.data'"):
        download_ratings(archive.as_uri(), dest, digest)
    assert not dest.exists()
    with pytest.raises(DataFileError, match="download failed"):
        download_ratings((tmp_path / "absent.zip").as_uri(), dest, digest)
    assert not dest.exists()


def test_movielens_constants():
    assert MOVIELENS_100K_URL.endswith("/ml-100k.zip")
    assert re.fullmatch("[0-9a-f]{64}", MOVIELENS_100K_SHA256)


# ----------------------------------------------------------------------------------------
# the real MovieLens 100K copy, where this machine has one


def test_real_movielens_100k():
    if not REAL_U_DATA.is_file():
        pytest.skip(f"no MovieLens 100K copy at {REAL_U_DATA}")
    start = time.perf_counter()
    ratings = read_ratings(REAL_U_DATA)
    parse_s = time.perf_counter() - start
    assert ratings.m == 100_000
    assert ratings.shape == (943, 1682)
    assert np.array_equal(ratings.values, np.round(ratings.values))
    assert ratings.values.min() == 1 and ratings.values.max() == 5
    assert np.unique(ratings.users * ratings.shape[1] + ratings.items).size == ratings.m
    # order-independent facts of MovieLens 100K, true of any complete copy
    np.testing.assert_array_equal(np.bincount(ratings.values.astype(int))[1:], [6110, 11370, 27145, 34174, 21201])
    assert np.unique(ratings.users).size == 943 and np.unique(ratings.items).size == 1682

    train, test = split_ratings(ratings, 10_000, "file_order", seed=None)
    assert (train.m, test.m) == (10_000, 90_000)
    errors = baseline_test_errors(train, test)
    assert 1.0 < errors["mean_predictor"] < 1.5 < 10 < errors["zero_predictor"] < 16
    print(
        f"\nMovieLens 100K: parsed in {parse_s:.3f} s; file-order split 10,000/90,000: "
        f"training mean {train.values.mean():.5f}, test MSE mean predictor "
        f"{errors['mean_predictor']:.5f}, zero predictor {errors['zero_predictor']:.5f}"
    )
