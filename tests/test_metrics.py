import numpy as np
import pytest

from dmfcore.metrics import (
    effective_rank,
    nuclear_norm,
    numerical_rank,
    reconstruction_error,
    schatten_p,
    singular_values,
    summary,
)


def _with_singular_values(sigma, d1=8, d2=6, seed=0):
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((d1, d1)))
    v, _ = np.linalg.qr(rng.standard_normal((d2, d2)))
    s = np.zeros((d1, d2))
    s[: len(sigma), : len(sigma)] = np.diag(sigma)
    return u @ s @ v.T


def test_effective_rank_of_projector_is_its_rank():
    for k in (1, 2, 5):
        p = _with_singular_values([1.0] * k)
        assert effective_rank(p) == pytest.approx(k, rel=1e-10)
    assert effective_rank(np.zeros((3, 3))) == 0.0


def test_effective_rank_between_one_and_rank():
    w = _with_singular_values([10.0, 1.0, 0.1])
    p = np.array([10.0, 1.0, 0.1]) / 11.1
    assert effective_rank(w) == pytest.approx(np.exp(-np.sum(p * np.log(p))))
    assert 1 < effective_rank(w) < 3


def test_norms_and_ranks_from_known_spectrum():
    sigma = [4.0, 2.0, 1.0, 1e-9]
    w = _with_singular_values(sigma)
    np.testing.assert_allclose(singular_values(w)[:4], sigma, atol=1e-12)
    assert nuclear_norm(w) == pytest.approx(7.0)
    assert schatten_p(w, 0.5) == pytest.approx(2 + np.sqrt(2) + 1 + np.sqrt(1e-9), rel=1e-6)
    assert schatten_p(w, 2) == pytest.approx(np.linalg.norm(w) ** 2)
    assert numerical_rank(w, tol=1e-6) == 3
    assert numerical_rank(w, tol=1e-12) == 4
    with pytest.raises(ValueError):
        schatten_p(w, 0)


def test_reconstruction_error_is_mean_over_all_entries():
    a = np.zeros((4, 5))
    b = np.zeros((4, 5))
    b[0, 0] = 2.0
    assert reconstruction_error(a, b) == pytest.approx(4.0 / 20)
    with pytest.raises(ValueError, match="shape"):
        reconstruction_error(a, np.zeros((5, 4)))


def test_summary_is_consistent():
    w = _with_singular_values([3.0, 1.0])
    s = summary(w, w)
    assert s["recon_error"] == 0.0
    assert s["nuclear_norm"] == pytest.approx(4.0)
    assert s["numerical_rank"] == 2
