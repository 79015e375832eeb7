"""The theory checks (dmfcore.theory) on cases with known answers, and their convergence."""

import numpy as np
import pytest

from helpers import TORCH_DEVICES, needs_cuda

from dmfcore import theory
from dmfcore.backend import resolve_backend, to_numpy
from dmfcore.dynamics import alignment_statistics, predicted_rate, thin_svd

ARRAY_DEVICES = ["cpu", *TORCH_DEVICES]  # NumPy, torch on the CPU, and CUDA where torch sees a GPU


def _on(device, a):
    return resolve_backend(device, "float32").asarray(a)


def test_theorem3_formula_on_known_cases():
    sigma, proj = np.array([2.0, 0.5]), np.array([0.3, -0.1])
    # depth 1: W moves along -grad l, so d sigma_r/dt is minus the projection exactly
    assert np.array_equal(predicted_rate(sigma, proj, 1), -proj)
    assert np.allclose(predicted_rate(sigma, proj, 2), -2 * sigma * proj)
    assert np.allclose(predicted_rate(sigma, proj, 3), -3 * sigma ** (4 / 3) * proj)
    # the projection u_r^T G v_r of a diagonal W and gradient is the gradient's diagonal (signed)
    stats = alignment_statistics(np.diag([3.0, 1.0]), np.array([[-0.5, 0.2], [0.1, 0.25]]))
    assert np.allclose(stats["projection"], [-0.5, 0.25]) and np.allclose(stats["sigma"], [3.0, 1.0])


@pytest.mark.parametrize("device,shape", [
    *((d, s) for d in ("cpu", "torch-cpu") for s in ((30, 50), (50, 30))),
    *(pytest.param("cuda", s, marks=[pytest.mark.gpu, needs_cuda])
      for s in ((30, 50), (50, 30), (943, 1682))),  # MovieLens' shape
])
def test_thin_svd_through_the_gram_matrix_is_an_svd(device, shape):
    rng = np.random.default_rng(0)
    d1, d2 = shape
    # a float32 matrix of rank 4 with a spread of singular values plus float32 rounding, as the
    # end-to-end matrix of a dynamics run: large, small and (numerically) zero singular values
    spread = np.array([2000.0, 300.0, 1.0, 1e-3])
    low = (rng.standard_normal((d1, 4)) * spread) @ np.linalg.qr(rng.standard_normal((d2, 4)))[0].T
    for w in (low.astype(np.float32), rng.standard_normal(shape).astype(np.float32)):
        u, s, v = (to_numpy(x) for x in thin_svd(_on(device, w)))
        w64 = w.astype(np.float64)
        exact = np.linalg.svd(w64, compute_uv=False)
        r = min(shape)
        assert u.shape == (d1, r) and v.shape == (d2, r) and s.shape == (r,)
        assert np.all(np.diff(s) <= 0)
        # eigenvalues of W W^T to ~1e-16 sigma_1^2: sigma_r to ~1e-16 sigma_1^2 / sigma_r, and the
        # (numerically) zero ones to ~sqrt(1e-16 r) sigma_1, below float32's unit roundoff times
        # sigma_1, the uncertainty any float32 W (and a float32 SVD of it) carries
        error, big = np.abs(s - exact), exact > 1e-6 * exact[0]
        roundoff32 = float(np.finfo(np.float32).eps) / 2 * exact[0]
        assert np.all(error[big] <= 1e-14 * exact[0] ** 2 / exact[big]) and np.all(error <= roundoff32)
        assert np.abs(u.T @ u - np.eye(r)).max() < 1e-10 and np.abs(v.T @ v - np.eye(r)).max() < 1e-10
        assert np.abs((u * s) @ v.T - w64).max() <= roundoff32
        assert np.all(np.einsum("ir,ij,jr->r", u, w64, v) >= -1e-10 * exact[0])  # u_r^T W v_r = s_r >= 0


@pytest.mark.parametrize("device", ARRAY_DEVICES)
def test_alignment_statistics_are_those_of_a_library_svd(device):
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((40, 60)) * np.linspace(3, 1, 60)).astype(np.float32)  # distinct singular values
    grad = rng.standard_normal((40, 60)).astype(np.float32)
    stats = alignment_statistics(_on(device, w), _on(device, grad))
    u, s, vh = np.linalg.svd(w.astype(np.float64), full_matrices=False)
    m = u.T @ grad.astype(np.float64) @ vh.T
    off = np.abs(m[~np.eye(40, dtype=bool)])
    assert np.allclose(stats["sigma"], s, rtol=1e-12)
    assert np.allclose(stats["projection"], np.diag(m), rtol=1e-8, atol=1e-10)
    expected = {"diag_mean": np.abs(np.diag(m)).mean(), "diag_std": np.abs(np.diag(m)).std(ddof=1),
                "offdiag_mean": off.mean(), "offdiag_std": off.std(ddof=1)}
    assert stats.keys() >= expected.keys()
    for key, value in expected.items():
        assert stats[key] == pytest.approx(value, rel=1e-8), key


