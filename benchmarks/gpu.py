"""Training-step time on a torch device, each case beside a bound measured in the same run.

Cases (fp32, TF32 off: it changes the numbers; GroupRMSprop; ``dmfcore.training.train`` with
the loss threshold at 0 so that every case runs its full number of steps):

- completion, d = 100, 2000 entries, depth 2 / 3 / 4. Bound: the step's 3(N - 1) products of
  100 x 100 matrices at the measured 100 x 100 matmul rate (at this size a GPU step is
  bound by kernel launches, so the ratio is large; the target is microseconds per step);
- sensing, d = 100, m = 2000 / 5000, depth 3. Bound: two passes over A (predictions and
  gradient), i.e. the time of one read-and-write copy of A, measured on the same device;
- completion at MovieLens 100K's shape (943 x 1682, 10,000 entries), depth 3. Bound: the
  step's matrix products at the matmul rate measured at that shape;
- each single-run case also with a step captured as a CUDA graph (``cuda_graphs=True``,
  replayed between the host's looks every ``HOST_CHECK_EVERY`` steps; on CUDA only);
- B = 1, 64, 256, 1024 completion runs (d = 100, depth 3, each its own data) trained as one
  batch (``dmfcore.batched``): microseconds per batch step and per run-step, with the steps
  between looks launched from Python and (on CUDA, the default there) replayed as a CUDA
  graph, and with the default also recording every 100 steps (top 10 singular values, the
  batched SVD of every run: what the workflow's runs do; on the host while the device steps,
  the default at d = 100, and on the device). Bound: the 6 batched products at
  the measured (B, 100, 100) product rate;
- a batch of sensing runs like the paper preset's (d = 100, depth 3, n_obs 1000 ... 5000, two
  seeds each: 16 measurement sets, each read by one run), its sets of one size stacked into one
  block (the default) and one block per set, and with records every 200 steps (the preset's).
  Bound: two passes over all the measurement sets (a read-and-write copy of them). Then depths
  2, 3 and 4 on those sets (the preset trains the three on every set): one batch, which reads a
  set once per step for the three, against one batch per depth (their step times added up);
- one trajectory record at MovieLens 100K's shape (``dmfcore.dynamics.alignment_statistics``:
  a thin SVD of W through its Gram matrix in float64 and ``U^T grad V``), the cost the dynamics
  runs pay every ``record_every`` steps, beside library SVDs (milliseconds, no bound).

Each single-run case is timed with the host reading the loss every step (``check_every=1``, the
default on the CPU), every ``HOST_CHECK_EVERY`` steps with the steps between launched from
Python (the stopping test on the device) and replayed as a CUDA graph (the default on CUDA), plus
a reference step written like the paper's code (``nn.Sequential`` of bias-free ``Linear``
layers, autograd, GroupRMSprop, ``loss.item()`` every step). Prints a table and, as its last
line, one JSON object.

    python benchmarks/gpu.py                       # on a GPU machine (device cuda)
    python benchmarks/gpu.py --device torch-cpu --quick   # the script itself, anywhere
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dmfcore.backend import resolve_backend, synchronize  # noqa: E402
from dmfcore.batched import BatchRun, train_batch  # noqa: E402
from dmfcore.dynamics import alignment_statistics  # noqa: E402
from dmfcore.model import init_factors, step_flops  # noqa: E402
from dmfcore.optimizers import group_rmsprop  # noqa: E402
from dmfcore.problems import low_rank_ground_truth, make_objective, sample_completion, sample_sensing  # noqa: E402
from dmfcore.training import HOST_CHECK_EVERY, train  # noqa: E402


def _timed(fn, repeat: int) -> float:
    """Seconds per call of ``fn`` (after one warm-up call), waiting for the device."""
    fn()
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    synchronize(out)
    return (time.perf_counter() - start) / repeat


def matmul_seconds(device: str, m: int, k: int, n: int, repeat: int, batch: int | None = None) -> float:
    lead = () if batch is None else (batch,)
    a = torch.randn(*lead, m, k, device=device)
    b = torch.randn(*lead, k, n, device=device)
    out = torch.empty(*lead, m, n, device=device)
    return _timed(lambda: torch.matmul(a, b, out=out), repeat)


def copy_seconds(device: str, numel: int, repeat: int) -> float:
    src = torch.randn(numel, device=device)
    dst = torch.empty_like(src)
    return _timed(lambda: dst.copy_(src), repeat)


def step_us(obs, shape, depth: int, device: str, iters: int, check_every: int, cuda_graphs: bool = False) -> float:
    backend = resolve_backend(device, "float32")
    objective = make_objective(obs, backend)
    factors = [backend.asarray(f) for f in init_factors(shape, depth, "gaussian", 1e-3, seed=0)]
    opt = group_rmsprop(1e-3)
    kw = dict(loss_threshold=0.0, check_every=check_every, cuda_graphs=cuda_graphs)
    train(objective, factors, opt, max_iters=min(iters, 250), **kw)  # warm-up (and a graph captured)
    res = train(objective, factors, opt, max_iters=iters, **kw)  # (its capture is in its time: once a run)
    return 1e6 * res.wall_seconds / res.iterations


def reference_us(obs, shape, depth: int, device: str, iters: int) -> float:
    """A step written like the paper's code: autograd through nn.Linear layers, GroupRMSprop,
    the loss read every step."""
    d1, d2 = shape
    h = min(shape)
    widths = [d2] + [h] * (depth - 1) + [d1]
    net = torch.nn.Sequential(*[torch.nn.Linear(a, b, bias=False) for a, b in zip(widths, widths[1:])]).to(device)
    eye = torch.eye(d2, device=device)
    if hasattr(obs, "rows"):
        rows = torch.as_tensor(obs.rows, device=device)
        cols = torch.as_tensor(obs.cols, device=device)
        y = torch.as_tensor(obs.values, dtype=torch.float32, device=device)

        def predictions(w):
            return w[rows, cols]
    else:
        a = torch.as_tensor(obs.A.reshape(obs.m, -1), dtype=torch.float32, device=device)
        y = torch.as_tensor(obs.y, dtype=torch.float32, device=device)

        def predictions(w):
            return a @ w.reshape(-1)
    square_avg, alpha, eps, lr = 0.0, 0.99, 1e-4, 1e-3

    def step(t):
        nonlocal square_avg
        w = net(eye).T  # (d1, d2): the end-to-end matrix
        loss = ((predictions(w) - y) ** 2).mean()
        net.zero_grad()
        loss.backward()
        total = sum(float((p.grad * p.grad).sum()) for p in net.parameters())
        square_avg = alpha * square_avg + (1 - alpha) * total
        eta = lr / ((square_avg / (1 - alpha ** (t + 1))) ** 0.5 + eps)
        with torch.no_grad():
            for p in net.parameters():
                p -= eta * p.grad
        return loss.item()

    for t in range(10):
        step(t)
    start = time.perf_counter()
    for t in range(iters):
        step(t)
    return 1e6 * (time.perf_counter() - start) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="few steps and small cases (checks the script)")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = resolve_backend(args.device, "float32").device
    iters = 200 if args.quick else 3000
    repeat = 20 if args.quick else 200
    rows = []

    mm100 = matmul_seconds(device, 100, 100, 100, repeat)
    w_star = low_rank_ground_truth(100, 100, 5, seed=0)
    completion = sample_completion(w_star, 2000, seed=1)
    for depth in (2, 3, 4):
        bound = 3 * (depth - 1) * mm100 * 1e6
        rows.append(("completion d=100", depth, bound, "3(N-1) matmuls", completion, (100, 100), iters))
    for m in (2000,) if args.quick else (2000, 5000):
        sensing = sample_sensing(w_star, m, seed=1)
        bound = copy_seconds(device, m * 100 * 100, repeat) * 1e6  # read + write of A = two reads
        rows.append((f"sensing d=100 m={m}", 3, bound, "two passes over A", sensing, (100, 100), iters))
    shape = (943, 1682) if not args.quick else (94, 168)
    ml = sample_completion(low_rank_ground_truth(*shape, 5, seed=0), 10_000 if not args.quick else 1000, seed=1)
    mm_ml = matmul_seconds(device, shape[0], shape[0], shape[1], max(repeat // 10, 3))
    bound = step_flops(shape, 3) / (2 * shape[0] * shape[0] * shape[1] / mm_ml) * 1e6
    rows.append((f"completion {shape[0]}x{shape[1]}", 3, bound, "matrix products", ml, shape,
                 max(iters // 10, 20)))

    results = []
    graphs = device.startswith("cuda")
    print(f"device {device} ({torch.cuda.get_device_name() if graphs else 'cpu'}), "
          f"fp32, TF32 off; x bound and ref/ours for the default ({'graphs' if graphs else 'every step'})")
    print(f"{'case':28} {'N':>2} {'bound us':>9} {'every step':>11} {f'every {HOST_CHECK_EVERY}':>10} "
          f"{'graphs':>8} {'x bound':>8} {'reference':>10} {'ref/ours':>9}   (graphs: CUDA graphs, every "
          f"{HOST_CHECK_EVERY})")
    for name, depth, bound, what, obs, shp, n in rows:
        each = step_us(obs, shp, depth, args.device, n, 1)
        chunked = step_us(obs, shp, depth, args.device, n, HOST_CHECK_EVERY)
        graphed = math.nan
        if graphs:
            try:
                graphed = step_us(obs, shp, depth, args.device, n, HOST_CHECK_EVERY, cuda_graphs=True)
            except Exception as exc:  # first measurement of the capture: report it, keep the other columns
                print(f"{name} N={depth} graphs: {type(exc).__name__}: {exc}")
        ref = reference_us(obs, shp, depth, device, max(n // 4, 20))
        default = graphed if math.isfinite(graphed) else each
        results.append(dict(case=name, depth=depth, bound_us=bound, bound=what, every_step_us=each,
                            chunked_us=chunked, graphs_us=graphed, default_us=default, ratio_to_bound=default / bound,
                            reference_us=ref, speedup_vs_reference=ref / default))
        print(f"{name:28} {depth:>2} {bound:9.1f} {each:11.1f} {chunked:10.1f} {graphed:8.1f} {default / bound:8.2f} "
              f"{ref:10.1f} {ref / default:9.2f}")
    # many runs in one process (dmfcore.batched): B completion runs, d = 100, depth 3, each with
    # its own observation set and initialization; bound: the batched products at the rate of a
    # (B, 100, 100) @ (B, 100, 100) product measured here
    batched = []
    print(f"\n{'batched completion d=100, N=3':30} {'B':>5} {'bound us':>9} {'launched':>9} {'graphs':>8} "
          f"{'+records':>9} {'us/run-step':>12} {'x bound':>8}   (us per batch step; +records: every "
          f"100 steps; us/run-step, x bound: default)")
    for b in (1, 4) if args.quick else (1, 64, 256, 1024):
        runs = [BatchRun(sample_completion(w_star, 2000, seed=k), init_factors((100, 100), 3, "gaussian", 1e-3, seed=k),
                         1e-3, ground_truth=w_star) for k in range(b)]
        backend = resolve_backend(args.device, "float32")
        n = iters if b <= 64 else max(iters // 4, 20)

        def batch_us(**kw) -> float:
            return batch_step_us(runs, backend, n, 20, **kw)

        launched = batch_us(cuda_graphs=False)
        graphed = batch_us(cuda_graphs=True) if graphs else math.nan
        recorded = batch_us(record_every=100, top_k=10)  # on the host, while the device steps (the default here)
        default = graphed if graphs else launched
        bound = 6 * matmul_seconds(device, 100, 100, 100, repeat, batch=b) * 1e6
        batched.append(dict(batch=b, bound_us=bound, launched_us=launched, graphs_us=graphed, with_records_us=recorded,
                            run_step_us=default / b,
                            ratio_to_bound=default / bound))
        print(f"{'':30} {b:>5} {bound:9.1f} {launched:9.1f} {graphed:8.1f} {recorded:9.1f} "
              f"{default / b:12.2f} {default / bound:8.2f}")
    sensing_batch = batched_sensing_us(args.device, w_star, (200, 300) if args.quick else PRESET_SENSING_SIZES,
                                       max(iters // 10, 20), repeat, graphs)
    records = record_ms(device, shape, max(repeat // 20, 3))
    print(f"\none record at {shape[0]}x{shape[1]} (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in records.items()))
    print(json.dumps({"device": device, "matmul100_gflops": 2e-9 * 100**3 / mm100, "cases": results,
                      "batched": batched, "sensing_batch": sensing_batch, "record_ms": records}))


def batch_step_us(runs: list[BatchRun], backend, n: int, warmup: int, **kw) -> float:
    """Microseconds per batch step of ``n`` GroupRMSprop steps of ``runs`` (none stops: loss
    threshold 0), after ``warmup`` steps (and a graph captured) in a run of their own."""
    train_batch(runs, backend, "group_rmsprop", max_iters=warmup, loss_threshold=0.0, **kw)
    return 1e6 * train_batch(runs, backend, "group_rmsprop", max_iters=n, loss_threshold=0.0, **kw)[0].wall_seconds / n


PRESET_SENSING_SIZES = (1000, 1500, 2000, 2500, 3000, 3500, 4000, 5000)  # presets/paper.yaml's sensing n_obs


def batched_sensing_us(device: str, w_star: np.ndarray, sizes: tuple[int, ...], n: int, repeat: int,
                       graphs: bool) -> dict[str, float]:
    """Microseconds per step of a batch of sensing runs (depth 3, two seeds per size), beside
    two passes over all of its measurement sets."""
    runs = [BatchRun(sample_sensing(w_star, m, seed=seed), init_factors(w_star.shape, 3, "gaussian", 1e-3, seed=seed),
                     1e-3, ground_truth=w_star) for m in sizes for seed in (1, 2)]
    backend = resolve_backend(device, "float32")
    rows = 2 * sum(sizes)
    bound = copy_seconds(backend.device, rows * w_star.size, max(repeat // 10, 3)) * 1e6

    def batch_us(group: list[BatchRun] = runs, **kw) -> float:
        return batch_step_us(group, backend, n, 5, cuda_graphs=graphs or None, **kw)

    out = dict(runs=len(runs), measurements=rows, bound_us=bound, stacked_us=batch_us(),
               with_records_us=batch_us(record_every=200, top_k=10))
    out["ratio_to_bound"] = out["stacked_us"] / bound
    print(f"\nbatched sensing d=100, N=3: {len(runs)} runs, {len(sizes)} sizes x 2 seeds ({rows} measurements): "
          f"bound {bound:.1f} us, sets of one size stacked {out['stacked_us']:.1f} us ({out['ratio_to_bound']:.2f} x "
          f"bound), stacked + records every 200 steps "
          f"{out['with_records_us']:.1f} us (us per batch step)")
    # the preset trains depths 2, 3 and 4 on every set: one batch (a set read once per step for
    # the three) against a batch per depth (each reads every set: the steps of the three add up)
    depths = (2, 3, 4)
    by_depth = {depth: [BatchRun(run.observations, init_factors(w_star.shape, depth, "gaussian", 1e-3, seed=k), 1e-3,
                                 ground_truth=w_star) for k, run in enumerate(runs)] for depth in depths}
    one_batch = batch_us([run for depth in depths for run in by_depth[depth]])
    per_depth = {depth: batch_us(by_depth[depth]) for depth in depths}
    out.update(depths_one_batch_us=one_batch, depths_per_batch_us=per_depth,
               depths_speedup=sum(per_depth.values()) / one_batch)
    print(f"depths 2, 3, 4 on those sets ({len(depths) * len(runs)} runs): one batch {one_batch:.1f} us per step, "
          f"a batch per depth " + " + ".join(f"{per_depth[d]:.1f}" for d in depths) +
          f" = {sum(per_depth.values()):.1f} us ({out['depths_speedup']:.2f}x; bound of one batch {bound:.1f} us)")
    return out


def record_ms(device: str, shape: tuple[int, int], repeat: int) -> dict[str, float]:
    """Milliseconds for the singular values (and vectors) of a ``shape`` fp32 matrix on the
    device: the record of the dynamics runs and the alternatives to it."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(shape, generator=gen).to(device)
    grad = torch.randn(shape, generator=gen).to(device)

    def gram_eigh():  # W W^T = U S^2 U^T in fp64: the top singular values to fp32 precision
        w64 = w.double()
        return torch.linalg.eigh(w64 @ w64.T)[0]

    cases = {"record (alignment_statistics)": lambda: alignment_statistics(w, grad)["sigma"],
             "svd": lambda: torch.linalg.svd(w, full_matrices=False)[1],
             "svdvals": lambda: torch.linalg.svdvals(w),
             "eigh of W W^T fp64": gram_eigh}
    if device.startswith("cuda"):
        cases["svd gesvdj"] = lambda: torch.linalg.svd(w, full_matrices=False, driver="gesvdj")[1]
        cases["svd gesvda"] = lambda: torch.linalg.svd(w, full_matrices=False, driver="gesvda")[1]
    out = {}
    for name, fn in cases.items():
        try:
            out[name] = 1e3 * _timed(lambda fn=fn: torch.as_tensor(fn()), repeat)
        except Exception as exc:  # a driver this build lacks: say so, keep the rest
            print(f"{name}: {type(exc).__name__}: {exc}")
    return out


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
