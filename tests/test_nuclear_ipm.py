import math

import numpy as np
import pytest

from dmfcore import convex
from dmfcore.nuclear_ipm import _adjoint, min_nuclear_norm_ipm, schur_complement, schur_workspace
from dmfcore.problems import (
    CompletionObservations,
    low_rank_ground_truth,
    max_constraint_residual,
    sample_completion,
    sample_sensing,
)

TOL = 1e-9


def nuclear_norm(w: np.ndarray) -> float:
    return float(np.linalg.svd(w, compute_uv=False).sum())


def cvxpy_completion(obs: CompletionObservations) -> float:
    import cvxpy as cp

    x = cp.Variable(obs.shape)
    problem = cp.Problem(cp.Minimize(cp.normNuc(x)), [x[obs.rows, obs.cols] == obs.values])
    problem.solve(solver=cp.SCS, eps_abs=1e-9, eps_rel=1e-9, max_iters=100_000)
    assert problem.status == "optimal"
    return float(problem.value)


def check_certificate(res, obs, tol: float) -> None:
    assert res.solver == "ipm" and res.status == "optimal"
    assert 0 <= res.relative_gap <= tol
    assert res.lower_bound <= res.nuclear_norm
    assert res.nuclear_norm == pytest.approx(nuclear_norm(res.w), rel=1e-12)
    # exactly feasible: observed entries are the data
    np.testing.assert_array_equal(res.w[obs.rows, obs.cols], obs.values)
    assert res.max_residual == 0.0 and max_constraint_residual(res.w, obs) == 0.0


def test_schur_complement_matches_the_trace_formula():
    rng = np.random.default_rng(0)
    d1, d2, m = 4, 3, 8
    rows, cols = np.divmod(rng.choice(d1 * d2, size=m, replace=False), d2)
    n = d1 + d2
    a, c = rng.standard_normal((2, n, n))
    xp, si = a @ a.T, c @ c.T
    basis = [_adjoint(np.eye(m)[k], rows, cols + d1, n) for k in range(m)]
    want = np.array([[np.trace(ak @ xp @ al @ si) for al in basis] for ak in basis])
    got = schur_complement(xp, si, rows, cols, d1)
    np.testing.assert_allclose(np.triu(got), np.triu(want), rtol=1e-12, atol=1e-12)


def test_schur_complement_in_blocks_with_a_reused_workspace():
    """Several row blocks (m > 512), and a workspace reused for a second (Xp, Si): the same
    numbers as the formula by whole gathers, and as a fresh workspace to the last bit."""
    rng = np.random.default_rng(1)
    d1, d2, m = 40, 30, 1100
    rows, cols = np.divmod(rng.choice(d1 * d2, size=m, replace=False), d2)
    n = d1 + d2
    work = schur_workspace(m, d1, d2)
    for _ in range(2):
        a, c = rng.standard_normal((2, n, n))
        xp, si = a @ a.T, c @ c.T
        w1, x, w2, s11, s12, s22 = xp[:d1, :d1], xp[:d1, d1:], xp[d1:, d1:], si[:d1, :d1], si[:d1, d1:], si[d1:, d1:]
        ii, jj, ij = np.ix_(rows, rows), np.ix_(cols, cols), np.ix_(rows, cols)
        want = w1[ii] * s22[jj] + w2[jj] * s11[ii] + x[ij].T * s12[ij] + x[ij] * s12[ij].T
        got = schur_complement(xp, si, rows, cols, d1, np.empty((m, m)), work)
        np.testing.assert_allclose(np.triu(got), np.triu(want), rtol=1e-12, atol=1e-10)
        fresh = schur_complement(xp, si, rows, cols, d1)
        np.testing.assert_array_equal(np.triu(got), np.triu(fresh))


@pytest.mark.parametrize(("d1", "d2", "rank", "m", "seed"), [(12, 10, 2, 70, 0), (15, 15, 3, 120, 1), (20, 8, 1, 60, 2)])
def test_agrees_with_scs_on_small_completion(d1, d2, rank, m, seed):
    w = low_rank_ground_truth(d1, d2, rank, seed=seed)
    obs = sample_completion(w, m, seed=seed)
    ref = cvxpy_completion(obs)
    res = min_nuclear_norm_ipm(obs, tol=TOL)
    check_certificate(res, obs, TOL)
    assert res.nuclear_norm == pytest.approx(ref, rel=1e-6)
    # the certified bracket contains SCS's value (up to SCS's own error)
    assert res.lower_bound <= ref * (1 + 1e-7) and res.nuclear_norm >= ref * (1 - 1e-7)
    scs = convex.min_nuclear_norm(obs, "cvxpy-scs")
    assert scs.max_residual <= 1e-9 and res.max_residual <= 1e-9
    assert res.nuclear_norm == pytest.approx(scs.nuclear_norm, rel=1e-6)


