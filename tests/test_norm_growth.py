"""Razin & Cohen's 2 x 2 completion (dmfcore.norm_growth): its gradient, gradient descent
against an independent autograd loop, the determinant-conditioned inits, the flow check."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dmfcore.backend import resolve_backend
from dmfcore.datasets import fixed_observations
from dmfcore.model import end_to_end, init_factors_and_draws
from dmfcore.metrics import first_passage
from dmfcore.norm_growth import RAZIN_COHEN_OBSERVED, _Field, gradient_flow, sign_change_loss
from dmfcore.optimizers import gd
from dmfcore.problems import make_objective
from dmfcore.training import train

OBS = fixed_observations(RAZIN_COHEN_OBSERVED, (2, 2))


def _loss(factors: list[np.ndarray]) -> float:
    """The mean squared error over the three observed entries, written out by hand."""
    w = end_to_end(factors)
    return ((w[0, 1] - 1) ** 2 + (w[1, 0] - 1) ** 2 + w[1, 1] ** 2) / 3


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_the_gradient_is_the_finite_difference_of_the_loss(depth):
    factors, _ = init_factors_and_draws((2, 2), depth, "normal_posdet", 0.5, seed=depth)
    field = _Field(OBS, factors)
    x = np.concatenate([f.ravel() for f in factors])
    loss, grad, _ = field.loss_and_grad(x)
    assert loss == pytest.approx(_loss(factors), rel=1e-12)
    h = 1e-6
    numeric = np.array([(_loss(field.unpack(x + h * e)) - _loss(field.unpack(x - h * e))) / (2 * h)
                        for e in np.eye(len(x))])
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_depth_1_leaves_the_unobserved_entry_where_it_started():
    backend = resolve_backend("cpu", "float64")
    factors, _ = init_factors_and_draws((2, 2), 1, "normal_posdet", 8e-3, seed=3)
    result = train(make_objective(OBS, backend), [backend.asarray(factors[0])], gd(5e-3), max_iters=100_000,
                   loss_threshold=1e-4)
    assert result.converged and result.w[0, 0] == factors[0][0, 0]
    assert abs(result.w[0, 1] - 1) < 0.02 and abs(result.w[1, 1]) < 0.02


def test_a_depth_2_run_reaches_the_autograd_loops_w11():
    """Gradient descent by the training loop against a plain torch autograd loop from the same
    initialization (float64): the same steps, the same |w11| at the end."""
    factors, _ = init_factors_and_draws((2, 2), 2, "balanced_posdet", 0.05, seed=0)
    backend = resolve_backend("cpu", "float64")
    ours = train(make_objective(OBS, backend), [backend.asarray(f) for f in factors], gd(5e-3),
                 max_iters=200_000, loss_threshold=1e-4)
    params = [torch.tensor(f, dtype=torch.float64, requires_grad=True) for f in factors]
    mask = torch.tensor([[0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    steps = 0
    while True:
        w = params[1] @ params[0]
        loss = (((w - target) * mask) ** 2).sum() / 3
        if loss.item() <= 1e-4:
            break
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= 5e-3 * p.grad
                p.grad = None
        steps += 1
    assert ours.converged and ours.iterations == steps
    assert abs(ours.w[0, 0]) == pytest.approx(abs(w[0, 0].item()), rel=1e-9)
    assert abs(ours.w[0, 0]) > 1  # this init's |w11| grows (from 0.05 to ~7)


@pytest.mark.parametrize("init, sign", [("normal_posdet", 1), ("normal_negdet", -1), ("balanced_posdet", 1)])
def test_a_determinant_conditioned_init_draws_until_its_sign(init, sign):
    draws = []
    for seed in range(20):
        factors, n = init_factors_and_draws((2, 2), 3, init, 8e-3, seed)
        assert sign * np.linalg.det(end_to_end(factors)) > 0
        draws.append(n)
    # each draw has probability about 1/2: most seeds need one or two, some more
    assert min(draws) == 1 and max(draws) > 1 and np.mean(draws) < 4
    with pytest.raises(ValueError, match="square"):
        init_factors_and_draws((2, 3), 2, init, 8e-3, 0)


def test_first_passage_values_and_sign_changes():
    losses = [0.6, 0.1, 0.02, 0.011, 0.0099, 0.002, 0.0009]
    values = [0, 1, 2, 3, 4, 5, 6]
    assert first_passage(losses, values, [1e-2, 1e-3, 1e-4]).tolist()[:2] == [4, 6]
    assert math.isnan(first_passage(losses, values, [1e-4])[0])
    assert sign_change_loss(losses, [1e-9, 2e-9, -1e-12, 1, 2, 3, 4]) == 0.02
    assert math.isnan(sign_change_loss(losses, [1.0] * 7))


def test_the_balanced_flow_follows_its_determinant_and_w11_grows_at_depth_3():
    factors, _ = init_factors_and_draws((2, 2), 3, "balanced_posdet", 1e-4, seed=0)
    flow = gradient_flow(OBS, factors, 1e-3, balanced=True)
    assert flow["reached"] == 1.0 and flow["loss"][-1] == pytest.approx(1e-3, rel=1e-3)
    dets = np.linalg.det(flow["w"])
    assert (dets > 0).all()
    # where W's entries resolve it, the determinant followed in log form is W's own
    resolved = dets > 1e-8
    np.testing.assert_allclose(flow["log_det"][resolved], np.log(dets[resolved]), rtol=1e-5, atol=1e-5)
    # the theorem's growth: |w11| ~ 1/sqrt(3 loss) as w12 w21 -> 1 and w22 -> 0 with det W > 0
    assert abs(flow["w"][-1, 0, 0]) == pytest.approx(1 / math.sqrt(3e-3), rel=0.02)
