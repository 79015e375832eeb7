"""Training-step throughput: dmfcore's hand-written step vs. a plain autograd reference.

Measures, in one run and one process (one BLAS thread), at d=100, m=2000, fp32, matrix
completion, GroupRMSprop:

- the single-thread fp32 100x100 matmul rate of this machine (GFLOP/s, NumPy ``A @ B``);
- microseconds per iteration of ``dmfcore.training.train`` at depth 2, 3, 4;
- microseconds per iteration of a reference step written like the paper's code
  (``nn.Sequential`` of bias-free ``Linear`` layers, autograd, GroupRMSprop, ``loss.item()``
  every step).

A step needs ``3(N-1)`` products of 100x100 matrices, i.e. ``3(N-1) * 2 d^3`` FLOPs.
Prints a table and, as its last line, one JSON object.

    python benchmarks/train_step.py [--iters 3000]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dmfcore.backend import resolve_backend  # noqa: E402
from dmfcore.model import init_factors  # noqa: E402
from dmfcore.optimizers import group_rmsprop  # noqa: E402
from dmfcore.problems import low_rank_ground_truth, make_objective, sample_completion  # noqa: E402
from dmfcore.training import train  # noqa: E402

D, M = 100, 2000


def matmul_gflops(reps: int = 20000) -> float:
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((D, D)).astype(np.float32) for _ in range(2))
    c = np.empty((D, D), np.float32)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(reps):
            np.matmul(a, b, out=c)
        best = min(best, (time.perf_counter() - start) / reps)
    return 2 * D**3 / best / 1e9


def ours_us(depth: int, obs, iters: int) -> float:
    backend = resolve_backend("cpu", "float32")
    objective = make_objective(obs, backend)
    factors = [backend.asarray(f) for f in init_factors((D, D), depth, "gaussian", 1e-3, seed=0)]
    best = float("inf")
    for _ in range(3):
        # threshold 0: never converges early, so exactly `iters` updates are timed
        res = train(objective, factors, group_rmsprop(1e-3), max_iters=iters, loss_threshold=0.0)
        best = min(best, res.wall_seconds / res.iterations)
    return best * 1e6


class _GroupRMSprop(torch.optim.Optimizer):
    """The paper code's optimizer, as it is written there (torch.optim style)."""

    def __init__(self, params, lr=1e-3, alpha=0.99, eps=1e-4):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps))
        self.t, self.square_avg = 0, torch.tensor(0.0)

    @torch.no_grad()
    def step(self):
        group = self.param_groups[0]
        self.t += 1
        self.square_avg.mul_(group["alpha"])
        for p in group["params"]:
            self.square_avg.add_((1 - group["alpha"]) * p.grad.pow(2).sum())
        avg = self.square_avg.div(1 - group["alpha"] ** self.t).sqrt_().add_(group["eps"])
        for p in group["params"]:
            p.add_(-group["lr"] / avg * p.grad)


def reference_us(depth: int, obs, iters: int) -> float:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(D, D, bias=False) for _ in range(depth)])
    for p in model.parameters():
        torch.nn.init.normal_(p, std=1e-3 ** (1 / depth) / D**0.5)
    us = torch.as_tensor(obs.rows)
    vs = torch.as_tensor(obs.cols)
    ys = torch.as_tensor(obs.values, dtype=torch.float32)
    opt = _GroupRMSprop(model.parameters())

    def step():
        layers = list(model.children())
        e2e = layers[0].weight.t()
        for layer in layers[1:]:
            e2e = layer(e2e)
        loss = (e2e[us, vs] - ys).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        loss.item()  # the paper's code syncs every step to test the stopping rule
        opt.step()

    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(iters):
            step()
        best = min(best, (time.perf_counter() - start) / iters)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    w_star = low_rank_ground_truth(D, D, 5, seed=0)
    obs = sample_completion(w_star, M, seed=1)
    peak = matmul_gflops()
    result = {"peak_gflops": round(peak, 2), "depths": {}}
    print(f"single-thread fp32 {D}x{D} matmul: {peak:.1f} GFLOP/s")
    print(f"{'depth':>5} {'ours us':>9} {'ref us':>9} {'speedup':>8} {'% of peak':>9}")
    for depth in (2, 3, 4):
        ours = ours_us(depth, obs, args.iters)
        ref = reference_us(depth, obs, args.iters // 3)
        flops = 3 * (depth - 1) * 2 * D**3
        frac = flops / (ours * 1e-6) / 1e9 / peak
        print(f"{depth:>5} {ours:>9.1f} {ref:>9.1f} {ref / ours:>7.2f}x {100 * frac:>8.1f}%")
        result["depths"][str(depth)] = {"ours_us": round(ours, 2), "reference_us": round(ref, 2)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
