"""Real data through the library: ratings split into train and test, runs scored on the test
set, constant-prediction baselines; long runs checkpoint and resume bit for bit; the recorded
curves are those of gradient flow."""

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dmfcore.backend import resolve_backend
from dmfcore.real_data import predictor_record
from dmfcore.real_data import generate_ratings_split
from dmfcore.runs import run_dmf
from dmfcore.runspec import TrainConfig
from dmfcore.records import RunOutputs
from dmfcore.io import DataFileError, load_observations, load_test_observations
from dmfcore.model import init_factors
from dmfcore.optimizers import gd, group_rmsprop
from dmfcore.problems import low_rank_ground_truth, make_objective, sample_completion
from dmfcore.ratings import baseline_test_errors, read_ratings
from dmfcore.checkpoints import Checkpointing
from dmfcore.training import train


def write_ratings(path, n_users=30, n_items=40, m=500, seed=0):
    """A GroupLens-style file of ratings 1..5 from a rank-2 matrix, in random order."""
    rng = np.random.default_rng(seed)
    truth = 3 + 1.5 * np.tanh(rng.standard_normal((n_users, 2)) @ rng.standard_normal((2, n_items)))
    cells = rng.choice(n_users * n_items, size=m, replace=False)
    lines = [f"{c // n_items + 1}\t{c % n_items + 1}\t{int(np.clip(np.rint(truth.flat[c]), 1, 5))}\t0"
             for c in cells]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_ratings_split_trains_and_scores_on_held_out_ratings(tmp_path):
    ratings = write_ratings(tmp_path / "u.data")
    obs_path = tmp_path / "split.npz"
    generate_ratings_split(ratings, obs_path, n_train=300, split="file_order", seed=0, shape=(30, 40),
                           dataset="toy_file_order")
    train_set, test_set = load_observations(obs_path), load_test_observations(obs_path)
    assert train_set.m == 300 and test_set.m == 200 and train_set.shape == (30, 40)
    everything = read_ratings(ratings)
    assert np.array_equal(train_set.values, everything.values[:300])  # the file's first 300
    config = TrainConfig(depth=2, init="identity", init_scale=1e-3, optimizer="gd", lr=0.5, max_iters=3000,
                         record_every=500)
    out = tmp_path / "run"
    record = run_dmf(None, obs_path, config, RunOutputs(out / "m.npz", out / "metrics.json", out / "run.log",
                                                        out / "trajectory.parquet"))
    assert record["dataset"] == "toy_file_order" and record["rank"] is None and "recon_error" not in record
    with np.load(out / "m.npz") as npz:
        w = npz["W"]
    assert record["test_error"] == pytest.approx(np.mean((w[test_set.rows, test_set.cols] - test_set.values) ** 2))
    baselines = baseline_test_errors(train_set, test_set)
    assert record["test_error"] < baselines["mean_predictor"] < baselines["zero_predictor"]
    traj = pd.read_parquet(out / "trajectory.parquet")
    assert traj["test_error"].iloc[-1] == pytest.approx(record["test_error"], rel=1e-4)
    assert record["min_test_error"] == traj["test_error"].min() <= traj["test_error"].iloc[-1]
    assert traj["test_error"].iloc[0] == pytest.approx(baselines["zero_predictor"], rel=1e-2)  # W(0) ~ 0
    for predictor in ("mean_predictor", "zero_predictor"):
        row = predictor_record(obs_path, predictor, tmp_path / f"{predictor}.json", seed=0)
        assert row["test_error"] == baselines[predictor] and row["method"] == predictor
    assert not (out / "checkpoint.npz").exists()


def test_a_damaged_test_set_is_named(tmp_path):
    ratings = write_ratings(tmp_path / "u.data")
    path = tmp_path / "split.npz"
    generate_ratings_split(ratings, path, n_train=300, split="file_order", seed=0, shape=(30, 40))
    with np.load(path) as npz:
        arrays = dict(npz)
    arrays["test_rows"][1], arrays["test_cols"][1] = arrays["test_rows"][0], arrays["test_cols"][0]
    np.savez(path, **arrays)
    with pytest.raises(DataFileError, match=r"split\.npz: 1 duplicate held-out entries"):
        load_test_observations(path)
    del arrays["test_cols"]
    np.savez(path, **arrays)
    with pytest.raises(DataFileError, match=r"missing array\(s\) \['test_cols'\]"):
        load_test_observations(path)


