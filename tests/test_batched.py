"""Batched training (dmfcore.batched) agrees with single runs, run by run.

On ``torch-cpu`` everywhere and on ``cuda`` where torch sees a GPU (marker ``gpu``).
"""

import numpy as np
import pytest
import torch

from dmfcore.backend import resolve_backend
from dmfcore.batched import BatchObjective, BatchRun, _batch_steps, batch_objective, train_batch
from dmfcore.model import init_factors
from dmfcore.optimizers import make_optimizer
from dmfcore.problems import low_rank_ground_truth, make_objective, sample_completion, sample_sensing
from dmfcore.training import TrainingDivergedError, train
from helpers import TORCH_DEVICES
from operations import Operations

DEVICES = TORCH_DEVICES
SHAPE = (24, 20)
W_STAR = low_rank_ground_truth(*SHAPE, 2, seed=0)


def _runs(dtype: str, optimizer: str) -> list[BatchRun]:
    """Completion runs on two observation sets of different sizes, two sensing runs sharing one
    measurement set; several init scales, seeds and step sizes: all converge, at different steps."""
    sensing = sample_sensing(W_STAR, 250, seed=1, dtype=dtype)
    sets = [sample_completion(W_STAR, 300, seed=1), sample_completion(W_STAR, 330, seed=2), sensing, sensing]
    lrs = [1e-2, 1.2e-2, 1e-2, 8e-3] if optimizer == "group_rmsprop" else [0.5, 0.4, 0.5, 0.45]
    return [BatchRun(obs, init_factors(SHAPE, 3, "gaussian", scale, seed=k), lr, ground_truth=W_STAR, label=f"run{k}")
            for k, (obs, lr, scale) in enumerate(zip(sets, lrs, [1e-3, 1e-3, 1e-3, 5e-4]))]


def _single(run: BatchRun, dtype: str, optimizer: str, **kw):
    backend = resolve_backend("cpu", dtype)
    return train(make_objective(run.observations, backend), [backend.asarray(f) for f in run.factors],
                 make_optimizer(optimizer, run.lr), ground_truth=backend.asarray(W_STAR), **kw)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["group_rmsprop", "gd"])
def test_a_batch_gives_each_run_its_single_run_result(device, dtype, optimizer):
    runs = _runs(dtype, optimizer)
    kw = dict(max_iters=5000, record_every=100, top_k=3)
    batch = train_batch(runs, resolve_backend(device, dtype), optimizer, check_every=64, **kw)
    iterations = [r.iterations for r in batch]
    assert len(set(iterations)) == len(runs), iterations  # they stop at different steps: the early ones froze
    for run, got in zip(runs, batch):
        want = _single(run, dtype, optimizer, **kw)
        assert got.converged and want.converged
        assert abs(got.iterations - want.iterations) <= 0.005 * want.iterations
        recon = [np.mean((r.w - W_STAR) ** 2) for r in (got, want)]
        assert recon[0] == pytest.approx(recon[1], rel=1e-4 if dtype == "float64" else 2e-2)
        assert got.flow_time == pytest.approx(want.flow_time, rel=1e-3)
        # the same records; the last one is the run's own stopping step
        assert got.trajectory["step"][-1] == got.iterations
        if got.iterations == want.iterations:
            assert got.trajectory["step"] == want.trajectory["step"]
            np.testing.assert_allclose(got.trajectory["sigma_1"], want.trajectory["sigma_1"], rtol=1e-3)
        # the factors are those of the stopping step: their product is the reported W
        product = got.factors[2] @ got.factors[1] @ got.factors[0]
        np.testing.assert_allclose(product, got.w, rtol=0, atol=1e-5 * np.abs(got.w).max())


