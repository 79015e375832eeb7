import numpy as np
import pytest

from dmfcore.convex import min_nuclear_norm_completion
from dmfcore.problems import CompletionObservations, low_rank_ground_truth, sample_completion


def test_fully_observed_matrix_is_returned_exactly():
    w = low_rank_ground_truth(8, 6, 2, seed=0)
    obs = sample_completion(w, 48, seed=0)
    res = min_nuclear_norm_completion(obs)
    np.testing.assert_allclose(res.w, w, atol=1e-12)
    assert res.nuclear_norm == pytest.approx(np.linalg.svd(w, compute_uv=False).sum(), rel=1e-10)


def test_two_by_two_with_one_missing_entry_solved_by_hand():
    # W = [[1, 1], [1, x]] is symmetric with det = x - 1. For x >= 1 both eigenvalues are >= 0
    # and ||W||_* = trace = 1 + x >= 2; for x < 1 they have opposite signs and
    # ||W||_* = |l1 - l2| = sqrt((1 - x)^2 + 4) > 2. So the minimizer is x = 1, value 2.
    obs = CompletionObservations((2, 2), np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([1.0, 1.0, 1.0]))
    res = min_nuclear_norm_completion(obs)
    assert res.w[1, 1] == pytest.approx(1.0, abs=1e-5)
    assert res.nuclear_norm == pytest.approx(2.0, abs=1e-6)
    assert res.max_residual < 1e-6


def test_diagonal_observations_give_diagonal_solution():
    # Observing only the diagonal diag(1, 2, 3): any off-diagonal mass only adds to ||.||_*,
    # and ||W||_* >= trace(W) = 6 with equality at the diagonal matrix.
    obs = CompletionObservations((3, 3), np.arange(3), np.arange(3), np.array([1.0, 2.0, 3.0]))
    res = min_nuclear_norm_completion(obs)
    np.testing.assert_allclose(res.w, np.diag([1.0, 2.0, 3.0]), atol=1e-5)
    assert res.nuclear_norm == pytest.approx(6.0, abs=1e-6)


def test_exact_feasibility_after_projection():
    w = low_rank_ground_truth(15, 15, 2, seed=1)
    obs = sample_completion(w, 90, seed=1)
    res = min_nuclear_norm_completion(obs)
    np.testing.assert_array_equal(res.w[obs.rows, obs.cols], obs.values)
    assert res.status == "optimal"


def test_solver_choice_by_size_and_agreement_on_small_sensing():
    from dmfcore.convex import choose_solver, min_nuclear_norm
    from dmfcore.problems import sample_sensing

    w = low_rank_ground_truth(10, 10, 2, seed=3)
    small = sample_sensing(w, 40, seed=0, dtype="float64")
    assert choose_solver(small) == "admm-svt"  # sensing: the first-order solver at every size
    assert choose_solver(sample_completion(w, 50, 0)) == "admm-ipm"  # completion: certified hybrid
    scs = min_nuclear_norm(small, "cvxpy-scs")
    admm = min_nuclear_norm(small, "admm-svt", tol=1e-8)
    assert admm.solver == "admm-svt" and admm.relative_gap <= 1e-8
    assert admm.lower_bound <= scs.nuclear_norm * (1 + 1e-6)
    assert scs.nuclear_norm == pytest.approx(admm.nuclear_norm, rel=1e-6)
    # both answers are exactly feasible
    for res in (scs, admm):
        a = small.A.reshape(40, -1)
        assert np.max(np.abs(a @ res.w.reshape(-1) - small.y)) < 1e-9
    with pytest.raises(ValueError, match="solver"):
        min_nuclear_norm(small, "mosek")


def test_large_completion_goes_to_the_interior_point_method():
    from dmfcore.convex import choose_solver
    from dmfcore.problems import CompletionObservations

    def observations(d1, d2):
        idx = np.arange(10)
        return CompletionObservations((d1, d2), idx, idx, np.ones(10))

    assert choose_solver(observations(100, 100)) == "admm-ipm"
    assert choose_solver(observations(943, 1682)) == "ipm"  # MovieLens 100K


def test_check_every_reaches_the_first_order_solver():
    from dmfcore.convex import default_check_every, min_nuclear_norm

    w = low_rank_ground_truth(12, 12, 2, seed=4)
    obs = sample_completion(w, 80, seed=4)
    assert default_check_every(obs) == 10
    assert default_check_every(CompletionObservations((943, 1682), np.arange(3), np.arange(3), np.ones(3))) == 50
    res = min_nuclear_norm(obs, "admm-svt", tol=1e-8, check_every=7)
    assert res.status == "optimal" and res.iterations % 7 == 0
