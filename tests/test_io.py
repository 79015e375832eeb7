import numpy as np
import pytest

from dmfcore.io import (
    DataFileError,
    atomic_path,
    load_ground_truth,
    load_observations,
    save_ground_truth,
    save_observations,
)
from dmfcore.problems import (
    CompletionObservations,
    low_rank_ground_truth,
    sample_completion,
    sample_sensing,
)


def test_ground_truth_properties():
    w = low_rank_ground_truth(20, 12, 3, seed=5)
    assert np.linalg.matrix_rank(w) == 3
    assert np.linalg.norm(w) == pytest.approx(np.sqrt(20 * 12))
    np.testing.assert_array_equal(w, low_rank_ground_truth(20, 12, 3, seed=5))
    s = low_rank_ground_truth(10, 10, 2, seed=0, symmetric=True)
    np.testing.assert_allclose(s, s.T)
    with pytest.raises(ValueError, match="rank"):
        low_rank_ground_truth(4, 4, 5, seed=0)
    with pytest.raises(ValueError, match="symmetric"):
        low_rank_ground_truth(4, 5, 2, seed=0, symmetric=True)


def test_completion_sampling_without_replacement():
    w = low_rank_ground_truth(10, 10, 2, 0)
    obs = sample_completion(w, 60, seed=1)
    flat = obs.rows * 10 + obs.cols
    assert np.unique(flat).size == 60
    np.testing.assert_array_equal(obs.values, w[obs.rows, obs.cols])
    with pytest.raises(ValueError, match="n_obs"):
        sample_completion(w, 101, seed=1)
    with pytest.raises(ValueError, match="n_obs"):
        sample_completion(w, 0, seed=1)


def test_sensing_measurements():
    w = low_rank_ground_truth(10, 8, 2, 0)
    obs = sample_sensing(w, 500, seed=2, dtype="float64")
    assert obs.A.shape == (500, 10, 8)
    assert np.var(obs.A) == pytest.approx(1 / 80, rel=0.05)
    np.testing.assert_allclose(obs.y, np.einsum("kij,ij->k", obs.A, w))


def test_roundtrip(tmp_path):
    w = low_rank_ground_truth(9, 7, 2, 0)
    save_ground_truth(tmp_path / "gt.npz", w, rank=2, seed=0)
    np.testing.assert_array_equal(load_ground_truth(tmp_path / "gt.npz"), w)
    for obs in (sample_completion(w, 20, 0), sample_sensing(w, 15, 0)):
        save_observations(tmp_path / "obs.npz", obs, seed=0)
        back = load_observations(tmp_path / "obs.npz", shape=(9, 7))
        assert type(back) is type(obs) and back.m == obs.m
    assert not list(tmp_path.glob(".*tmp"))


def _write(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize(
    "arrays, message",
    [
        (dict(problem="completion", shape=[3, 3], rows=[0, 5], cols=[0, 1], values=[1.0, 2.0]), "out of range"),
        (dict(problem="completion", shape=[3, 3], rows=[1, 1], cols=[2, 2], values=[1.0, 1.0]), "duplicate"),
        (dict(problem="completion", shape=[3, 3], rows=[0.0], cols=[0], values=[1.0]), "rows must be a 1-D integer"),
        (dict(problem="completion", shape=[3, 3], rows=[0, 1], cols=[0], values=[1.0]), "lengths differ"),
        (dict(problem="completion", shape=[3, 3], rows=[0], cols=[0]), "missing array"),
        (dict(problem="sensing", shape=[3, 3], A=np.zeros((2, 3, 4)), y=[0.0, 0.0]), "A must be"),
        (dict(problem="sensing", shape=[3, 3], A=np.zeros((2, 3, 3)), y=[0.0]), "y must be"),
        (dict(problem="tensor", shape=[3, 3]), "unknown problem"),
    ],
)
def test_bad_observation_files_name_the_file(tmp_path, arrays, message):
    path = tmp_path / "bad_obs.npz"
    _write(path, **{k: np.asarray(v) for k, v in arrays.items()})
    with pytest.raises(DataFileError, match=message) as info:
        load_observations(path)
    assert "bad_obs.npz" in str(info.value)


def test_missing_corrupt_and_mismatched_files(tmp_path):
    with pytest.raises(DataFileError, match="no such file"):
        load_ground_truth(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataFileError, match="junk.npz: not a readable"):
        load_ground_truth(tmp_path / "junk.npz")
    _write(tmp_path / "gt.npz", W=np.array([1.0, np.nan]))
    with pytest.raises(DataFileError, match="2-D"):
        load_ground_truth(tmp_path / "gt.npz")
    obs = CompletionObservations((4, 4), np.array([0]), np.array([0]), np.array([1.0]))
    save_observations(tmp_path / "obs.npz", obs, 0)
    with pytest.raises(DataFileError, match="does not match"):
        load_observations(tmp_path / "obs.npz", shape=(5, 5))


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_writes_get_default_permissions(tmp_path):
    import os

    umask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(umask)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644


def test_a_write_removes_what_a_killed_writer_left_behind(tmp_path):
    """A writer killed outright leaves its temporary file; the next write of that path removes it."""
    from dmfcore.io import atomic_path

    target = tmp_path / "metrics.json"
    orphan = tmp_path / ".metrics.json.abc123.tmp"
    orphan.write_text("partial")
    other = tmp_path / ".matrix.npz.abc123.tmp"  # another output's leftover is not this write's to remove
    other.write_text("partial")
    with atomic_path(target) as tmp:
        tmp.write_text("{}")
    assert target.read_text() == "{}"
    assert not orphan.exists() and other.exists()
