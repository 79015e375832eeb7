import numpy as np
import pytest

from dmfcore.backend import resolve_backend
from dmfcore.metrics import summary, reconstruction_error
from dmfcore.model import init_factors
from dmfcore.optimizers import gd, group_rmsprop
from dmfcore.problems import low_rank_ground_truth, make_objective, sample_completion, sample_sensing
from dmfcore.training import TrainingDivergedError, train


def _setup(seed, d=30, rank=2, m=300, device="cpu", dtype="float32"):
    backend = resolve_backend(device, dtype)
    w_star = low_rank_ground_truth(d, d, rank, seed)
    obs = sample_completion(w_star, m, (seed, m))
    return backend, w_star, make_objective(obs, backend)


def _run(backend, objective, depth, seed, **kw):
    factors = [backend.asarray(f) for f in init_factors(objective.shape, depth, "gaussian", 1e-3, (seed, depth))]
    return train(objective, factors, kw.pop("optimizer", group_rmsprop(1e-3)), **kw)


def test_paper_claim_in_miniature_depth3_beats_depth2_by_10x():
    """d=30, rank 2, a third of the entries, init 1e-3: depth 3 recovers, depth 2 does not."""
    for seed in range(4):
        backend, w_star, objective = _setup(seed)
        err, rank = {}, {}
        for depth in (2, 3):
            res = _run(backend, objective, depth, seed)
            assert res.converged and res.train_loss <= 1e-6
            err[depth] = reconstruction_error(res.w, w_star)
            rank[depth] = summary(res.w, w_star)["numerical_rank"]
        assert err[3] * 10 <= err[2], f"seed {seed}: depth 2 {err[2]:.3e}, depth 3 {err[3]:.3e}"
        # the numerical rank reads the recovered rank (it read ~25 of 30 at 1e-6 relative)
        assert rank[3] == 2 < rank[2], (seed, rank)


def test_same_seed_same_numbers():
    backend, _, objective = _setup(0)
    a = _run(backend, objective, 3, 0, max_iters=2000)
    b = _run(backend, objective, 3, 0, max_iters=2000)
    assert a.iterations == b.iterations
    np.testing.assert_array_equal(a.w, b.w)


def test_torch_backend_runs_the_same_math():
    _, _, obj_np = _setup(1, d=12, m=70, dtype="float64")
    backend_t, _, obj_t = _setup(1, d=12, m=70, device="torch-cpu", dtype="float64")
    a = _run(resolve_backend("cpu", "float64"), obj_np, 3, 1, max_iters=3000)
    b = _run(backend_t, obj_t, 3, 1, max_iters=3000)
    assert a.iterations == b.iterations
    np.testing.assert_allclose(a.w, b.w, rtol=1e-6, atol=1e-9)


def test_stops_at_max_iters_unconverged():
    backend, _, objective = _setup(0)
    res = _run(backend, objective, 2, 0, max_iters=50)
    assert res.iterations == 50 and not res.converged
    assert res.flow_time > 0


def test_divergence_names_step_and_last_finite_loss():
    backend, _, objective = _setup(0)
    with pytest.raises(TrainingDivergedError, match=r"step \d+.*last finite loss"):
        _run(backend, objective, 3, 0, optimizer=gd(1e6), max_iters=1000)


def test_recording_trajectory():
    backend, w_star, objective = _setup(2)
    res = _run(
        backend, objective, 3, 2, record_every=100, top_k=4, ground_truth=backend.asarray(w_star)
    )
    traj = res.trajectory
    n = len(traj["step"])
    assert n == res.iterations // 100 + 1 + (res.iterations % 100 != 0)
    assert all(len(v) == n for v in traj.values())
    assert traj["step"][0] == 0 and traj["step"][-1] == res.iterations
    assert traj["flow_time"][0] == 0 and traj["flow_time"][-1] == pytest.approx(res.flow_time)
    assert traj["train_loss"][-1] == pytest.approx(res.train_loss)
    assert traj["recon_error"][-1] == pytest.approx(reconstruction_error(res.w, w_star), rel=1e-4)
    for a, b in zip(traj["sigma_1"], traj["sigma_2"]):
        assert a >= b >= 0
    # top singular value grows from ~init scale to the ground truth's
    assert traj["sigma_1"][0] < 1e-2 < traj["sigma_1"][-1]
    assert traj["sigma_1"][-1] == pytest.approx(np.linalg.svd(w_star, compute_uv=False)[0], rel=0.05)
    assert set(traj) >= {"diag_mean", "diag_std", "offdiag_mean", "offdiag_std"}


def test_sensing_trains_to_threshold():
    backend = resolve_backend("cpu", "float32")
    w_star = low_rank_ground_truth(10, 10, 1, 0)
    objective = make_objective(sample_sensing(w_star, 60, 0), backend)
    res = _run(backend, objective, 3, 0, max_iters=100_000)
    assert res.converged
    assert reconstruction_error(res.w, w_star) < 1e-3


def test_bad_arguments():
    backend, _, objective = _setup(0)
    with pytest.raises(ValueError, match="max_iters"):
        _run(backend, objective, 2, 0, max_iters=-1)
    with pytest.raises(ValueError, match="record_every"):
        _run(backend, objective, 2, 0, record_every=-5)
