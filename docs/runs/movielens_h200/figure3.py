"""Figure 3 with the MovieLens row drawn from the runs made on an H200 on 2026-11-27 (this
folder: code of fa13204, fp32, identity init 1e-3, gd lr 0.1; depth 2's trajectory ends at
its 160,000-step checkpoint) beside the synthetic row of the default workflow's tables. The
workflow draws the same figure from its own tables once the MovieLens runs are in them.

    python docs/runs/movielens_h200/figure3.py   # after `snakemake --cores all`; writes
                                                 # docs/figures/dynamics_figure3_movielens_h200.png
"""

import json
from pathlib import Path

import pandas as pd

from dmfcore.plots import figure3

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
TABLES = ROOT / "results/default/tables"

frame = pd.read_parquet(TABLES / "dynamics.parquet")
trajectories = pd.read_parquet(TABLES / "dynamics_trajectories.parquet")
frame = frame[frame["dataset"] != "movielens100k_file_order"]
trajectories = trajectories[trajectories["dataset"] != "movielens100k_file_order"]
records, runs = [], []
for depth, name in ((1, "depth1_trajectory.parquet"), (2, "depth2_trajectory_to_step160000.parquet"),
                    (3, "depth3_trajectory.parquet")):
    setting = {"experiment": "dynamics", "problem": "completion", "dataset": "movielens100k_file_order",
               "d1": 943, "d2": 1682, "rank": None, "n_obs": 10000, "seed": 0, "depth": depth, "init": "identity",
               "init_scale": 0.001, "lr": 0.1, "optimizer": "gd"}
    metrics = HERE / f"depth{depth}_metrics.json"
    # depth 2 did not finish: its row takes the test error of its last record
    traj = pd.read_parquet(HERE / name).assign(**setting)
    record = json.loads(metrics.read_text()) if metrics.exists() else {"test_error": traj["test_error"].iloc[-1]}
    records.append({**setting, "method": "dmf", "test_error": record["test_error"]})
    runs.append(traj)
frame = pd.concat([frame, pd.DataFrame(records)], ignore_index=True)
trajectories = pd.concat([trajectories] + runs, ignore_index=True)
out = ROOT / "docs/figures/dynamics_figure3_movielens_h200.png"
fig = figure3(frame, trajectories)
fig.savefig(out, dpi=120, bbox_inches="tight")
print(out)