def test_random_split_draws_its_own_stream(tmp_path):
    ratings = write_ratings(tmp_path / "u.data")
    a, b, c = (tmp_path / f"{k}.npz" for k in "abc")
    generate_ratings_split(ratings, a, 300, "random", seed=0, shape=(30, 40))
    generate_ratings_split(ratings, b, 300, "random", seed=0, shape=(30, 40))
    generate_ratings_split(ratings, c, 300, "random", seed=1, shape=(30, 40))
    va, vb, vc = (load_observations(p) for p in (a, b, c))
    assert np.array_equal(va.rows, vb.rows) and not np.array_equal(va.rows, vc.rows)


class Killed(Exception):
    pass


class KilledAt:
    """An objective that dies (like a killed job) when asked for its n-th loss."""

    def __init__(self, objective, n, seconds_per_call=0.0):
        self.objective, self.n, self.calls, self.seconds_per_call = objective, n, 0, seconds_per_call

    def loss_and_grad(self, w, grad_t):
        self.calls += 1
        if self.calls == self.n:
            raise Killed
        time.sleep(self.seconds_per_call)
        return self.objective.loss_and_grad(w, grad_t)


@pytest.mark.parametrize("device", ["cpu", "torch-cpu"])  # torch: the host looks every 100 steps
@pytest.mark.parametrize("optimizer", [gd(0.5), group_rmsprop(1e-2)], ids=["gd", "group_rmsprop"])
def test_a_killed_run_resumes_from_its_checkpoint_bit_for_bit(tmp_path, optimizer, device):
    backend = resolve_backend(device, "float32")
    w_star = low_rank_ground_truth(20, 20, 2, seed=0)
    objective = make_objective(sample_completion(w_star, 150, seed=1), backend)
    factors = [backend.asarray(f) for f in init_factors((20, 20), 3, "gaussian", 1e-2, seed=2)]
    kw = dict(max_iters=400, loss_threshold=0.0, record_every=30, top_k=3, ground_truth=backend.asarray(w_star))
    whole = train(objective, factors, optimizer, **kw)
    checkpoints = Checkpointing(tmp_path / "checkpoint.npz", every=100, key="run-a")
    with pytest.raises(Killed):
        # a slow first stretch (>= 0.2 s): the resumed run's wall time must count it
        train(KilledAt(objective, 251, seconds_per_call=1e-3), factors, optimizer, checkpointing=checkpoints, **kw)
    with np.load(tmp_path / "checkpoint.npz") as npz:
        meta = json.loads(str(npz["meta"]))
        assert meta["t"] == 200  # the last checkpoint before the kill
        assert meta["wall_seconds"] >= 0.2
    counting = KilledAt(objective, -1)
    resumed = train(counting, factors, optimizer, checkpointing=checkpoints, **kw)
    assert counting.calls == 201  # steps 200..400 only
    assert resumed.iterations == whole.iterations == 400
    assert resumed.resumed_from == 200 and whole.resumed_from is None
    assert resumed.wall_seconds > meta["wall_seconds"]  # both stretches
    for a, b in zip(resumed.factors, whole.factors):
        assert np.array_equal(a, b)
    assert resumed.flow_time == whole.flow_time
    assert pd.DataFrame(resumed.trajectory).equals(pd.DataFrame(whole.trajectory))
    # another run's checkpoint is ignored, not resumed from
    other = KilledAt(objective, -1)
    train(other, factors, optimizer, checkpointing=Checkpointing(tmp_path / "checkpoint.npz", 100, "run-b"), **kw)
    assert other.calls == 401


