"""Hand-written gradients against torch autograd (float64)."""

import numpy as np
import pytest
import torch

from dmfcore.backend import resolve_backend
from dmfcore.model import backward, end_to_end, factor_gradients, forward, init_factors, make_workspace
from dmfcore.problems import low_rank_ground_truth, make_objective, sample_completion, sample_sensing
from helpers import CUDA

SHAPES = [(7, 7), (6, 9), (9, 5)]


def _autograd(factors, loss_fn):
    params = [torch.tensor(f, dtype=torch.float64, requires_grad=True) for f in factors]
    w = params[0]
    for p in params[1:]:
        w = p @ w
    loss = loss_fn(w)
    loss.backward()
    return float(loss.detach()), [p.grad.numpy() for p in params]


def _obs(problem, shape, seed):
    w_star = low_rank_ground_truth(*shape, rank=2, seed=seed)
    m = shape[0] * shape[1] // 2
    return sample_completion(w_star, m, seed) if problem == "completion" else sample_sensing(w_star, m, seed, dtype="float64")


def _torch_loss(obs):
    if hasattr(obs, "rows"):
        rows, cols, y = torch.as_tensor(obs.rows), torch.as_tensor(obs.cols), torch.as_tensor(obs.values)
        return lambda w: ((w[rows, cols] - y) ** 2).mean()
    a, y = torch.as_tensor(obs.A), torch.as_tensor(obs.y)
    return lambda w: (((a * w).sum(dim=(1, 2)) - y) ** 2).mean()


@pytest.mark.parametrize("device", ["cpu", "torch-cpu", CUDA])
@pytest.mark.parametrize("problem", ["completion", "sensing"])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_gradients_match_autograd(depth, shape, problem, device):
    obs = _obs(problem, shape, seed=depth)
    factors = init_factors(shape, depth, "gaussian", init_scale=1.0, seed=3)
    ref_loss, ref_grads = _autograd(factors, _torch_loss(obs))

    backend = resolve_backend(device, "float64")
    fs = [backend.asarray(f) for f in factors]
    ws = make_workspace(fs, backend)
    w = forward(fs, ws)
    loss = make_objective(obs, backend).loss_and_grad(w, ws.grad_w_t)
    grads = backward(fs, ws)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-10)
    assert len(grads) == depth
    for g, ref in zip(grads, ref_grads):
        g = np.asarray(g.cpu() if hasattr(g, "cpu") else g)
        assert g.shape == ref.shape
        assert np.linalg.norm(g - ref) <= 1e-6 * np.linalg.norm(ref)


def test_factor_gradients_of_arbitrary_end_to_end_gradient():
    # <G, W> is linear in W: its factor gradients are the chain-rule products, checked by autograd.
    rng = np.random.default_rng(0)
    factors = init_factors((5, 8), 3, "gaussian", 1.0, seed=1)
    g = rng.standard_normal((5, 8))
    _, ref = _autograd(factors, lambda w: (w * torch.as_tensor(g)).sum())
    for mine, theirs in zip(factor_gradients(factors, g), ref):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-12)


def test_end_to_end_is_product_in_order():
    factors = init_factors((4, 6), 3, "gaussian", 1.0, seed=2)
    assert [f.shape for f in factors] == [(4, 6), (4, 4), (4, 4)]
    np.testing.assert_allclose(end_to_end(factors), factors[2] @ factors[1] @ factors[0])