@pytest.mark.parametrize("device", ARRAY_DEVICES)
def test_alignment_statistics_of_a_stack_are_each_matrix_s(device):
    # a batch's records: one call for the stack, each matrix's statistics as if alone
    rng = np.random.default_rng(2)
    w = (rng.standard_normal((3, 30, 20)) * np.linspace(3, 1, 20)).astype(np.float32)
    grad = rng.standard_normal((3, 30, 20)).astype(np.float32)
    stacked = alignment_statistics(_on(device, w), _on(device, grad))
    for k in range(3):
        alone = alignment_statistics(_on(device, w[k]), _on(device, grad[k]))
        assert stacked.keys() == alone.keys()
        for key, value in alone.items():
            assert stacked[key][k].shape == np.shape(value)
            np.testing.assert_allclose(stacked[key][k], value, rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_closed_form_invariant_solves_the_flow(depth):
    # F_N'(w) = 1 / |w|^(2 - 2/N): then F_N(w_1)/a_1 - F_N(w_2)/a_2 is constant along
    # dw_i/dt = -N |w_i|^(2-2/N) a_i r, for either sign of w
    for w in (0.3, -0.3, 1.7):
        h = 1e-6
        derivative = (theory.closed_form_invariant(w + h, depth) - theory.closed_form_invariant(w - h, depth)) / (2 * h)
        assert derivative == pytest.approx(1 / abs(w) ** (2 - 2 / depth), rel=1e-6)
    a, start = (1.0, 0.5), (0.02, -0.01)
    w1 = np.array([0.02, 0.1, 0.5])
    w2 = theory.closed_form_w2(w1, a, start, depth)
    assert w2[0] == pytest.approx(start[1])  # the curve passes through its start
    invariant = theory.closed_form_invariant(w1, depth) / a[0] - theory.closed_form_invariant(w2, depth) / a[1]
    assert np.allclose(invariant, invariant[0])


def test_single_measurement_follows_the_closed_form_and_converges_with_the_step():
    coarse, _ = theory.single_measurement(depths=(1, 2, 3), starts=((0.02, 0.01),), lr=8e-3)
    fine, curves = theory.single_measurement(depths=(1, 2, 3), starts=((0.02, 0.01),), lr=2e-3)
    assert fine.loc[fine["depth"] == 1, "max_deviation"].iloc[0] < 1e-12  # N = 1: a straight line
    deep = fine["depth"] > 1
    assert (fine.loc[deep, "max_rel_deviation"] < 5e-3).all()
    assert (fine.loc[deep, "max_rel_deviation"].to_numpy() < 0.5 * coarse.loc[deep, "max_rel_deviation"].to_numpy()).all()
    assert (fine["max_offdiagonal"] == 0).all()  # W stayed diagonal
    # every run ends on the solution set a1 w1 + a2 w2 = y; deeper ends closer to a sparse one
    assert np.allclose(fine["a1"] * fine["w1_final"] + fine["a2"] * fine["w2_final"], fine["y"], atol=1e-5)
    assert fine.sort_values("depth")["w2_final"].is_monotonic_decreasing
    assert set(curves.columns) >= {"depth", "w1", "w2", "closed_form_w2"}


def test_theorem3_rates_match_and_the_error_shrinks_with_the_step():
    for problem, size in (("completion", dict(d=10, rank=2, n_obs=50)), ("sensing", dict(d=8, rank=2, n_obs=40))):
        for depth in (1, 2, 3):
            big, _ = theory.rate_check(problem, depth, 0.4, flow_time=600, **size)
            small, points = theory.rate_check(problem, depth, 0.1, flow_time=600, **size)
            assert small["points"] > 50, (problem, depth)
            assert small["median_rel_error"] < 0.01, (problem, depth, small)
            assert small["median_rel_error"] < 0.5 * big["median_rel_error"], (problem, depth)
            assert points["moving"].any() and not points["moving"].all()


def test_commuting_measurements_tend_to_the_psd_minimum_nuclear_norm():
    table = theory.commuting_measurements(alphas=(1e-1, 1e-2, 1e-3))
    gaps = table["relative_gap"].to_numpy()
    assert (gaps > -1e-6).all() and gaps[-1] < 5e-3
    assert (gaps[1:] < gaps[:-1] / 3).all()  # shrinking with alpha
    assert (table["max_residual"] < 1e-4).all() and (table["min_eigenvalue"] > 0).all()


def test_proposition1_the_limit_is_not_a_schatten_minimizer():
    table = theory.proposition1(alpha=1e-3)
    assert np.allclose(table["gd_distance_to_limit"], 1e-3)  # the third diagonal entry never moves
    assert (table["perturbed_residual"] == 0).all() and (table["perturbed_min_eigenvalue"] >= 0).all()
    assert (table["schatten_p_perturbed"] < table["schatten_p_limit"]).all()
    assert np.allclose(table["schatten_p_limit"], 2.0)