def test_fully_observed_matrix_certifies_its_own_nuclear_norm():
    w = low_rank_ground_truth(9, 7, 3, seed=5)
    obs = sample_completion(w, 63, seed=5)
    res = min_nuclear_norm_ipm(obs, tol=1e-10)
    check_certificate(res, obs, 1e-10)
    np.testing.assert_array_equal(res.w, w)
    assert res.nuclear_norm == pytest.approx(nuclear_norm(w), rel=1e-13)
    assert res.lower_bound <= nuclear_norm(w) * (1 + 1e-13)


def test_diagonal_observations_certify_the_sum_of_absolute_values():
    # ||W||_* >= sum_i |W_ii| (the dual point Y = diag(sign d) has ||Y||_op = 1), and diag(d)
    # attains it: the optimum is exactly sum |d_i|.
    d = np.array([3.0, -1.0, 0.5, 2.0, -4.0])
    obs = CompletionObservations((5, 6), np.arange(5), np.arange(5), d)
    res = min_nuclear_norm_ipm(obs, tol=1e-10)
    check_certificate(res, obs, 1e-10)
    opt = float(np.abs(d).sum())
    assert res.lower_bound <= opt * (1 + 1e-14) and res.nuclear_norm >= opt * (1 - 1e-14)
    assert res.nuclear_norm == pytest.approx(opt, rel=1e-10)
    np.testing.assert_allclose(res.w, np.pad(np.diag(d), ((0, 0), (0, 1))), atol=1e-6)


def test_two_by_two_with_one_missing_entry():
    obs = CompletionObservations((2, 2), np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([1.0, 1.0, 1.0]))
    res = min_nuclear_norm_ipm(obs, tol=1e-10)
    check_certificate(res, obs, 1e-10)
    assert res.nuclear_norm == pytest.approx(2.0, rel=1e-10)
    assert res.w[1, 1] == pytest.approx(1.0, abs=1e-4)


def test_below_the_recovery_threshold_certified_to_1e8():
    # 40 x 40 rank 6 from 400 entries: far below the threshold, the minimizer has high rank
    w = low_rank_ground_truth(40, 40, 6, seed=7)
    obs = sample_completion(w, 400, seed=7)
    res = min_nuclear_norm_ipm(obs, tol=1e-8)
    check_certificate(res, obs, 1e-8)
    assert np.linalg.matrix_rank(res.w, tol=1e-6 * np.linalg.norm(res.w, 2)) > 6
    assert np.linalg.norm(res.w - w) > 0.1 * np.linalg.norm(w)  # not recovered


def test_zero_data_and_input_validation():
    obs = CompletionObservations((3, 4), np.array([0, 2]), np.array([1, 3]), np.zeros(2))
    res = min_nuclear_norm_ipm(obs)
    assert res.status == "optimal" and res.nuclear_norm == 0.0 and not res.w.any()
    good = CompletionObservations((3, 4), np.array([0, 2]), np.array([1, 3]), np.ones(2))
    for tol in (0.0, 1.0, -1e-3, float("nan")):
        with pytest.raises(ValueError, match="tol"):
            min_nuclear_norm_ipm(good, tol=tol)
    for max_iters in (0, 2.5, True):
        with pytest.raises(ValueError, match="max_iters"):
            min_nuclear_norm_ipm(good, max_iters=max_iters)
    with pytest.raises(ValueError, match="repeated"):
        min_nuclear_norm_ipm(CompletionObservations((3, 4), np.array([0, 0]), np.array([1, 1]), np.ones(2)))
    with pytest.raises(ValueError, match="outside"):
        min_nuclear_norm_ipm(CompletionObservations((3, 4), np.array([0, 3]), np.array([1, 1]), np.ones(2)))
    w = low_rank_ground_truth(5, 5, 1, seed=0)
    sensing = sample_sensing(w, 10, seed=0, dtype="float64")
    with pytest.raises(TypeError, match="completion only"):
        min_nuclear_norm_ipm(sensing)
    for solver in ("ipm", "admm-ipm"):
        with pytest.raises(ValueError, match="completion only"):
            convex.min_nuclear_norm(sensing, solver)


