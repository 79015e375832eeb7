"""Optimizers as explicit state + update (in the style of optax).

Both optimizers of the paper move every factor along its own negative gradient with one
shared scalar step size ``eta_t``:  ``W_j <- W_j - eta_t grad_{W_j}``. An optimizer is
therefore a pair of pure functions

- ``init() -> state``
- ``step_size(state, grads) -> (eta_t, new_state)`` (and ``step_size_from_norm(state,
  sum_j ||grad_j||^2)``, the same given the squared gradient norm)

and the training loop applies ``eta_t``. The elapsed gradient-flow time after t steps
is ``sum_{s <= t} eta_s``.

``gd``: ``eta_t = lr``.

``group_rmsprop`` (the paper code's ``GroupRMSprop``): one scalar running average of the
total squared gradient over all factors,
``s_t = alpha s_{t-1} + (1 - alpha) sum_j ||grad_{W_j}||_F^2`` (``s_0 = 0``), bias-corrected
``s_hat_t = s_t / (1 - alpha^t)``, and ``eta_t = lr / (sqrt(s_hat_t) + eps)``
with ``alpha = 0.99``, ``eps = 1e-4``, default ``lr = 1e-3``. ``alpha^t`` is kept in the
state as a running product (so a device needs no step count: CUDA graphs replay one step).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from .backend import flat_view, namespace_of

OPTIMIZERS = ("gd", "group_rmsprop")


class GDState(NamedTuple):
    t: int


class GroupRMSpropState(NamedTuple):
    t: int
    square_avg: Any  # a float; a 0-d float64 tensor when the gradients are torch tensors
    bias_power: Any  # alpha^t as a running product (a float, or a tensor like square_avg)


class Optimizer(NamedTuple):
    name: str
    init: Callable[[], Any]
    step_size: Callable[[Any, Sequence[Any]], tuple[float, Any]]
    # the same from ``sum_j ||grad_j||^2`` already computed (None where the optimizer needs none):
    # the training loop reads it from the GPU with the loss, in one transfer
    step_size_from_norm: Callable[[Any, Any], tuple[float, Any]]
    uses_grad_norm: bool


def squared_norm(arrays: Sequence[Any]) -> Any:
    """``sum_j ||a_j||_F^2``: each term in the arrays' dtype, the sum in float64. A Python float
    for NumPy arrays; a 0-d float64 tensor for torch tensors, left on their device (no host
    synchronization), equal to the float bit for bit."""
    xp = namespace_of(arrays[0])
    if xp is np:
        total = 0.0
        for a in arrays:
            v = flat_view(a)
            total += float(xp.dot(v, v))
        return total
    terms = [xp.dot(flat_view(a), flat_view(a)).double() for a in arrays]
    return sum(terms[1:], terms[0])


def _sqrt(x: Any) -> Any:
    """Correctly rounded square root of a float or a tensor, so that the host's step size and
    a device's agree bit for bit: CUDA's double sqrt is, torch's CPU kernel is not (about 1% of
    values 1 ulp off), so a CPU tensor's goes through NumPy."""
    if isinstance(x, float):
        return math.sqrt(x)
    if x.device.type == "cpu":
        import torch

        return torch.as_tensor(np.sqrt(x.numpy()))
    return x.sqrt()


def _check_lr(lr: float) -> None:
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr!r}")


def gd(lr: float) -> Optimizer:
    """Gradient descent with a fixed step ``lr``."""
    _check_lr(lr)

    def init() -> GDState:
        return GDState(0)

    def step_size_from_norm(state: GDState, total: Any) -> tuple[float, GDState]:
        return float(lr), GDState(state.t + 1)

    def step_size(state: GDState, grads: Sequence[Any]) -> tuple[float, GDState]:
        return step_size_from_norm(state, None)

    return Optimizer("gd", init, step_size, step_size_from_norm, False)


def group_rmsprop_step(lr: Any, square_avg: Any, bias_power: Any, total: Any, alpha: float = 0.99,
                       eps: float = 1e-4) -> tuple[Any, Any, Any]:
    """GroupRMSprop's arithmetic for one step given ``total = sum_j ||grad_j||^2`` and the
    previous ``alpha^(t-1)``: ``(eta_t, s_t, alpha^t)``. Floats, or tensors (one value per run
    in :mod:`dmfcore.batched`)."""
    s = alpha * square_avg + (1.0 - alpha) * total
    bias_power = bias_power * alpha
    # products by reciprocals, not divisions: torch computes ``x / c`` on CUDA and ``c / x``
    # everywhere that way, so written so the host's floats and any device's tensors agree bit
    # for bit (the training loop computes the step on the host, its device chunks on the device)
    s_hat = s * (1.0 / (1.0 - bias_power))
    return lr * (1.0 / (_sqrt(s_hat) + eps)), s, bias_power


def group_rmsprop(lr: float = 1e-3, alpha: float = 0.99, eps: float = 1e-4) -> Optimizer:
    """The paper code's GroupRMSprop (see the module docstring for the update)."""
    _check_lr(lr)
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha!r}")

    def init() -> GroupRMSpropState:
        return GroupRMSpropState(0, 0.0, 1.0)

    def step_size_from_norm(state: GroupRMSpropState, total: Any) -> tuple[float, GroupRMSpropState]:
        eta, s, bias_power = group_rmsprop_step(lr, state.square_avg, state.bias_power, total, alpha, eps)
        return eta, GroupRMSpropState(state.t + 1, s, bias_power)

    def step_size(state: GroupRMSpropState, grads: Sequence[Any]) -> tuple[float, GroupRMSpropState]:
        return step_size_from_norm(state, squared_norm(grads))

    return Optimizer("group_rmsprop", init, step_size, step_size_from_norm, True)


def make_optimizer(name: str, lr: float) -> Optimizer:
    """Optimizer by name with learning rate ``lr`` (defaults live in :class:`dmfcore.runspec.TrainConfig`)."""
    if name == "gd":
        return gd(lr)
    if name == "group_rmsprop":
        return group_rmsprop(lr)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {name!r}")
