"""How many measurement rows a sensing grid's batches read, one batch per depth against one batch
of every depth, from the step counts of runs already trained (their ``metrics.json``).

A batch step reads each of its measurement sets twice; a set stays in the stack until every run
on it has stopped and half the stack's rows are frozen (``dmfcore.batched.train_batch``'s
shedding rule, looks every ``--look`` steps). Prints the two totals (rows x steps) and their
ratio: the factor by which batching over depth cuts a bandwidth-bound GPU's sensing time.

    python benchmarks/sensing_batch_traffic.py results/runs/sensing/50x50_rank3
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path


def runs_of(root: Path) -> list[dict]:
    runs = []
    for path in sorted(root.glob("n*/seed*/dmf_depth*/metrics.json")):
        n, seed = re.search(r"/n(\d+)/seed(\d+)/", str(path)).groups()
        depth = int(re.search(r"dmf_depth(\d+)_", str(path)).group(1))
        runs.append(dict(depth=depth, set=(int(n), int(seed)), m=int(n), steps=json.loads(path.read_text())["iterations"]))
    return runs


def rows_read(batch: list[dict], look: int) -> int:
    """Measurement rows read per pass, summed over the batch's steps."""
    rows, t, total = list(range(len(batch))), 0, 0
    while rows:
        total += look * sum({batch[i]["set"]: batch[i]["m"] for i in rows}.values())
        t += look
        done = {batch[i]["set"] for i in rows} - {batch[i]["set"] for i in rows if batch[i]["steps"] >= t}
        out = [i for i in rows if batch[i]["set"] in done]
        if len(out) == len(rows):
            break
        if out and 2 * len(out) >= len(rows):
            rows = [i for i in rows if i not in out]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="a sensing dataset's runs: results/runs/sensing/<dataset>")
    parser.add_argument("--look", type=int, default=100)
    args = parser.parse_args()
    runs = runs_of(args.root)
    if not runs:
        raise SystemExit(f"no runs under {args.root}")
    depths = sorted({r["depth"] for r in runs})
    per_depth = {d: rows_read([r for r in runs if r["depth"] == d], args.look) for d in depths}
    merged = rows_read(runs, args.look)
    print(json.dumps(dict(runs=len(runs), depths=depths, per_depth=per_depth, per_depth_total=sum(per_depth.values()),
                          one_batch=merged, ratio=sum(per_depth.values()) / merged)))


if __name__ == "__main__":
    main()
