import math

import numpy as np
import pytest
import torch

from dmfcore.optimizers import gd, group_rmsprop, group_rmsprop_step, make_optimizer
from helpers import CUDA


def _reference_group_rmsprop(grad_sequence, lr, alpha=0.99, eps=1e-4):
    """Hand-computed: one scalar average of the total squared gradient, bias-corrected."""
    square_avg, steps = 0.0, []
    for t, grads in enumerate(grad_sequence, start=1):
        total = sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads)
        square_avg = alpha * square_avg + (1 - alpha) * total
        steps.append(lr / (math.sqrt(square_avg / (1 - alpha**t)) + eps))
    return steps


def test_group_rmsprop_matches_hand_computed_updates():
    rng = np.random.default_rng(0)
    seq = [[rng.standard_normal((4, 3)) * 10.0 ** (-t), rng.standard_normal((3, 3))] for t in range(6)]
    opt = group_rmsprop(lr=2e-3)
    state = opt.init()
    mine = []
    for grads in seq:
        eta, state = opt.step_size(state, grads)
        mine.append(eta)
    assert state.t == 6
    np.testing.assert_allclose(mine, _reference_group_rmsprop(seq, 2e-3), rtol=1e-12)
    # first step: s_hat = ||g||^2 exactly, so the step is lr / (||g|| + eps)
    norm = math.sqrt(sum(float(np.sum(g**2)) for g in seq[0]))
    assert mine[0] == pytest.approx(2e-3 / (norm + 1e-4), rel=1e-12)


def test_group_rmsprop_applied_to_parameters_matches_reference_updates():
    # Apply the updates W <- W - eta_t g_t and compare against torch's own arithmetic on the same numbers.
    rng = np.random.default_rng(1)
    w = [rng.standard_normal((3, 3)), rng.standard_normal((2, 3))]
    ref = [x.copy() for x in w]
    opt = group_rmsprop()
    state = opt.init()
    grads_seq = [[rng.standard_normal(x.shape) for x in w] for _ in range(4)]
    for grads, eta_ref in zip(grads_seq, _reference_group_rmsprop(grads_seq, 1e-3)):
        eta, state = opt.step_size(state, grads)
        w = [x - eta * g for x, g in zip(w, grads)]
        ref = [x - eta_ref * g for x, g in zip(ref, grads)]
    for a, b in zip(w, ref):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)


def test_state_is_explicit_and_not_mutated():
    opt = group_rmsprop()
    s0 = opt.init()
    g = [np.ones((2, 2))]
    eta1, s1 = opt.step_size(s0, g)
    eta1_again, _ = opt.step_size(s0, g)
    assert eta1 == eta1_again and s0.t == 0 and s1.t == 1


def test_gd_constant_step_and_bad_arguments():
    opt = gd(0.25)
    state = opt.init()
    for _ in range(3):
        eta, state = opt.step_size(state, [np.ones(2)])
        assert eta == 0.25
    with pytest.raises(ValueError, match="lr"):
        gd(-1.0)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_optimizer("adam", 1e-3)
    with pytest.raises(TypeError):
        make_optimizer("gd")  # no hidden default learning rate


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_group_rmsprop_step_is_the_same_on_the_host_and_on_a_device(device):
    """The training loop computes GroupRMSprop's step on the host when it reads every step and
    on the device inside chunks: both must agree bit for bit (torch's CPU sqrt and its scalar
    division on CUDA are not correctly rounded; the step is written around both)."""
    rng = np.random.default_rng(0)
    for _ in range(3000):
        square_avg, total = (float(rng.random() * 10 ** rng.uniform(-6, 6)) for _ in range(2))
        bias_power = 0.99 ** int(rng.integers(0, 10_000))
        on_host = group_rmsprop_step(1e-3, square_avg, bias_power, total)
        on_device = group_rmsprop_step(*(torch.tensor(v, dtype=torch.float64, device=device)
                                         for v in (1e-3, square_avg, bias_power, total)))
        assert [float(v) for v in on_device] == list(on_host)