def test_auto_is_the_hybrid_and_falls_back_to_the_ipm(monkeypatch):
    w = low_rank_ground_truth(20, 20, 2, seed=3)
    obs = sample_completion(w, 250, seed=3)
    assert convex.choose_solver(obs) == "admm-ipm"
    idx = np.arange(10)
    assert convex.choose_solver(CompletionObservations((943, 1682), idx, idx, np.ones(10))) == "ipm"
    big = np.arange(convex.IPM_MAX_OBS + 1)
    assert convex.choose_solver(CompletionObservations((943, 1682), *np.divmod(big, 1682), np.ones(big.size))) == "admm-svt"
    easy = convex.min_nuclear_norm(obs, "auto", tol=1e-8)
    assert easy.solver == "admm-svt" and easy.relative_gap <= 1e-8
    monkeypatch.setattr(convex, "ADMM_MIN_ITERS", 5)
    monkeypatch.setattr(convex, "IPM_SECONDS", (0.0, 0.0))  # a free interior-point method takes over
    res = convex.min_nuclear_norm(obs, "auto", tol=1e-8)
    assert res.solver == "admm-svt+ipm" and res.status == "optimal" and res.relative_gap <= 1e-8
    assert res.nuclear_norm == pytest.approx(easy.nuclear_norm, rel=2e-8)
    np.testing.assert_array_equal(res.w[obs.rows, obs.cols], obs.values)
    direct = convex.min_nuclear_norm(obs, "ipm", tol=1e-8)
    assert direct.solver == "ipm" and direct.relative_gap <= 1e-8


def test_iterations_to_tol_extrapolates_the_recent_rate():
    # a gap falling one decade every 100 iterations, certified every 10: 1e-4 at 400, 1e-8 400 later
    history = [(k, 10.0 ** (-k / 100)) for k in range(10, 410, 10)]
    assert convex.iterations_to_tol(history, 1e-8) == pytest.approx(400)
    # the rate is the second half's: a fast start does not make a slow finish look fast
    slowing = [(k, 10.0 ** (-k / 50)) for k in range(10, 210, 10)]
    slowing += [(k, 1e-4 * 10.0 ** (-(k - 200) / 200)) for k in range(210, 810, 10)]
    assert convex.iterations_to_tol(slowing, 1e-8) == pytest.approx(200)  # 1e-7 at 800, 1e-5 at 400
    assert convex.iterations_to_tol([(10, 1e-3), (20, 1e-3), (30, 1e-3)], 1e-8) == math.inf  # stalled
    assert convex.iterations_to_tol([(10, 1e-3), (20, 1e-9)], 1e-8) == 0.0
    assert math.isnan(convex.iterations_to_tol([(10, 1e-3)], 1e-8))  # one certificate: no rate yet


def test_admm_ipm_keeps_the_first_order_solver_where_it_is_expected_to_finish_first(monkeypatch):
    w = low_rank_ground_truth(30, 30, 2, seed=1)
    obs = sample_completion(w, 500, seed=1)
    monkeypatch.setattr(convex, "ADMM_MIN_ITERS", 5)
    # the interior-point method priced out: the first-order solver goes on to its certificate
    monkeypatch.setattr(convex, "IPM_SECONDS", (1e9, 0.0))
    slow_ipm = convex.min_nuclear_norm(obs, "admm-ipm", tol=1e-8)
    assert slow_ipm.solver == "admm-svt" and slow_ipm.status == "optimal" and slow_ipm.iterations > 5
    # free: it takes over at the first certificate with a rate (the second after ADMM_MIN_ITERS)
    monkeypatch.setattr(convex, "IPM_SECONDS", (0.0, 0.0))
    free_ipm = convex.min_nuclear_norm(obs, "admm-ipm", tol=1e-8)
    assert free_ipm.solver == "admm-svt+ipm" and free_ipm.relative_gap <= 1e-8
    assert free_ipm.nuclear_norm == pytest.approx(slow_ipm.nuclear_norm, rel=2e-8)


def test_admm_stops_when_its_caller_says_so():
    from dmfcore.nuclear_admm import min_nuclear_norm_admm

    w = low_rank_ground_truth(30, 30, 2, seed=1)
    obs = sample_completion(w, 400, seed=1)
    seen = []
    res = min_nuclear_norm_admm(obs, tol=1e-12, check_every=10,
                                stop_early=lambda k, gap, seconds: seen.append((k, gap, seconds)) or k >= 30)
    assert res.status == "stopped" and res.iterations == 30 and [k for k, _, _ in seen] == [10, 20, 30]
    assert res.relative_gap > 1e-12 and all(s >= 0 for _, _, s in seen)