def test_recorded_curves_are_those_of_gradient_flow():
    """Halving the step leaves sigma(t) unchanged against gradient-flow time t = sum of steps:
    the difference to a finer step shrinks in proportion to the step (gradient descent is a
    first-order discretization of the flow)."""
    backend = resolve_backend("cpu", "float64")
    w_star = low_rank_ground_truth(20, 20, 3, seed=0)
    objective = make_objective(sample_completion(w_star, 200, seed=1), backend)
    factors = [backend.asarray(f) for f in init_factors((20, 20), 3, "identity", 1e-3)]
    flow_time = 4000.0

    def curve(lr):
        steps = int(round(flow_time / lr))
        res = train(objective, factors, gd(lr), max_iters=steps, loss_threshold=0.0,
                    record_every=steps // 40, top_k=3)
        traj = pd.DataFrame(res.trajectory)
        return traj[["sigma_1", "sigma_2", "sigma_3"]].to_numpy(), traj["flow_time"].to_numpy()

    (coarse, t1), (fine, t2), (finer, t3) = curve(2.0), curve(1.0), curve(0.5)
    assert np.allclose(t1, t2) and np.allclose(t2, t3)  # the same flow times
    assert coarse[-1, 0] > 10 * coarse[0, 0]  # the singular values did move
    scale = np.abs(finer).max()
    gap_coarse, gap_fine = np.abs(coarse - finer).max() / scale, np.abs(fine - finer).max() / scale
    assert gap_fine < 0.05
    assert gap_fine < 0.7 * gap_coarse  # halving the step shrinks the difference (~2x)


# MovieLens 100K's u.data: $DMFCORE_MOVIELENS_U_DATA, or ../shared/data/ml-100k/u.data beside the clone
MOVIELENS_ENV = "DMFCORE_MOVIELENS_U_DATA"
DEFAULT_U_DATA = Path(__file__).resolve().parents[1].parent / "shared/data/ml-100k/u.data"


def movielens_u_data() -> Path:
    """Where the tests look for MovieLens 100K (a clone elsewhere sets the environment variable)."""
    return Path(os.environ.get(MOVIELENS_ENV) or DEFAULT_U_DATA)


REAL_U_DATA = movielens_u_data()


def test_the_movielens_path_is_settable(monkeypatch, tmp_path):
    monkeypatch.setenv(MOVIELENS_ENV, str(tmp_path / "u.data"))
    assert movielens_u_data() == tmp_path / "u.data"
    monkeypatch.delenv(MOVIELENS_ENV)
    assert movielens_u_data() == DEFAULT_U_DATA and DEFAULT_U_DATA.parts[-4:] == ("shared", "data", "ml-100k", "u.data")


@pytest.mark.skipif(not REAL_U_DATA.is_file(), reason=f"MovieLens 100K not found at {REAL_U_DATA} (set ${MOVIELENS_ENV})")
def test_movielens_100k_through_the_run_path(tmp_path):
    """The real data (../shared/data, never copied into the repository): the authors' split
    (the first 10,000 ratings of their shuffled copy train, the other 90,000 test), its
    constant baselines, and a few training steps at full size (943 x 1682, width 943)."""
    obs_path = tmp_path / "movielens.npz"
    generate_ratings_split(REAL_U_DATA, obs_path, 10_000, "file_order", seed=0, shape=(943, 1682),
                           dataset="movielens100k_file_order")
    train_set, test_set = load_observations(obs_path), load_test_observations(obs_path)
    assert (train_set.m, test_set.m, train_set.shape) == (10_000, 90_000, (943, 1682))
    mean = predictor_record(obs_path, "mean_predictor", tmp_path / "mean.json")["test_error"]
    zero = predictor_record(obs_path, "zero_predictor", tmp_path / "zero.json")["test_error"]
    print(f"MovieLens 100K, 10,000 / 90,000: training mean predictor {mean:.5f}, zero predictor {zero:.5f}")
    assert mean == pytest.approx(1.2657, abs=1e-3) and zero == pytest.approx(13.728, abs=1e-2)
    config = TrainConfig(depth=2, init="identity", init_scale=1e-3, optimizer="gd", lr=0.1, max_iters=3,
                         record_every=1)
    out = tmp_path / "run"
    record = run_dmf(None, obs_path, config, RunOutputs(out / "m.npz", out / "metrics.json", out / "run.log",
                                                        out / "trajectory.parquet"))
    assert record["iterations"] == 3 and (record["d1"], record["d2"]) == (943, 1682)
    # three small steps from 1e-3 I: the product is still near zero, so near the zero predictor
    assert record["test_error"] == pytest.approx(zero, rel=1e-2)
    assert len(pd.read_parquet(out / "trajectory.parquet")) == 4
