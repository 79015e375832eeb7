"""Figure 3's MovieLens runs (the `dynamics` experiment of config.yaml, device cuda) through the
library, for a GPU machine without Snakemake: each depth into its workflow path under
OUT_ROOT/results/runs/ (untar them in the repository root; the rows carry this code's
fingerprint, so the workflow's tables accept them when the code is the same). A run killed
part-way leaves its checkpoint (every 10,000 steps) there; the same command resumes it and
skips the runs already finished.

    python ci/gpu_movielens.py OBSERVATIONS.npz OUT_ROOT [DEVICE [MAX_ITERS [DEPTH ...]]]
        (defaults: cuda, 200000, depths 3 2 1; one process per depth runs them side by side)
"""

import sys
import time
from pathlib import Path

from dmfcore.runs import run_dmf
from dmfcore.runspec import TrainConfig
from dmfcore.records import RunOutputs

observations, root = Path(sys.argv[1]), Path(sys.argv[2])
device = sys.argv[3] if len(sys.argv) > 3 else "cuda"
max_iters = int(sys.argv[4]) if len(sys.argv) > 4 else 200000
depths = [int(d) for d in sys.argv[5:]] or [3, 2, 1]
for depth in depths:
    config = TrainConfig(depth=depth, init="identity", init_scale=0.001, lr=0.1, optimizer="gd", seed=0,
                         max_iters=max_iters, loss_threshold=1e-06, record_every=100, top_k=10, device=device)
    run = root / (f"results/runs/completion/movielens100k_file_order/n10000/seed0/dmf_depth{depth}_identity0.001_gd_"
                  f"lr0.1_stop1e-06_max{max_iters}_{device}_float32")
    if (run / "metrics.json").is_file():  # finished in an earlier call
        print(f"depth {depth}: done before, {run}", flush=True)
        continue
    start = time.perf_counter()
    record = run_dmf(None, observations, config,
                     RunOutputs(run / "matrix.npz", run / "metrics.json", run / "run.log", run / "trajectory.parquet"))
    print(f"depth {depth}: {record['iterations']} steps, {record['wall_seconds']:.1f} s training, "
          f"{time.perf_counter() - start:.1f} s in all, test error {record['test_error']:.4f} "
          f"(min {record['min_test_error']:.4f})", flush=True)
