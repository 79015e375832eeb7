"""The training loop: gradient steps on the factors until the train loss reaches a threshold.

At step t (t = 0, 1, ...) the loop computes ``W(t)``, the loss ``l(W(t))`` and its
gradient, optionally records, stops if ``l <= loss_threshold`` (converged) or
``t == max_iters``, and otherwise applies ``W_j <- W_j - eta_t grad_{W_j}``. The
reported ``iterations`` is the number of updates applied.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .backend import backend_of, synchronize, to_numpy
from .checkpoints import Checkpointing
from .dynamics import alignment_statistics
from .model import backward, forward, make_workspace
from .optimizers import Optimizer, squared_norm
from .problems import Objective


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    """The outcome of :func:`train`.

    ``w``, ``train_loss`` and ``factors`` all belong to the last step evaluated: the
    loop stops before updating, so ``w`` is the product ``W_N ... W_1`` of ``factors``
    and ``train_loss`` is ``l(w)``, after ``iterations`` updates.
    """

    w: np.ndarray  # final end-to-end matrix (float64 NumPy)
    iterations: int
    converged: bool
    train_loss: float
    wall_seconds: float  # every stretch of a resumed run
    flow_time: float  # gradient-flow time: sum of step sizes
    trajectory: dict[str, list] = field(default_factory=dict)  # column -> values, empty if not recorded
    factors: list[np.ndarray] = field(default_factory=list)  # final W_1 .. W_N (float64 NumPy copies)
    resumed_from: int | None = None  # the step of the checkpoint the run resumed from, if any


# A matrix of at most this many entries is recorded entry by entry too (w_11, w_12, ...; and its
# determinant when square): small matrices whose single entries are the question (Razin & Cohen).
SMALL_MATRIX_ENTRIES = 16
# The Schatten-p quasi-norms recorded, (sum_i sigma_i^p)^(1/p): p < 1, toward the rank.
SCHATTEN_PS = (0.5, 0.25)


def spectrum_norms(sigma: np.ndarray) -> dict[str, float]:
    """Norms of a matrix from all its singular values ``sigma``: nuclear (sum), Frobenius (root of
    the sum of squares), the Schatten-p quasi-norms of :data:`SCHATTEN_PS` and the effective rank
    (exp of the entropy of sigma / sum sigma; 0 for the zero matrix)."""
    s = np.asarray(sigma, dtype=np.float64)
    total = float(s.sum())
    positive = s[s > 0]
    p = positive / total if total > 0 else positive
    out = {"nuclear_norm": total, "frobenius_norm": float(np.sqrt((s * s).sum())),
           "effective_rank": float(np.exp(-np.sum(p * np.log(p)))) if total > 0 else 0.0}
    out.update({f"schatten_{q:g}": float((positive ** q).sum() ** (1 / q)) for q in SCHATTEN_PS})
    return out


def _record(
    trajectories: Sequence[dict[str, list]],
    steps: Sequence[int],
    flow_times: Sequence[float],
    losses: Sequence[float],
    w: Any,
    grad_w: Any,
    w_star: Any,
    top_k: int,
    evaluate: Sequence[Callable[[Any], dict[str, float]] | None],
) -> None:
    """Append one record to each of R runs' trajectories: ``w``, ``grad_w`` and ``w_star``
    (or None) are stacks ``(R, d1, d2)``, the other arguments one entry per run. The SVDs of
    all R run on the device together (:func:`alignment_statistics`)."""
    stats = alignment_statistics(w, grad_w)
    sigma = stats.pop("sigma")
    d1, d2 = w.shape[-2:]
    entries = to_numpy(w).astype(np.float64).reshape(-1, d1, d2) if d1 * d2 <= SMALL_MATRIX_ENTRIES else None
    projection = stats.pop("projection")
    recon = None
    if w_star is not None:
        d = w - w_star
        recon = to_numpy((d * d).sum((-2, -1))) / (d.shape[-2] * d.shape[-1])
    for b, traj in enumerate(trajectories):
        row: dict[str, float] = {"step": steps[b], "flow_time": flow_times[b], "train_loss": losses[b]}
        if recon is not None:
            row["recon_error"] = float(recon[b])
        if evaluate[b] is not None:
            row.update(evaluate[b](w[b]))
        row.update({key: float(value[b]) for key, value in stats.items()})
        for i in range(top_k):
            row[f"sigma_{i + 1}"] = float(sigma[b, i]) if i < sigma.shape[1] else 0.0
        for i in range(top_k):  # u_i^T grad l(W) v_i: with sigma_i, Theorem 3's rate (dmfcore.dynamics)
            row[f"proj_{i + 1}"] = float(projection[b, i]) if i < projection.shape[1] else 0.0
        row.update(spectrum_norms(sigma[b]))
        if entries is not None:
            row.update({f"w_{i + 1}{j + 1}": float(entries[b, i, j]) for i in range(d1) for j in range(d2)})
            if d1 == d2:
                row["det"] = float(np.linalg.det(entries[b]))
        for key, value in row.items():
            traj.setdefault(key, []).append(value)


# Updates between two looks of the host at the losses, on a CUDA device (single runs and batches)
# and for batches on torch-cpu. Between looks a step is a replayed CUDA graph, which at d = 100
# takes less than half the time of a step that the host looks at (docs/gpu.md, benchmarks/gpu.py);
# at 943 x 1682 the difference is within 10%.
HOST_CHECK_EVERY = 100


def _next_look(t: int, check_every: int, record_every: int, max_iters: int, checkpoint_every: int) -> int:
    """The first step at or after ``t`` at which the host must read the loss: a check, a
    record, the last step, or a checkpoint."""
    return min([max_iters] + [-(-t // k) * k for k in (check_every, record_every, checkpoint_every) if k])


def _apply(factors: Sequence[Any], grads: Sequence[Any], ws: Any, eta: Any) -> None:
    """``W_j <- W_j - eta grad_{W_j}`` in place (``grads``: views into ``ws.grad_flat``)."""
    ws.grad_flat *= eta
    for f, g in zip(factors, grads):
        f -= g


def capture_cuda_graph(step: Callable[[], None], state: Sequence[Any], what: str, required: bool = True) -> Any:
    """``step()`` recorded as a CUDA graph, to be replayed (``graph.replay()``): the same
    kernels on the same buffers. ``state``: every tensor ``step`` reads before writing it
    (its other tensors are scratch it fills itself). A warm-up call comes first, on a side
    stream (lazy initializations cannot happen during capture); its effect on ``state`` is
    undone. A failed capture raises, naming ``what``; with ``required=False`` it warns and
    returns None instead (the caller then launches the steps itself).
    """
    import torch

    saved = [x.clone() for x in state]
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    for x, y in zip(state, saved):
        x.copy_(y)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            step()
    except Exception as exc:  # say which run asked for it, not only torch's words
        message = f"cuda_graphs: capturing {what} failed ({type(exc).__name__}: {exc})"
        if required:
            raise RuntimeError(f"{message}; train without cuda_graphs") from exc
        warnings.warn(f"{message}; launching its kernels one by one instead", RuntimeWarning, stacklevel=3)
        return None
    return graph


class StepRunner:
    """Runs ``step()`` ``n`` times at a call: replays of its CUDA graph with ``graphs`` (captured
    at the first call, :func:`capture_cuda_graph` with ``state()``, ``what`` and ``required``),
    else launched from Python, as after an optional capture that failed (it is not retried)."""

    def __init__(self, step: Callable[[], None], state: Callable[[], Sequence[Any]], what: str, graphs: bool,
                 required: bool) -> None:
        self.step, self.state, self.what, self.graphs, self.required = step, state, what, graphs, required
        self.graph: Any = None

    def __call__(self, n: int) -> None:
        if self.graphs and self.graph is None:
            self.graph = capture_cuda_graph(self.step, self.state(), self.what, self.required)
            self.graphs = self.graph is not None
        for _ in range(n):
            self.graph.replay() if self.graph is not None else self.step()


class _DeviceChunks:
    """Steps on torch tensors with nothing read back until the chunk's end.

    Every step writes its loss into a device buffer (``losses[j]``: the loss at step ``t + j``)
    and applies its update; the host then reads the chunk's losses in one transfer. If step
    ``t + k`` stopped the run (loss at most ``loss_threshold``, or not finite), the factors
    and optimizer state are put back to the chunk's start and its first ``k`` steps replayed:
    the same kernels on the same buffers, so the factors are those of step ``t + k`` bit for
    bit, as if the loop had stopped there. The stopping test thus costs nothing per step (on
    the device it took 20 of a step's 57 operations at d = 100, depth 3: small kernels that
    cost about 2 us each even replayed as a CUDA graph); a run pays at most one chunk twice,
    at its end. Every step works on the same
    tensors (factors, workspace, the 0-d optimizer state, gradient-flow time and position in
    the chunk), so one step can be captured as a CUDA graph and replayed (``graphs=True``).
    """

    def __init__(self, objective: Objective, factors: Sequence[Any], ws: Any, optimizer: Optimizer, state: Any,
                 loss_threshold: float, graphs: bool, graphs_required: bool = True, capacity: int = 1) -> None:
        import torch

        device = factors[0].device
        self.objective, self.factors, self.ws, self.optimizer = objective, list(factors), ws, optimizer
        self.loss_threshold = loss_threshold
        self.steps = StepRunner(self._one_step, self._state, "a training step", graphs, graphs_required)
        scalar = dict(dtype=torch.float64, device=device)
        self.elapsed = torch.zeros((), **scalar)
        self.losses = torch.zeros(capacity, **scalar)
        self.index = torch.zeros(1, dtype=torch.int64, device=device)  # the step's position in the chunk
        self.state_type = type(state)
        self.state = [torch.zeros((), **scalar) for _ in state[1:]]  # every field but the step count

    def _one_step(self) -> None:
        """One step from the buffers into the buffers (the function a CUDA graph captures)."""
        w = forward(self.factors, self.ws)
        # index_copy_, not losses[index] = ...: a tensor index there is read by the host
        self.losses.index_copy_(0, self.index, self.objective.loss_and_grad(w, self.ws.grad_w_t).reshape(1))
        state = self.state_type(0, *self.state)  # the count is the host's: no field uses it on the device
        grads = backward(self.factors, self.ws)
        eta, state = self.optimizer.step_size(state, [self.ws.grad_flat])
        _apply(self.factors, grads, self.ws, eta)
        self.elapsed.add_(eta)
        for buffer, value in zip(self.state, state[1:]):
            buffer.copy_(value)
        self.index += 1

    def _state(self) -> list[Any]:
        """Every tensor :meth:`_one_step` reads before writing it."""
        return [*self.factors, self.elapsed, self.index, *self.state]

    def _start(self, state: Any, elapsed: Any) -> None:
        self.index.fill_(0)
        self.elapsed.copy_(_scalar_tensor(elapsed, self.elapsed))
        for buffer, value in zip(self.state, state[1:]):
            buffer.copy_(_scalar_tensor(value, buffer))

    def run(self, state: Any, elapsed: Any, t: int, n: int) -> tuple[Any, Any, int, float, float]:
        """Steps ``t .. t + n - 1`` (``n`` at most ``capacity``), up to the first that stops the
        run. Returns the optimizer state and the gradient-flow time (device values), the
        stopping step (``t + n`` if none), the loss there (NaN if none) and the last finite
        loss seen (NaN if none); the host reads the losses once."""
        if n > self.losses.shape[0]:
            raise ValueError(f"a chunk of {n} steps exceeds the buffer of {self.losses.shape[0]} losses")
        start = [f.clone() for f in self.factors]
        self._start(state, elapsed)
        self.steps(n)
        losses = self.losses[:n].tolist()
        k, last_finite = first_stop(losses, self.loss_threshold)
        if k is None:
            return self._end(state, n), self.elapsed.clone(), t + n, math.nan, last_finite
        if math.isfinite(losses[k]):  # the factors of step t + k: the chunk again, up to there
            for f, saved in zip(self.factors, start):
                f.copy_(saved)
            self._start(state, elapsed)
            self.steps(k)
        return self._end(state, k), self.elapsed.clone(), t + k, losses[k], last_finite

    def _end(self, state: Any, n: int) -> Any:
        return self.state_type(state[0] + n, *(x.clone() for x in self.state))


def _scalar_tensor(value: Any, like: Any) -> Any:
    """A float or a 0-d tensor as a 0-d tensor of ``like``'s dtype and device."""
    import torch

    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def first_stop(losses: Sequence[float], loss_threshold: float) -> tuple[int | None, float]:
    """The stopping rule on a run's losses at consecutive steps, from a step at which it was
    still training: the position of the first loss at most ``loss_threshold`` or not finite
    (the run stops there; None if none), and the last finite loss up to there (NaN if none)."""
    losses = np.asarray(losses, dtype=np.float64)
    stops = np.flatnonzero(~(np.isfinite(losses) & (losses > loss_threshold)))
    if not stops.size:  # every loss is finite
        return None, float(losses[-1]) if losses.size else math.nan
    k = int(stops[0])  # the losses before it are finite
    finite = k + 1 if math.isfinite(losses[k]) else k
    return k, float(losses[finite - 1]) if finite else math.nan


