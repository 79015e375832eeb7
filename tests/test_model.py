import numpy as np
import pytest

from dmfcore.model import end_to_end, factor_shapes, init_factors


def test_factor_shapes_full_width_and_depth_one():
    assert factor_shapes((10, 10), 1) == [(10, 10)]
    assert factor_shapes((6, 9), 3) == [(6, 9), (6, 6), (6, 6)]
    assert factor_shapes((9, 6), 2) == [(6, 6), (9, 6)]
    assert factor_shapes((9, 6), 2, width=3) == [(3, 6), (9, 3)]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_depth_is_rejected(bad):
    with pytest.raises(ValueError, match="depth"):
        factor_shapes((5, 5), bad)


def test_gaussian_init_scale_matches_paper():
    d, scale = 100, 1e-3
    for depth in (2, 3, 4):
        norms = [np.linalg.norm(end_to_end(init_factors((d, d), depth, "gaussian", scale, seed=s))) for s in range(5)]
        entries = init_factors((d, d), depth, "gaussian", scale, seed=0)[0]
        assert np.std(entries) == pytest.approx(scale ** (1 / depth) / np.sqrt(d), rel=0.02)
        # ||W(0)||_F ~ init_scale * sqrt(d), the paper code's check (0.8 .. 1.2)
        assert 0.8 < np.mean(norms) / (scale * np.sqrt(d)) < 1.2


def test_identity_and_orthogonal_inits():
    f = init_factors((5, 5), 3, "identity", 8.0)
    np.testing.assert_allclose(end_to_end(f), 8.0 * np.eye(5))
    f = init_factors((6, 6), 2, "orthogonal", 0.5, seed=1)
    c = (0.5 * np.sqrt(6)) ** 0.5
    for w in f:
        np.testing.assert_allclose(w.T @ w, c**2 * np.eye(6), atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 6), (5, 8), (8, 5)])
@pytest.mark.parametrize("depth", [2, 3, 4])
def test_balanced_init_is_balanced_with_requested_norm(shape, depth):
    f = init_factors(shape, depth, "balanced", 1e-2, seed=0)
    for lower, upper in zip(f, f[1:]):
        np.testing.assert_allclose(upper.T @ upper, lower @ lower.T, atol=1e-12)
    assert np.linalg.norm(end_to_end(f)) == pytest.approx(1e-2 * np.sqrt(min(shape)))


def test_bad_init_arguments():
    with pytest.raises(ValueError, match="init must be one of"):
        init_factors((4, 4), 2, "xavier")
    with pytest.raises(ValueError, match="init_scale"):
        init_factors((4, 4), 2, "gaussian", init_scale=-1.0)
