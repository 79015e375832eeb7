"""Many runs trained together on one torch device: factors with a leading batch axis.

A batch holds B runs of one end-to-end shape, of any depths. Each run b has its own
observation set, initial factors, learning rate, optimizer state and stopping step; every step
applies to all of them at once, ``W_j[b] <- W_j[b] - active[b] eta_b grad_{W_j[b]}``, with
batched matrix products (``(runs, rows, cols)`` tensors, one stack of factors per depth). The
objective sees only the runs' end-to-end matrices ``W_b`` (one (B, d1, d2) tensor), so runs of
several depths on one measurement set read it once per step for all of them. A run stops as
it would alone: at the first step whose train loss is at most ``loss_threshold`` (or at
``max_iters``); from there on its ``active[b]`` is 0, so its factors, its step count and its
gradient-flow time stay those of its stopping step while the others go on. The batch ends
when every run has stopped.

Completion: the observed entries of all runs are one gather (positions
``b d1 d2 + i d2 + j``) and one scatter; per-run losses are row sums of a (runs x most entries)
array of the squared residuals, zero-padded: the same sum in the same order every time (an
``index_add_`` would add with atomics on a GPU, in an order that varies from run to run). Sensing: runs that
share a measurement set are one (runs x d1 d2) by (d1 d2 x m) product per step, so ``A`` is
read twice per step (predictions and gradient) for all of them, not twice per run; the sets of
one size m (and as many runs each) are stacked, one batched product per pass for all of them
(a grid over seeds and n_obs has a few sizes, not one set per seed: a few kernels per step).

The host reads the losses every ``check_every`` steps and at records; runs record exactly
what :func:`dmfcore.training.train` records, and a run's result is a
:class:`~dmfcore.training.TrainResult` as from a single run: results agree with single runs
to rounding (sums are taken in another order).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Callable, Sequence

import numpy as np

from .backend import Backend, synchronize, to_numpy
from .optimizers import OPTIMIZERS, group_rmsprop_step
from .problems import CompletionObservations, Observations, SensingObservations
from .training import (
    HOST_CHECK_EVERY,
    StepRunner,
    TrainingDivergedError,
    TrainResult,
    _next_look,
    _record,
    first_stop,
)


@dataclass(frozen=True)
class BatchRun:
    """One run of a batch: its data, initial factors ``W_1 .. W_N`` (NumPy) and step size."""

    observations: Observations
    factors: Sequence[np.ndarray]
    lr: float
    ground_truth: np.ndarray | None = None  # recorded reconstruction error (synthetic data)
    evaluate: Callable[[Any], dict[str, float]] | None = None  # extra recorded columns, W -> values
    label: str = ""  # names the run in errors


@dataclass
class _CompletionTerm:
    """Every completion run of the batch: one gather, one segment sum, one scatter per step."""

    flat_index: Any  # (M,) positions of the observed entries in the flattened (B, d1, d2) W
    slot: Any  # (M,) position of each entry in the flattened (B, width) array of squared residuals
    width: int  # the most entries of any run
    scale: Any  # (M,) 2 / m_b: the gradient of a mean of squares
    y: Any  # (M,)
    m: Any  # (B,) float64, entries per run (1 for runs without entries here: no division by 0)


@dataclass
class _SensingBlock:
    """G measurement sets of one size m, each shared by R runs: set g (rows ``vec(A_k^T)``)
    is ``a_t[g]``, read by the runs ``runs[g]``."""

    runs: Any  # (G, R) int64 run indices
    a_t: Any  # (G, m, d2 d1)
    y: Any  # (G, R, m)


@dataclass
class BatchObjective:
    """``l_b(W_b) = mean_k (pred_k(W_b) - y_k)^2`` for every run b; losses in float64."""

    batch: int
    shape: tuple[int, int]
    completion: _CompletionTerm | None
    sensing: list[_SensingBlock] = field(default_factory=list)

    def loss_and_grad(self, w: Any, grad_w: Any) -> Any:
        """Return the (B,) float64 losses and write every ``grad l_b(W_b)`` into ``grad_w`` (B, d1, d2)."""
        import torch

        losses = torch.zeros(self.batch, dtype=torch.float64, device=w.device)
        grad_w.zero_()
        c = self.completion
        if c is not None:
            r = w.reshape(-1)[c.flat_index] - c.y
            squares = torch.zeros(self.batch * c.width, dtype=torch.float64, device=w.device)
            squares[c.slot] = (r * r).double()
            losses = squares.reshape(self.batch, c.width).sum(dim=1) / c.m
            grad_w.reshape(-1)[c.flat_index] = r * c.scale
        for block in self.sensing:
            sets, per_set = block.runs.shape
            runs = block.runs.reshape(-1)
            w_t = w[runs].mT.reshape(sets, per_set, -1)  # rows vec(W_b^T), the order of A_t's rows
            r = torch.bmm(w_t, block.a_t.mT) - block.y  # (G, R, m): the first pass over A
            m = r.shape[2]
            losses[runs] = (r * r).sum(dim=2).reshape(-1).double() / m
            r *= 2.0 / m
            grad_t = torch.bmm(r, block.a_t).reshape(sets * per_set, *self.shape[::-1])  # the second pass
            grad_w[runs] = grad_t.mT
        return losses

    def select(self, keep: Sequence[int]) -> BatchObjective:
        """The objective of the runs ``keep`` (run indices, in their new order), built on the
        device from this one's tensors: the measurement sets their runs read, restacked."""
        import torch

        device = self.sensing[0].a_t.device if self.sensing else self.completion.y.device
        new_of_old = np.full(self.batch, -1)
        new_of_old[list(keep)] = np.arange(len(keep))
        term, c = None, self.completion
        if c is not None:
            size = self.shape[0] * self.shape[1]
            new_run = torch.as_tensor(new_of_old, device=device)[c.flat_index // size]
            kept = new_run >= 0
            if bool(kept.any()):
                new_run = new_run[kept]
                term = _CompletionTerm(new_run * size + c.flat_index[kept] % size,
                                       new_run * c.width + c.slot[kept] % c.width, c.width, c.scale[kept], c.y[kept],
                                       c.m[torch.as_tensor(list(keep), device=device)])
        sets: dict[tuple, list[tuple[Any, Any, list[int]]]] = {}  # (m, R) -> (A_t, y rows, new runs) per set
        for block in self.sensing:
            for g, runs in enumerate(block.runs.tolist()):
                rows = [k for k, b in enumerate(runs) if new_of_old[b] >= 0]
                if rows:
                    key = _block_key(block.a_t.shape[1], len(rows))
                    sets.setdefault(key, []).append((block.a_t[g], block.y[g][rows], [int(new_of_old[runs[k]]) for k in rows]))
        sensing = [_SensingBlock(torch.as_tensor([runs for _, _, runs in members], device=device),
                                 torch.stack([a_t for a_t, _, _ in members]), torch.stack([y for _, y, _ in members]))
                   for members in sets.values()]
        return BatchObjective(len(keep), self.shape, term, sensing)


def _block_key(m: int, readers: int) -> tuple:
    """The block of a measurement set of m rows read by ``readers`` runs: the sets of one size,
    read by as many runs each, are one stack (one batched product per pass over them)."""
    return (m, readers)


def batch_objective(observations: Sequence[Observations], backend: Backend) -> BatchObjective:
    """One objective for the runs' observation sets (all of one shape), on a torch ``backend``.
    Runs whose observation set is the same object share its measurement matrix; the sensing sets
    of one size, read by as many runs each, are one block (one batched product per pass)."""
    import torch

    shape = observations[0].shape
    if any(o.shape != shape for o in observations):
        raise ValueError(f"a batch holds runs of one shape; got {sorted({o.shape for o in observations})}")
    d1, d2 = shape
    completion = [(b, o) for b, o in enumerate(observations) if isinstance(o, CompletionObservations)]
    term = None
    if completion:
        index = np.concatenate([b * d1 * d2 + o.rows * d2 + o.cols for b, o in completion])
        counts = np.ones(len(observations))
        for b, o in completion:
            counts[b] = o.m
        width = max(o.m for _, o in completion)
        term = _CompletionTerm(
            backend.index_array(index),
            backend.index_array(np.concatenate([b * width + np.arange(o.m) for b, o in completion])),
            width,
            backend.asarray(np.concatenate([np.full(o.m, 2.0 / o.m) for _, o in completion])),
            backend.asarray(np.concatenate([o.values for _, o in completion])),
            torch.as_tensor(counts, dtype=torch.float64, device=backend.device),
        )
    readers: dict[int, list[int]] = {}  # measurement set (by identity) -> the runs that read it
    for b, o in enumerate(observations):
        if isinstance(o, SensingObservations):
            readers.setdefault(id(o), []).append(b)
    blocks: dict[tuple, list[list[int]]] = {}
    for runs in readers.values():
        blocks.setdefault(_block_key(observations[runs[0]].m, len(runs)), []).append(runs)
    sensing = []
    for (m, *_), sets in blocks.items():
        first = observations[sets[0][0]].A
        a_t = np.empty((len(sets), m, d2 * d1), dtype=first.dtype)
        for g, runs in enumerate(sets):  # one copy per set, straight into the stack
            a_t[g].reshape(m, d2, d1)[...] = observations[runs[0]].A.transpose(0, 2, 1)
        y = np.stack([[observations[b].y for b in runs] for runs in sets])
        sensing.append(_SensingBlock(backend.index_array(np.array(sets)), backend.asarray(a_t), backend.asarray(y)))
    return BatchObjective(len(observations), shape, term, sensing)


@dataclass
class _FactorStack:
    """The runs of one factor shape (depth and widths) in a batch: rows ``start:start + runs``,
    their factors ``W_1 .. W_N`` (each (runs, rows_j, cols_j)), prefix products ``P_j = W_j
    P_{j-1}`` (``P_1 = W_1``; ``P_N`` is ``w``, their rows of the batch's end-to-end matrices),
    their rows ``grad_w`` of the batch's ``grad l(W)`` and their factors' gradients."""

    start: int
    factors: list[Any]
    prefix: list[Any]
    w: Any
    grad_w: Any
    grads: list[Any]

    @property
    def stop(self) -> int:
        return self.start + self.factors[0].shape[0]

    def products(self) -> None:
        """``W = W_N ... W_1`` of every run, into ``w``."""
        import torch

        for j in range(1, len(self.factors)):
            torch.matmul(self.factors[j], self.prefix[j - 1], out=self.prefix[j])
        if len(self.factors) == 1:
            self.w.copy_(self.factors[0])

    def factor_gradients(self) -> None:
        """``grad_{W_j} = dP_j P_{j-1}^T``, ``dP_{j-1} = W_j^T dP_j`` from ``dP_N = grad l(W)``, per run."""
        import torch

        dp = self.grad_w
        for j in range(len(self.factors) - 1, 0, -1):
            torch.matmul(dp, self.prefix[j - 1].mT, out=self.grads[j])
            dp = self.factors[j].mT @ dp
        self.grads[0].copy_(dp)


def _factor_stack(factors: list[Any], start: int, w: Any, grad_w: Any, backend: Backend) -> _FactorStack:
    """The stack of ``factors`` (rows ``start:`` of the batch), with buffers for its products
    and gradients; its end-to-end matrices are rows of ``w``, their gradients of ``grad_w``."""
    import torch

    runs = factors[0].shape[0]
    rows, rows_grad = w[start:start + runs], grad_w[start:start + runs]
    inner = [backend.empty((runs, f.shape[1], factors[0].shape[2])) for f in factors[1:-1]]
    prefix = [factors[0], *inner, rows][:len(factors)]
    return _FactorStack(start, factors, prefix, rows, rows_grad, [torch.empty_like(f) for f in factors])


class _BatchSteps:
    """The steps of a batch on fixed buffers, nothing read back: :meth:`evaluate` computes
    ``W``, the losses and their gradient at the current step and freezes the runs whose loss
    stops them (``active``: 0 from there on); :meth:`advance` updates every run from there,
    evaluates anew and keeps the losses in the chunk's history (``losses``, a row a step), from
    which the host tells where each run stopped (:meth:`look`). Since every call works on the
    same tensors, :meth:`advance` can be captured as a CUDA graph and replayed (``run(n)``: n
    advances, :class:`~dmfcore.training.StepRunner`).

    ``stacks``: the factors of the runs of each factor shape, consecutive rows of the batch
    (runs of several depths share one objective: a sensing set is read once per step for
    every run on it, whatever its depth)."""

    def __init__(self, objective: BatchObjective, stacks: list[list[Any]], lrs: Any, optimizer: str,
                 loss_threshold: float, capacity: int, backend: Backend, graphs: bool, graphs_required: bool) -> None:
        import torch

        batch, dev = len(lrs), backend.device
        f64 = dict(dtype=torch.float64, device=dev)
        self.backend, self.graphs, self.graphs_required = backend, graphs, graphs_required
        self.objective, self.lrs, self.optimizer = objective, lrs, optimizer
        self.loss_threshold = loss_threshold
        self.w = backend.empty((batch, *objective.shape))
        self.grad_w = backend.empty((batch, *objective.shape))
        starts = np.cumsum([0] + [factors[0].shape[0] for factors in stacks])
        if starts[-1] != batch:
            raise ValueError(f"the factor stacks hold {starts[-1]} runs, the batch {batch}")
        self.stacks = [_factor_stack(factors, int(start), self.w, self.grad_w, backend)
                       for factors, start in zip(stacks, starts)]
        self.square_avg = torch.zeros(batch, **f64)
        self.bias_power = torch.ones((), **f64)  # alpha^t, the same for every run of the batch
        self.active = torch.ones(batch, **f64)
        self.elapsed = torch.zeros(batch, **f64)
        self.loss = torch.zeros(batch, **f64)
        self.losses = torch.zeros((capacity, batch), **f64)  # the losses of a chunk's steps
        self.index = torch.zeros(1, dtype=torch.int64, device=dev)  # the step's row in it
        self.run = StepRunner(self.advance, self.state, "a batch's training step", graphs, graphs_required)

    def per_run(self) -> list[Any]:
        """Every tensor with a row per run of the batch that :meth:`advance` reads before
        writing it (the read-only lrs aside)."""
        return [self.w, self.grad_w, self.square_avg, self.active, self.elapsed, self.loss]

    def state(self) -> list[Any]:
        """Every tensor :meth:`advance` reads before writing it."""
        stacked = [x for s in self.stacks for x in (*s.factors, *s.prefix[1:-1])]
        return [*stacked, *self.per_run(), self.bias_power, self.index]

    def chunk(self, n: int) -> None:
        """``n`` advances (queued on a GPU), their losses in ``losses[:n]``."""
        if n > self.losses.shape[0]:
            raise ValueError(f"a chunk of {n} steps exceeds the history of {self.losses.shape[0]}")
        self.index.fill_(0)
        self.run(n)

    def look(self, n: int) -> np.ndarray:
        """What the host reads after a chunk of ``n`` steps, in one transfer: an (n + 3, B)
        array of the chunk's losses (a row a step), then ``active``, the losses and the
        gradient-flow times at its end."""
        import torch

        return torch.cat([self.losses[:n], torch.stack([self.active, self.loss, self.elapsed])]).cpu().numpy()

    def rows_of_stacks(self, rows: Sequence[int]) -> list[tuple[_FactorStack, list[int], list[int]]]:
        """``rows`` (of the batch, ascending) by stack: (stack, positions in ``rows``, its own rows)."""
        found = []
        for s in self.stacks:
            mine = [(k, i - s.start) for k, i in enumerate(rows) if s.start <= i < s.stop]
            if mine:
                found.append((s, [k for k, _ in mine], [i for _, i in mine]))
        return found

    def factors_of(self, rows: Sequence[int]) -> list[list[np.ndarray]]:
        """The factors of the runs in ``rows`` (ascending), float64 NumPy copies, in that order."""
        out: list[list[np.ndarray]] = [[] for _ in rows]
        for s, where, own in self.rows_of_stacks(rows):
            index = self.backend.index_array(np.asarray(own))
            fs = [to_numpy(f[index]).astype(np.float64) for f in s.factors]
            for k, k_row in enumerate(where):
                out[k_row] = [f[k] for f in fs]
        return out

    def select(self, keep: Sequence[int]) -> _BatchSteps:
        """The steps of the runs ``keep`` (rows, ascending) from here on: their rows of every
        tensor, their objective, and a CUDA graph of their own at the next call."""
        index = self.backend.index_array(np.asarray(keep))
        parts = [(s, self.backend.index_array(np.asarray(own))) for s, _, own in self.rows_of_stacks(keep)]
        new = _BatchSteps(self.objective.select(keep), [[f[own] for f in s.factors] for s, own in parts],
                          self.lrs[index], self.optimizer, self.loss_threshold, self.losses.shape[0], self.backend,
                          self.graphs, self.graphs_required)
        for (s, own), mine in zip(parts, new.stacks):
            for a, b in zip(mine.prefix[1:-1], s.prefix[1:-1]):
                a.copy_(b[own])
        for mine, theirs in zip(new.per_run(), self.per_run()):
            mine.copy_(theirs[index])
        new.bias_power.copy_(self.bias_power)
        return new

    def evaluate(self) -> None:
        for s in self.stacks:
            s.products()
        loss = self.objective.loss_and_grad(self.w, self.grad_w)
        self.loss.copy_(loss)
        # a run stops at the first step whose loss is at most the threshold or not finite
        # (|x| < inf: finite); from there on its steps are 0
        self.active.mul_((loss > self.loss_threshold) & (loss.abs() < math.inf))

    def advance(self) -> None:
        import torch

        for s in self.stacks:
            s.factor_gradients()
        if self.optimizer == "gd":
            eta = self.lrs
        else:
            totals = [sum((g * g).sum(dim=(1, 2)).double() for g in s.grads) for s in self.stacks]
            total = totals[0] if len(totals) == 1 else torch.cat(totals)
            eta, square_avg, bias_power = group_rmsprop_step(self.lrs, self.square_avg, self.bias_power, total)
            self.square_avg.copy_(square_avg)
            self.bias_power.copy_(bias_power)
        eta = eta * self.active
        self.elapsed.add_(eta)
        step = eta.to(self.w.dtype)[:, None, None]
        for s in self.stacks:
            rows = step[s.start:s.stop]
            for f, g in zip(s.factors, s.grads):
                f.addcmul_(g, rows, value=-1.0)
        self.evaluate()
        self.losses.index_copy_(0, self.index, self.loss[None])
        self.index += 1


def _batch_steps(runs: Sequence[BatchRun], backend: Backend, optimizer: str, loss_threshold: float, capacity: int,
                 graphs: bool = False, graphs_required: bool = False) -> tuple[_BatchSteps, list[int]]:
    """The steps of ``runs`` on ``backend`` and the run in each of their rows: the runs of one
    factor shape (depth, widths) are consecutive rows, one stack of factors."""
    import torch

    shapes = [tuple(f.shape for f in run.factors) for run in runs]
    rows = sorted(range(len(runs)), key=lambda b: (len(shapes[b]), shapes[b]))
    stacks = []
    for shape, group in groupby(rows, key=shapes.__getitem__):
        members = list(group)
        stacks.append([backend.asarray(np.stack([runs[b].factors[j] for b in members])) for j in range(len(shape))])
    objective = batch_objective([runs[b].observations for b in rows], backend)
    lrs = torch.tensor([float(runs[b].lr) for b in rows], dtype=torch.float64, device=backend.device)
    steps = _BatchSteps(objective, stacks, lrs, optimizer, loss_threshold, capacity, backend, graphs, graphs_required)
    return steps, rows


# At d = 100 a record (an SVD, U^T grad V) costs ~1.7 ms a run on one CPU core and took 1.6-1.9
# ms a run on an H200 (cuSOLVER's small eigenproblems and QRs); on the host it overlaps the
# device's next steps instead of holding them up. At MovieLens' 943 x 1682 the device's 38 ms
# beats the host's several hundred.
HOST_RECORD_MAX_ENTRIES = 200 * 200


def train_batch(
    runs: Sequence[BatchRun],
    backend: Backend,
    optimizer: str,
    *,
    max_iters: int = 1_000_000,
    loss_threshold: float = 1e-6,
    record_every: int = 0,
    top_k: int = 10,
    check_every: int = HOST_CHECK_EVERY,
    cuda_graphs: bool | None = None,
    compact: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[TrainResult]:
    """Train ``runs`` (of one end-to-end shape, any depths) together on a torch ``backend``
    with ``optimizer`` (``gd`` or ``group_rmsprop`` at each run's own ``lr``); one
    :class:`TrainResult` per run, in order.

    Recording (``record_every``, ``top_k``) is that of :func:`dmfcore.training.train`; the
    records of all runs at a step come from one batched SVD. A run whose loss becomes NaN or
    infinite stops there; after the batch a :class:`TrainingDivergedError` names it (and
    every other diverged run). The host reads the losses every ``check_every`` steps and at
    records; on a CUDA device the steps in between are replays of one step captured as a CUDA
    graph (``cuda_graphs``, default: on CUDA; a failed capture then warns and launches the
    kernels one by one), with the numbers of the launched steps.
    ``progress(step, still_training)`` is called at every look.

    Records (singular values, alignment statistics, errors) of matrices of at most
    ``HOST_RECORD_MAX_ENTRIES`` entries are computed with NumPy from copies of the runs'
    matrices, while the device takes the next steps; larger ones on the device.

    ``compact``: when, at a look, half the rows of the stack hold runs that have stopped (with
    every run that shares their measurement set), those runs leave it (their results are kept)
    and the others go on as a smaller batch: a step then costs what the runs still training
    cost, not what the whole batch did (a sensing set's m x d1 d2 measurements are read twice
    a step). On torch-cpu the numbers are those of the whole batch, bit for bit.
    """
    if backend.name != "torch":
        raise ValueError("batched training runs on torch devices (device cuda, or torch-cpu)")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if not runs:
        return []
    ends = {(run.factors[-1].shape[0], run.factors[0].shape[1]) for run in runs}
    if len(ends) != 1:
        raise ValueError(f"a batch holds runs of one end-to-end shape; got {sorted(ends)}")
    if max_iters < 0 or record_every < 0 or check_every < 1:
        raise ValueError("max_iters and record_every must be >= 0, check_every >= 1")
    on_cuda = backend.device.startswith("cuda")
    if cuda_graphs and not on_cuda:
        raise ValueError(f"cuda_graphs needs a CUDA device, got device {backend.device!r}")
    graphs = on_cuda if cuda_graphs is None else cuda_graphs
    batch = len(runs)
    # a chunk runs from one look to the next: at most this many steps (its losses' history)
    longest_chunk = max(1, min([check_every, max_iters] + ([record_every] if record_every else [])))
    steps, rows = _batch_steps(runs, backend, optimizer, loss_threshold, longest_chunk, graphs, bool(cuda_graphs))
    objective = steps.objective
    has_truth = [run.ground_truth is not None for run in runs]
    on_host = record_every > 0 and math.prod(objective.shape) <= HOST_RECORD_MAX_ENTRIES
    truths = np.stack([run.ground_truth if run.ground_truth is not None else np.zeros(objective.shape)
                       for run in runs]) if any(has_truth) else None
    if truths is not None and not on_host:
        truths = backend.asarray(truths)
    trajectories: list[dict[str, list]] = [{} for _ in runs]
    finished = [False] * batch
    partners = {b: [b] for b in range(batch)}  # a sensing set's runs leave the stack together (its products keep their shape)
    for block in objective.sensing:
        for shared in block.runs.tolist():
            shared = [rows[i] for i in shared]
            partners.update((b, shared) for b in shared)
    final: dict[int, tuple[np.ndarray, list[np.ndarray], np.ndarray]] = {}  # run -> W, factors, stop record
    stops: dict[int, tuple[int, float]] = {}  # run -> its stopping step and the loss there
    last_finite = np.full(batch, math.nan)  # each run's last finite loss while it trained

    def leave(out: list[int]) -> None:
        """Keep the final W, factors and stop record (step, loss, last finite loss, flow time)
        of the runs in rows ``out`` on the host."""
        index = backend.index_array(np.asarray(out))
        w = to_numpy(steps.w[index]).astype(np.float64)
        fs = steps.factors_of(out)
        elapsed = steps.elapsed[index].cpu().numpy()
        for k, i in enumerate(out):
            b = rows[i]
            final[b] = (w[k], fs[k], np.array([*stops[b], last_finite[b], elapsed[k]]))

    synchronize(steps.w)
    start = time.perf_counter()
    t, n = 0, 0
    steps.evaluate()
    while True:
        # the host looks at step t: the losses of the chunk's steps t - n + 1 .. t (of step 0 at
        # the first look) and every run's state, in one transfer
        host = steps.look(n)
        history, active, loss, elapsed = host[:n] if n else host[n + 1][None], host[n], host[n + 1], host[n + 2]
        recorded = []  # (row, run, step, loss) of the runs that record now
        for i, b in enumerate(rows):
            if finished[b]:
                continue
            column = history[:, i]  # the run trained through the chunk: active at its start
            if active[i] == 0:  # a loss in the chunk stopped it
                k, last = first_stop(column, loss_threshold)
            else:  # none did: every loss of the chunk is finite
                k, last = len(column) - 1 if t >= max_iters else None, column[-1]
            if math.isfinite(last):
                last_finite[b] = last
            if k is not None:
                stops[b] = (t - len(column) + 1 + k, float(column[k]))
            # a run that stopped is frozen at its stopping step: W_b is still W_b(stop)
            step, step_loss = stops[b] if k is not None else (t, float(loss[i]))
            if record_every and (k is not None or t % record_every == 0) and math.isfinite(step_loss):
                recorded.append((i, b, step, step_loss))
            finished[b] = k is not None
        records = []  # _record's arguments, one group of runs each
        for truth in (True, False):  # the runs with a ground truth (a reconstruction error), the others
            group = [record for record in recorded if has_truth[record[1]] == truth]
            if group:
                index, which = [i for i, *_ in group], [b for _, b, *_ in group]
                w, grad_w = steps.w[index], steps.grad_w[index]  # copies of step t's: later steps leave them
                if on_host:
                    w, grad_w = to_numpy(w), to_numpy(grad_w)
                records.append(([trajectories[b] for b in which], [step for *_, step, _ in group],
                                [float(elapsed[i]) for i in index], [loss for *_, loss in group], w, grad_w,
                                truths[which] if truth else None, top_k, [runs[b].evaluate for b in which]))
        if progress is not None:
            progress(t, batch - sum(finished))
        done = all(finished)
        if not done:
            out = [i for i, b in enumerate(rows) if all(finished[p] for p in partners[b])] if compact else []
            if out and 2 * len(out) >= len(rows):  # half the rows are frozen: the rest go on alone
                leave(out)
                keep = sorted(set(range(len(rows))) - set(out))
                steps, rows = steps.select(keep), [rows[i] for i in keep]
            n = _next_look(t + 1, check_every, record_every, max_iters, 0) - t
            steps.chunk(n)  # queued on a GPU: the host records step t's runs below while it steps
            t += n
        for arguments in records:
            _record(*arguments)
        if done:
            break
    synchronize(steps.w)
    wall = time.perf_counter() - start
    leave(list(range(len(rows))))
    stop = np.array([final[b][2] for b in range(batch)]).T  # step, loss, last finite loss, flow time
    diverged = [b for b in range(batch) if not math.isfinite(stop[1, b])]
    if diverged:
        raise TrainingDivergedError("; ".join(
            f"run {runs[b].label or b} diverged at step {int(stop[0, b])}: loss is {stop[1, b]} (last finite loss "
            f"{stop[2, b]:.6g}); lower the learning rate or the init scale" for b in diverged))
    return [
        TrainResult(final[b][0], int(stop[0, b]), bool(stop[1, b] <= loss_threshold), float(stop[1, b]), wall,
                    float(stop[3, b]), trajectories[b], factors=final[b][1])
        for b in range(batch)
    ]