def _host_values(*scalars: Any) -> list[float]:
    """Several device values read by the host in one transfer (each read waits for the GPU);
    floats (NumPy's) as they are."""
    if all(isinstance(x, float) for x in scalars):
        return list(scalars)
    import torch

    return torch.stack(scalars).tolist()


def _diverged(t: int, loss: float, last_finite: float) -> TrainingDivergedError:
    return TrainingDivergedError(
        f"training diverged at step {t}: loss is {loss} (last finite loss {last_finite:.6g}); "
        "lower the learning rate or the init scale"
    )


def train(
    objective: Objective,
    factors: Sequence[Any],
    optimizer: Optimizer,
    *,
    max_iters: int = 1_000_000,
    loss_threshold: float = 1e-6,
    record_every: int = 0,
    top_k: int = 10,
    ground_truth: Any = None,
    evaluate: Callable[[Any], dict[str, float]] | None = None,
    checkpointing: Checkpointing | None = None,
    check_every: int | None = None,
    cuda_graphs: bool | None = None,
) -> TrainResult:
    """Train the factors (backend arrays; copied, not modified) on ``objective``.

    Returns the final end-to-end matrix, loss and factors ``W_1 .. W_N`` (float64 NumPy
    copies, the ones that produced the final ``w``) with the number of updates applied.

    ``record_every = k > 0`` records, every k steps and at the last step: step, elapsed
    gradient-flow time, train loss, reconstruction error (when ``ground_truth``, a backend
    array, is given), the columns that ``evaluate(W)`` returns (e.g. a held-out test error),
    the ``top_k`` singular values of W with their projections ``u_r^T grad l(W) v_r``
    (``proj_r``), and Corollary 1's alignment statistics. With
    ``checkpointing``, the run saves its state at a fixed interval and resumes from a
    checkpoint of itself (:class:`Checkpointing`).

    On torch tensors ``check_every=k`` reads the loss only every ``k`` steps and at records and
    checkpoints (reading a GPU value waits for the GPU); in between, the losses and the step
    size stay on the device, and a chunk that passes a stop is replayed up to it
    (:class:`_DeviceChunks`): ``iterations``, ``w`` and every recorded number are those of the
    step-by-step loop, bit for bit. With
    ``cuda_graphs`` (CUDA only, with ``check_every > 1``) a step is captured once as a CUDA
    graph and the steps between two looks are replays of it: no Python and no launch per
    kernel, the same numbers. Defaults: on a CUDA device ``check_every`` is
    :data:`HOST_CHECK_EVERY` with graphs (if a capture fails, a warning says so and the steps
    are launched one by one); elsewhere the host reads the loss every step.

    Raises :class:`TrainingDivergedError` naming the step and the last finite loss if the
    loss becomes NaN or infinite.
    """
    if max_iters < 0:
        raise ValueError(f"max_iters must be >= 0, got {max_iters}")
    if record_every < 0:
        raise ValueError(f"record_every must be >= 0, got {record_every}")
    backend = backend_of(factors[0])
    on_cuda = backend.device.startswith("cuda")
    required_graphs = bool(cuda_graphs)
    if check_every is None:
        check_every = HOST_CHECK_EVERY if on_cuda else 1
    if cuda_graphs is None:
        cuda_graphs = on_cuda and check_every > 1
    if check_every < 1 or (check_every > 1 and backend.name == "numpy"):
        raise ValueError(f"check_every must be >= 1 (and 1 on NumPy, where the host is the device), got {check_every}")
    if cuda_graphs and (not on_cuda or check_every == 1):
        raise ValueError(f"cuda_graphs needs a CUDA device and check_every > 1 (graphs replay the steps between "
                         f"two looks), got device {backend.device!r}, check_every {check_every}")
    factors = [backend.asarray(f) for f in factors]  # private copies, trained in place
    factors = [f.copy() if isinstance(f, np.ndarray) else f.clone() for f in factors]
    ws = make_workspace(factors, backend)
    traj: dict[str, list] = {}
    state = optimizer.init()
    elapsed: Any = 0.0
    last_finite = math.nan
    converged = False
    t = 0
    wall_before = 0.0  # seconds spent before the checkpoint this run resumes from
    saved = checkpointing.load() if checkpointing is not None else None
    resumed_from = None if saved is None else saved[2]
    if saved is not None:
        saved_factors, saved_state, t, elapsed, last_finite, traj, wall_before = saved
        for f, g in zip(factors, saved_factors):
            f[...] = backend.asarray(g, dtype=str(g.dtype))
        state = type(state)(*saved_state)
    checkpoint_every = checkpointing.every if checkpointing is not None else 0
    chunks = None  # the device-side steps between two looks (made at the first such chunk)
    synchronize(factors[0])
    start = time.perf_counter()
    # divergence is detected from the loss itself: silence NumPy's overflow warnings
    with np.errstate(over="ignore", invalid="ignore"):
        while True:
            w = forward(factors, ws)
            loss_on_device = objective.loss_and_grad(w, ws.grad_w_t)
            # the factors' gradients before the host looks, so that it reads the loss and the
            # gradient norm (GroupRMSprop's step) in one transfer and computes the step size
            # itself: on a GPU no kernels for scalar arithmetic, one wait per step
            grads = backward(factors, ws)
            if optimizer.uses_grad_norm:
                loss, total = _host_values(loss_on_device, squared_norm([ws.grad_flat]))
            else:
                loss, total = float(loss_on_device), None
            if not math.isfinite(loss):
                raise _diverged(t, loss, last_finite)
            last_finite = loss
            converged = loss <= loss_threshold
            done = converged or t >= max_iters
            if record_every and (t % record_every == 0 or done):
                _record([traj], [t], [float(elapsed)], [loss], w[None], ws.grad_w[None],
                        None if ground_truth is None else ground_truth[None], top_k, [evaluate])
            if done:
                break
            eta, state = optimizer.step_size_from_norm(state, total)
            _apply(factors, grads, ws, eta)
            elapsed = elapsed + eta
            t += 1
            n = _next_look(t, check_every, record_every, max_iters, checkpoint_every) - t
            if n > 0:
                if chunks is None:
                    chunks = _DeviceChunks(objective, factors, ws, optimizer, state, loss_threshold, cuda_graphs,
                                           required_graphs, capacity=check_every)
                state, elapsed, stop, stop_loss, chunk_last_finite = chunks.run(state, elapsed, t, n)
                stopped, t = stop < t + n, stop
                last_finite = chunk_last_finite if math.isfinite(chunk_last_finite) else last_finite
                if stopped and not math.isfinite(stop_loss):
                    raise _diverged(t, stop_loss, last_finite)
            if checkpointing is not None and t % checkpointing.every == 0:
                checkpointing.save(factors, state, t, float(elapsed), last_finite, traj,
                                   wall_before + time.perf_counter() - start)
    synchronize(w)
    wall = wall_before + time.perf_counter() - start
    w_final = to_numpy(w).astype(np.float64)  # astype copies: w may be a workspace buffer
    factors_final = [to_numpy(f).astype(np.float64) for f in factors]
    return TrainResult(
        w_final, t, bool(converged), float(loss), wall, float(elapsed), traj, factors=factors_final,
        resumed_from=resumed_from,
    )