@pytest.mark.parametrize("device", DEVICES)
def test_stopped_runs_leave_the_stack_with_the_same_numbers(device, monkeypatch):
    """Once half the stack's rows have stopped, their runs leave it (the sets' blocks are
    restacked, a run sharing its set with a run still training stays): results as without."""
    sets = [sample_sensing(W_STAR, 250, seed=seed, dtype="float32") for seed in (1, 2, 3)]
    sets += [sample_completion(W_STAR, 300, seed=seed) for seed in (1, 2, 3)] + [sets[0]]
    lrs = [8e-3, 1e-2, 1.2e-2, 1.3e-2, 4e-3, 1.1e-2, 1.4e-2]  # they stop far apart: completion run 4 moves to row 1
    runs = [BatchRun(obs, init_factors(SHAPE, 3, "gaussian", 1e-3, seed=k), lr, ground_truth=W_STAR)
            for k, (obs, lr) in enumerate(zip(sets, lrs))]
    sizes = []
    select = BatchObjective.select
    monkeypatch.setattr(BatchObjective, "select", lambda self, keep: sizes.append(len(keep)) or select(self, keep))
    kw = dict(max_iters=5000, record_every=100, top_k=3, check_every=50)
    compacted, whole = (train_batch(runs, resolve_backend(device, "float32"), "group_rmsprop", compact=flag, **kw)
                        for flag in (True, False))
    assert len(sizes) >= 2 and sizes == sorted(sizes, reverse=True) and sizes[-1] >= 1, sizes
    assert sum(r.converged for r in whole) >= 5  # (one run goes on to max_iters: the last rows alone)
    for a, b in zip(compacted, whole):
        assert a.iterations == b.iterations
        if device == "cuda":  # other batch sizes may take other kernels
            np.testing.assert_allclose(a.w, b.w, rtol=0, atol=1e-5 * np.abs(b.w).max())
        else:
            assert np.array_equal(a.w, b.w) and a.flow_time == b.flow_time and a.trajectory == b.trajectory
            assert all(np.array_equal(f, g) for f, g in zip(a.factors, b.factors))


@pytest.mark.parametrize("device", DEVICES)
def test_records_on_the_host_are_those_on_the_device(device, monkeypatch):
    """A batch records small matrices on the host (NumPy, while the device steps on) and large
    ones on the device: the same steps, singular values, Theorem 3's projections and errors (the
    statistics over all singular vectors are left out: those of ~0 singular values are any
    basis of their space)."""
    import dmfcore.batched

    runs = _runs("float64", "group_rmsprop")
    kw = dict(max_iters=5000, record_every=100, top_k=3, check_every=64)
    host = train_batch(runs, resolve_backend(device, "float64"), "group_rmsprop", **kw)
    monkeypatch.setattr(dmfcore.batched, "HOST_RECORD_MAX_ENTRIES", 0)  # every matrix is "large"
    device_ = train_batch(runs, resolve_backend(device, "float64"), "group_rmsprop", **kw)
    for a, b in zip(host, device_):
        assert a.iterations == b.iterations and np.array_equal(a.w, b.w)
        assert a.trajectory["step"] == b.trajectory["step"] and a.trajectory["step"][-1] == a.iterations
        for key in ("train_loss", "flow_time", "recon_error", "sigma_1", "sigma_2", "proj_1", "proj_2"):
            np.testing.assert_allclose(a.trajectory[key], b.trajectory[key], rtol=1e-9, err_msg=key)


def test_progress_is_reported_at_every_look():
    runs = _runs("float64", "gd")
    calls = []
    batch = train_batch(runs, resolve_backend("torch-cpu", "float64"), "gd", max_iters=5000, check_every=64,
                        progress=lambda step, still: calls.append((step, still)))
    steps, still = zip(*calls)
    assert steps[0] == 0 and all(b - a == 64 for a, b in zip(steps, steps[1:]))
    assert still[0] == len(runs) and still[-1] == 0 and list(still) == sorted(still, reverse=True)
    for step, count in calls:  # a run trains until a look at or after its stopping step
        assert count == sum(r.iterations > step for r in batch)


@pytest.mark.parametrize("device", DEVICES)
def test_cuda_graphs_replay_a_batch_s_steps(device):
    """A batch's step captured as a CUDA graph and replayed between looks gives the numbers of
    the launched steps, bit for bit, records included (runs stop inside chunks). On the CPU:
    asking for graphs is refused, naming the setting."""
    kw = dict(max_iters=5000, record_every=100, top_k=3, check_every=64)
    if device != "cuda":
        with pytest.raises(ValueError, match="cuda_graphs needs a CUDA device"):
            train_batch(_runs("float32", "gd"), resolve_backend(device, "float32"), "gd", cuda_graphs=True, **kw)
        return
    for optimizer in ("group_rmsprop", "gd"):
        runs = _runs("float32", optimizer)
        launched, graphed = (train_batch(runs, resolve_backend(device, "float32"), optimizer, cuda_graphs=graphs, **kw)
                             for graphs in (False, True))
        for a, b in zip(launched, graphed):
            assert a.iterations == b.iterations and a.iterations % 64 != 0
            assert np.array_equal(a.w, b.w) and a.flow_time == b.flow_time and a.trajectory == b.trajectory


