"""Runs trained on a GPU against the same runs trained on the CPU (issue 10's tolerances).

    python ci/compare_devices.py GPU_ROOT CPU_ROOT [--device cuda] [--reference cpu]

Every ``metrics.json`` of a training run under ``GPU_ROOT/results/runs`` whose directory ends in
``_<device>_<dtype>`` is paired with the run of the same path under ``CPU_ROOT`` ending in
``_<reference>_<dtype>``. Per pair: the iterations and the reconstruction error, relative to the
CPU's. Prints the pairs outside the tolerances (recon error within 1e-4 relative, iterations
within 0.5%; ``--recon-atol`` adds an absolute allowance), a summary, and as its last line one
JSON object. Exit status: 0 when every pair is within them, 1 when some are not, 2 when no run
pairs up. (Recovered runs end at recon errors that rounding moves far in relative terms: two
single fp64 runs of a 10 x 10 sensing problem, NumPy and torch-cpu, ended at 3.7e-6 and 5.2e-6.)

After a GPU session (``ci/gpu_session.sh``: ``paper_preset_metrics.tar.gz``):

    mkdir -p /tmp/gpu && tar -xzf paper_preset_metrics.tar.gz -C /tmp/gpu
    python ci/compare_devices.py /tmp/gpu .      # against this checkout's CPU runs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

RECON_RTOL = 1e-4
ITERATIONS_RTOL = 0.005


def pairs(gpu_root: Path, cpu_root: Path, device: str, reference: str) -> list[tuple[str, dict, dict]]:
    """(run directory relative to the root, GPU metrics, CPU metrics) for every run both have."""
    found = []
    for path in sorted((gpu_root / "results" / "runs").glob("**/dmf_*/metrics.json")):
        run = path.parent.relative_to(gpu_root)
        head, sep, dtype = run.name.rpartition("_")
        if not sep or not head.endswith(f"_{device}"):
            continue
        twin = cpu_root / run.parent / f"{head[: -len(device)]}{reference}_{dtype}" / "metrics.json"
        if twin.is_file():
            found.append((str(run), json.loads(path.read_text()), json.loads(twin.read_text())))
    return found


def relative(a: float, b: float) -> float:
    return abs(a - b) / abs(b) if b else abs(a - b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gpu_root", type=Path)
    parser.add_argument("cpu_root", type=Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--reference", default="cpu")
    parser.add_argument("--recon-atol", type=float, default=0.0)
    args = parser.parse_args(argv)
    matched = pairs(args.gpu_root, args.cpu_root, args.device, args.reference)
    rows = [(run, relative(g["iterations"], c["iterations"]), relative(g["recon_error"], c["recon_error"]),
             abs(g["recon_error"] - c["recon_error"]) <= args.recon_atol + RECON_RTOL * abs(c["recon_error"]))
            for run, g, c in matched]  # (run, iterations apart, recon error apart (relative), recon error within)
    outside = [row for row in rows if row[1] > ITERATIONS_RTOL or not row[3]]
    for run, iterations, recon, _ in outside:
        print(f"outside: {run}: iterations {iterations:.2e}, recon error {recon:.2e} relative")
    summary = {
        "pairs": len(rows),
        "outside": len(outside),
        "max_iterations_rel": max((r[1] for r in rows), default=None),
        "max_recon_rel": max((r[2] for r in rows), default=None),
        "tolerances": {"iterations": ITERATIONS_RTOL, "recon_error": RECON_RTOL, "recon_atol": args.recon_atol},
    }
    print(f"{len(rows)} runs on {args.device} paired with {args.reference}; {len(outside)} outside the tolerances "
          f"(iterations {ITERATIONS_RTOL:.1%}, recon error {RECON_RTOL:g} relative); largest: iterations "
          f"{summary['max_iterations_rel']}, recon error {summary['max_recon_rel']}")
    print(json.dumps(summary))
    return 2 if not rows else 1 if outside else 0


if __name__ == "__main__":
    sys.exit(main())
