import math

import numpy as np
import pytest

from dmfcore.convex import min_nuclear_norm_completion
from dmfcore.nuclear_admm import (
    _operator_norm,
    _svt_with_rank,
    CompletionMap,
    SensingMap,
    dual_lower_bound,
    measurement_map,
    min_nuclear_norm_admm,
    singular_value_threshold,
)
from dmfcore.problems import (
    CompletionObservations,
    SensingObservations,
    low_rank_ground_truth,
    max_constraint_residual,
    sample_completion,
    sample_sensing,
)

TOL = 1e-9  # ADMM gap tolerance used against cvxpy
BRACKET = 1e-7  # slack for SCS's own (eps 1e-9) error when checking lower <= opt <= upper


def nuclear_norm(w: np.ndarray) -> float:
    return float(np.linalg.svd(w, compute_uv=False).sum())


def cvxpy_sensing(obs: SensingObservations) -> tuple[float, np.ndarray]:
    import cvxpy as cp

    d1, d2 = obs.shape
    M = obs.A.reshape(obs.m, d1 * d2).astype(np.float64)
    x = cp.Variable((d1, d2))
    problem = cp.Problem(cp.Minimize(cp.normNuc(x)), [M @ cp.vec(x, order="C") == obs.y])
    problem.solve(solver=cp.SCS, eps_abs=1e-9, eps_rel=1e-9, max_iters=100_000)
    assert problem.status == "optimal"
    return float(problem.value), np.asarray(x.value)


def check_against_reference(res, obs, ref_value: float, ref_w: np.ndarray) -> None:
    assert res.status == "optimal"
    assert res.solver == "admm-svt"
    assert 0 <= res.relative_gap <= TOL
    # the certificate brackets the reference optimum
    assert res.lower_bound <= ref_value * (1 + BRACKET)
    assert res.nuclear_norm >= ref_value * (1 - BRACKET)
    assert res.lower_bound <= res.nuclear_norm
    # and the two solvers agree on the value and the minimizer
    assert res.nuclear_norm == pytest.approx(ref_value, rel=BRACKET)
    assert np.linalg.norm(res.w - ref_w) <= 1e-5 * np.linalg.norm(ref_w)
    # the returned point is feasible and its reported norm is its own
    assert max_constraint_residual(res.w, obs) <= 1e-9
    assert res.max_residual <= 1e-9
    assert res.nuclear_norm == pytest.approx(nuclear_norm(res.w), rel=1e-12)
    assert res.iterations >= 1 and res.wall_seconds > 0


@pytest.mark.parametrize("d1, d2, m", [(15, 15, 100), (12, 20, 130)])
def test_completion_matches_cvxpy(d1, d2, m):
    w_star = low_rank_ground_truth(d1, d2, 2, seed=3)
    obs = sample_completion(w_star, m, seed=4)
    ref = min_nuclear_norm_completion(obs, eps=1e-9)
    res = min_nuclear_norm_admm(obs, tol=TOL)
    check_against_reference(res, obs, ref.nuclear_norm, ref.w)
    np.testing.assert_array_equal(res.w[obs.rows, obs.cols], obs.values)


@pytest.mark.parametrize("d1, d2, m", [(12, 12, 80), (10, 16, 90), (14, 14, 60)])
def test_sensing_matches_cvxpy(d1, d2, m):
    w_star = low_rank_ground_truth(d1, d2, 2, seed=3)
    obs = sample_sensing(w_star, m, seed=4, dtype="float64")
    ref_value, ref_w = cvxpy_sensing(obs)
    res = min_nuclear_norm_admm(obs, tol=TOL)
    check_against_reference(res, obs, ref_value, ref_w)


def test_float32_sensing_matrices_are_solved_in_float64():
    w_star = low_rank_ground_truth(10, 12, 2, seed=5)
    obs32 = sample_sensing(w_star, 70, seed=6)  # float32 A, y consistent with it
    assert obs32.A.dtype == np.float32
    obs64 = SensingObservations(obs32.shape, obs32.A.astype(np.float64), obs32.y)
    res32 = min_nuclear_norm_admm(obs32, tol=1e-8)
    res64 = min_nuclear_norm_admm(obs64, tol=1e-8)
    assert res32.status == "optimal"
    np.testing.assert_allclose(res32.w, res64.w, rtol=0, atol=1e-9)
    assert res32.max_residual <= 1e-12


def test_fully_observed_completion_returns_the_matrix():
    w_star = low_rank_ground_truth(8, 6, 2, seed=0)
    obs = sample_completion(w_star, 48, seed=0)
    res = min_nuclear_norm_admm(obs)
    np.testing.assert_allclose(res.w, w_star, rtol=0, atol=1e-12)
    assert res.status == "optimal"
    assert res.nuclear_norm == pytest.approx(nuclear_norm(w_star), rel=1e-12)
    assert res.relative_gap <= 1e-6
    assert res.lower_bound <= res.nuclear_norm