def test_runs_sharing_a_measurement_set_read_it_once():
    runs = _runs("float32", "gd")
    objective = batch_objective([r.observations for r in runs], resolve_backend("torch-cpu", "float32"))
    assert len(objective.sensing) == 1 and objective.sensing[0].runs.tolist() == [[2, 3]]
    completion = objective.completion  # the entries of runs 0 and 1, each in its own row of squares
    assert (completion.slot // completion.width).unique().tolist() == [0, 1]


@pytest.mark.parametrize("device", DEVICES)
def test_measurement_sets_of_one_size_are_one_block(device):
    """Sets of one size, read by as many runs each, are one block (one batched product per pass
    over A): each run's loss and gradient are those of its own set."""
    backend = resolve_backend(device, "float64")
    a, b, c = (sample_sensing(W_STAR, m, seed=seed, dtype="float64") for m, seed in ((250, 1), (250, 2), (300, 3)))
    sets = [a, b, c, a, b]  # a and b are read by two runs each, c by one
    stacked = batch_objective(sets, backend)
    assert sorted(block.runs.tolist() for block in stacked.sensing) == [[[0, 3], [1, 4]], [[2]]]
    w = np.random.default_rng(0).normal(size=(len(sets), *SHAPE))
    for objective in (stacked, stacked.select([4, 2, 0])):
        if objective is not stacked:  # a sub-batch restacks the sets its runs read
            sets, w = [sets[4], sets[2], sets[0]], w[[4, 2, 0]]
        grad = torch.empty(len(sets), *SHAPE, dtype=torch.float64, device=backend.device)
        losses = objective.loss_and_grad(backend.asarray(w), grad).cpu().numpy()
        for k, o in enumerate(sets):
            residual = np.einsum("kij,ij->k", o.A, w[k]) - o.y
            assert losses[k] == pytest.approx(np.mean(residual**2), rel=1e-12)
            np.testing.assert_allclose(grad[k].cpu().numpy(), 2 / o.m * np.einsum("k,kij->ij", residual, o.A),
                                       rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("device", DEVICES)
def test_a_diverging_run_is_named(device):
    runs = _runs("float64", "gd")
    runs[1] = BatchRun(runs[1].observations, runs[1].factors, 40.0, label="too-fast")
    with pytest.raises(TrainingDivergedError, match=r"run too-fast diverged at step \d+") as err:
        train_batch(runs, resolve_backend(device, "float64"), "gd", max_iters=3000)
    assert "run0" not in str(err.value)


def _mixed_depth_runs() -> list[BatchRun]:
    """Runs of depths 1-4 interleaved, on two sensing sets each read by runs of several depths
    and on completion sets: they stop far apart (runs leave the stack)."""
    sensing = [sample_sensing(W_STAR, 250, seed=seed, dtype="float64") for seed in (1, 2)]
    plan = [(3, sensing[0], 0.5), (2, sensing[0], 1.5), (4, sensing[1], 0.45), (2, sample_completion(W_STAR, 300, seed=1), 1.5),
            (3, sensing[1], 0.4), (1, sensing[0], 1.5), (2, sensing[1], 1.4), (3, sample_completion(W_STAR, 330, seed=2), 0.5)]
    return [BatchRun(obs, init_factors(SHAPE, depth, "gaussian", 1e-3, seed=k), lr, ground_truth=W_STAR, label=f"run{k}")
            for k, (depth, obs, lr) in enumerate(plan)]


@pytest.mark.parametrize("device", DEVICES)
def test_runs_of_several_depths_train_in_one_batch(device, monkeypatch):
    """Runs of depths 1-4 in one batch (a sensing set is then read once per step for the runs of
    every depth on it): each run's result is the one it gets in a batch of its own depth, in the
    order given, with factors of its own depth. (A set's product then has more rows, which may
    round otherwise: to 1e-9 here.)"""
    runs = _mixed_depth_runs()
    backend = resolve_backend(device, "float64")
    objective = batch_objective([r.observations for r in runs], backend)
    assert sorted(len(set(block.runs.reshape(-1).tolist())) for block in objective.sensing) == [6]  # 2 sets, 1 block
    assert {len(runs[b].factors) for b in objective.sensing[0].runs[0].tolist()} == {1, 2, 3}
    kw = dict(max_iters=9000, record_every=100, top_k=3, check_every=50)
    kept = []  # the runs of a set leave the stack together
    select = BatchObjective.select
    monkeypatch.setattr(BatchObjective, "select", lambda self, keep: kept.append(
        [len(set(rows) & set(keep)) in (0, len(rows)) for block in self.sensing for rows in block.runs.tolist()])
        or select(self, keep))
    mixed = train_batch(runs, backend, "gd", **kw)
    monkeypatch.setattr(BatchObjective, "select", select)
    assert kept and all(all(together) for together in kept), kept
    assert all(r.converged for r in mixed) and len({r.iterations for r in mixed}) == len(runs)
    for depth in (1, 2, 3, 4):
        mine = [k for k, run in enumerate(runs) if len(run.factors) == depth]
        alone = train_batch([runs[k] for k in mine], backend, "gd", **kw)
        for k, want in zip(mine, alone):
            got = mixed[k]
            assert len(got.factors) == depth and got.iterations == want.iterations, (k, got.iterations, want.iterations)
            np.testing.assert_allclose(got.w, want.w, rtol=0, atol=1e-9 * np.abs(want.w).max())
            assert got.flow_time == pytest.approx(want.flow_time, rel=1e-12)
            assert got.trajectory["step"] == want.trajectory["step"]
            np.testing.assert_allclose(got.trajectory["sigma_1"], want.trajectory["sigma_1"], rtol=1e-9)
            for f, g in zip(got.factors, want.factors):
                np.testing.assert_allclose(f, g, rtol=0, atol=1e-9 * np.abs(g).max())
    # and a run of each depth agrees with its single run
    for k in (5, 1, 0, 2):
        want = _single(runs[k], "float64", "gd", max_iters=9000, record_every=100, top_k=3)
        assert mixed[k].iterations == want.iterations
        np.testing.assert_allclose(mixed[k].w, want.w, rtol=0, atol=1e-9 * np.abs(want.w).max())


@pytest.mark.parametrize("device", DEVICES)
def test_a_batch_step_is_few_kernels_and_never_waits(device):
    """A batch's step (what a CUDA graph captures) reads nothing back: the host tells where a run
    stopped from the chunk's losses; a batch of depths 1-4 (four stacks) reads nothing back either."""
    backend = resolve_backend(device, "float32")
    completion = [BatchRun(sample_completion(W_STAR, 300, seed=k), init_factors(SHAPE, 3, "gaussian", 1e-3, seed=k), 1e-2)
                  for k in range(4)]
    for label, runs in (("depth 3", completion), ("depths 1-4", _mixed_depth_runs())):
        steps, _ = _batch_steps(runs, backend, "group_rmsprop", 1e-6, capacity=4)
        steps.evaluate()
        steps.chunk(1)
        with Operations() as ops:
            steps.advance()
        assert ops.host_reads == []
        # the count is for the record (pytest -s): whether fewer operations pay needs a GPU profile
        print(f"a batch step of {label} on {device}: {len(ops.kernels)} operations")


def test_a_batch_holds_one_end_to_end_shape():
    runs = _runs("float64", "gd")
    wider = BatchRun(runs[0].observations, init_factors((SHAPE[0], SHAPE[1] + 1), 3, "gaussian", 1e-3, seed=0), 0.5)
    with pytest.raises(ValueError, match="one end-to-end shape"):
        train_batch([runs[0], wider], resolve_backend("torch-cpu", "float64"), "gd")
    with pytest.raises(ValueError, match="torch devices"):
        train_batch(runs, resolve_backend("cpu", "float64"), "gd")