def test_recovers_low_rank_matrix_from_many_measurements():
    # well above the 2 r (d1 + d2 - r) measurements that nuclear norm recovery needs
    w_star = low_rank_ground_truth(12, 12, 1, seed=7)
    obs = sample_sensing(w_star, 100, seed=8, dtype="float64")
    res = min_nuclear_norm_admm(obs, tol=1e-10)
    assert np.max(np.abs(res.w - w_star)) < 1e-6
    assert res.lower_bound <= nuclear_norm(w_star) <= res.nuclear_norm


def test_two_by_two_with_one_missing_entry_solved_by_hand():
    # W = [[1, 1], [1, x]]: ||W||_* = 1 + x for x >= 1 and sqrt((1 - x)^2 + 4) > 2 otherwise,
    # so the optimum is 2 at x = 1.
    obs = CompletionObservations((2, 2), np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([1.0, 1.0, 1.0]))
    res = min_nuclear_norm_admm(obs, tol=1e-10)
    assert res.lower_bound <= 2.0 * (1 + 1e-14)
    assert res.nuclear_norm >= 2.0 * (1 - 1e-14)
    assert res.nuclear_norm == pytest.approx(2.0, rel=1e-9)
    assert res.w[1, 1] == pytest.approx(1.0, abs=1e-4)


def test_diagonal_observations_give_diagonal_solution():
    # ||W||_* >= trace(W) = 6 with equality at diag(1, 2, 3)
    obs = CompletionObservations((3, 3), np.arange(3), np.arange(3), np.array([1.0, 2.0, 3.0]))
    res = min_nuclear_norm_admm(obs, tol=1e-10)
    np.testing.assert_allclose(res.w, np.diag([1.0, 2.0, 3.0]), atol=1e-8)
    assert res.lower_bound <= 6.0 * (1 + 1e-14) and res.nuclear_norm >= 6.0 * (1 - 1e-14)


def test_zero_observations_give_zero_matrix():
    obs = CompletionObservations((4, 5), np.array([0, 3]), np.array([1, 4]), np.zeros(2))
    res = min_nuclear_norm_admm(obs)
    assert res.status == "optimal"
    assert res.nuclear_norm == 0.0 and res.relative_gap == 0.0
    np.testing.assert_array_equal(res.w, np.zeros((4, 5)))


def test_stopping_early_still_gives_a_valid_bracket():
    w_star = low_rank_ground_truth(12, 12, 2, seed=9)
    obs = sample_completion(w_star, 80, seed=9)
    optimum = min_nuclear_norm_admm(obs, tol=1e-10).nuclear_norm
    early = min_nuclear_norm_admm(obs, tol=1e-10, max_iters=7, check_every=5)
    assert early.status == "max_iters" and early.iterations == 7
    assert early.relative_gap > 1e-10
    assert early.lower_bound <= optimum * (1 + 1e-12)
    assert early.nuclear_norm >= optimum * (1 - 1e-12)
    np.testing.assert_array_equal(early.w[obs.rows, obs.cols], obs.values)


def test_solution_scales_with_the_data():
    w_star = low_rank_ground_truth(10, 10, 2, seed=11)
    obs = sample_sensing(w_star, 60, seed=11, dtype="float64")
    scaled = SensingObservations(obs.shape, obs.A, 1e3 * obs.y)
    a = min_nuclear_norm_admm(obs, tol=1e-9)
    b = min_nuclear_norm_admm(scaled, tol=1e-9)
    assert b.nuclear_norm == pytest.approx(1e3 * a.nuclear_norm, rel=1e-8)
    assert np.linalg.norm(b.w - 1e3 * a.w) <= 1e-5 * np.linalg.norm(b.w)


@pytest.mark.parametrize("kind", ["completion", "sensing"])
def test_measurement_map_adjoint_and_projection(kind):
    rng = np.random.default_rng(0)
    w_star = low_rank_ground_truth(6, 9, 2, seed=1)
    obs = sample_completion(w_star, 20, seed=2) if kind == "completion" else sample_sensing(w_star, 20, seed=2)
    op = measurement_map(obs)
    assert isinstance(op, CompletionMap if kind == "completion" else SensingMap)
    v, lam = rng.standard_normal(op.shape), rng.standard_normal(op.m)
    assert op.apply(v) @ lam == pytest.approx(np.sum(v * op.adjoint(lam)), rel=1e-12)
    z, u, delta = op.project(v)
    np.testing.assert_allclose(op.apply(z), op.y, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v - z, u, rtol=0, atol=1e-12)
    np.testing.assert_allclose(u, op.adjoint(delta), rtol=0, atol=1e-12)
    # idempotent, and orthogonal: v - P(v) is orthogonal to the null space direction z' - z
    z2, _, _ = op.project(z + op.adjoint(rng.standard_normal(op.m)))
    np.testing.assert_allclose(z2, z, rtol=0, atol=1e-12)
    np.testing.assert_allclose(max_constraint_residual(z, obs), 0.0, atol=1e-12)


def test_singular_value_threshold_and_dual_bound():
    rng = np.random.default_rng(3)
    v = rng.standard_normal((5, 7))
    s = np.linalg.svd(v, compute_uv=False)
    x = singular_value_threshold(v, s[2])
    np.testing.assert_allclose(np.linalg.svd(x, compute_uv=False)[:2], s[:2] - s[2], rtol=1e-12)
    assert np.linalg.matrix_rank(x) == 2
    # the Gram-matrix SVT against the SVD formula: wide, tall, rank-deficient, all or none kept
    def by_svd(v, t):
        p, s, qt = np.linalg.svd(v, full_matrices=False)
        return (p * np.maximum(s - t, 0.0)) @ qt

    low_rank = rng.standard_normal((30, 4)) @ rng.standard_normal((4, 50))
    for m in (rng.standard_normal((20, 45)), rng.standard_normal((45, 20)), low_rank, low_rank.T):
        sm = np.linalg.svd(m, compute_uv=False)
        for t in (0.0, 0.5 * sm[-1] + 1e-3, sm[1], 0.5 * (sm[2] + sm[3]), 1.01 * sm[0]):
            expected = by_svd(m, t)
            for all_pairs in (False, True):  # syevr on the pairs kept, or syevd on all of them
                x, rank = _svt_with_rank(m, t, all_pairs)
                np.testing.assert_allclose(x, expected, rtol=0, atol=1e-11 * sm[0])
                if t == 0.0:
                    assert rank == min(m.shape)
                else:  # a singular value at the threshold (t = sm[1]) may count either way
                    assert np.sum(sm > t * (1 + 1e-12)) <= rank <= np.sum(sm >= t * (1 - 1e-12))
            np.testing.assert_array_equal(singular_value_threshold(m, t), _svt_with_rank(m, t, False)[0])
        assert _operator_norm(m) == pytest.approx(sm[0], rel=1e-13)
    # a dual point with y^T lam <= 0 only certifies 0
    assert dual_lower_bound(np.ones(3), -np.ones(3), v) == 0.0
    assert dual_lower_bound(np.ones(3), np.ones(3), v) == pytest.approx(3.0 / s[0])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"tol": 0.0}, "tol"),
        ({"tol": -1e-6}, "tol"),
        ({"tol": math.nan}, "tol"),
        ({"tol": 1.0}, "tol"),
        ({"max_iters": 0}, "max_iters"),
        ({"max_iters": 2.5}, "max_iters"),
        ({"rho": 0.0}, "rho"),
        ({"rho": -1.0}, "rho"),
        ({"rho": math.inf}, "rho"),
        ({"check_every": 0}, "check_every"),
    ],
)
def test_bad_arguments_raise(kwargs, name):
    obs = sample_completion(low_rank_ground_truth(4, 4, 1, seed=0), 8, seed=0)
    with pytest.raises(ValueError, match=name):
        min_nuclear_norm_admm(obs, **kwargs)


def test_bad_observations_raise():
    with pytest.raises(ValueError, match="repeated"):
        min_nuclear_norm_admm(CompletionObservations((3, 3), np.array([0, 0]), np.array([1, 1]), np.ones(2)))
    with pytest.raises(ValueError, match="outside"):
        min_nuclear_norm_admm(CompletionObservations((3, 3), np.array([0, 3]), np.array([1, 1]), np.ones(2)))
    with pytest.raises(ValueError, match="lengths"):
        min_nuclear_norm_admm(CompletionObservations((3, 3), np.array([0, 1]), np.array([1]), np.ones(2)))
    a = np.random.default_rng(0).standard_normal((3, 4, 4))
    with pytest.raises(ValueError, match="shape"):
        min_nuclear_norm_admm(SensingObservations((4, 5), a, np.ones(3)))
    dependent = np.concatenate([a, a[:1] * 2.0])
    with pytest.raises(ValueError, match="dependent"):
        min_nuclear_norm_admm(SensingObservations((4, 4), dependent, np.ones(4)))
    a_nan = a.copy()
    a_nan[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        min_nuclear_norm_admm(SensingObservations((4, 4), a_nan, np.ones(3)))
