"""The GPU session's helpers: ci/compare_devices.py (GPU runs paired with the CPU's, against
issue 10's tolerances) and ci/snakemake_timeline.py (when each job ran, from a console log)."""

import json
import subprocess
import sys
from pathlib import Path

CI = Path(__file__).resolve().parents[1] / "ci"
SCRIPT = CI / "compare_devices.py"
RUN = "results/runs/completion/100x100_rank5/n2000/seed{seed}/dmf_depth3_gaussian0.001_group_rmsprop_lr0.001_stop1e-06_max1000000_{device}_float32"


def _write(root: Path, seed: int, device: str, iterations: int, recon: float) -> None:
    run = root / RUN.format(seed=seed, device=device)
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"iterations": iterations, "recon_error": recon}))


def _compare(gpu: Path, cpu: Path, *options: str) -> tuple[int, list[str]]:
    res = subprocess.run([sys.executable, str(SCRIPT), str(gpu), str(cpu), *options], capture_output=True, text=True)
    return res.returncode, res.stdout.strip().splitlines()


def test_runs_pair_up_and_are_held_to_the_tolerances(tmp_path):
    gpu, cpu = tmp_path / "gpu", tmp_path / "cpu"
    _write(gpu, 0, "cuda", 30_000, 1.00005e-5)  # within: 5e-5 relative, same steps
    _write(cpu, 0, "cpu", 30_000, 1e-5)
    _write(gpu, 1, "cuda", 30_100, 2e-5)  # iterations 0.33% apart, within; recon error 1e-3 apart, outside
    _write(cpu, 1, "cpu", 30_000, 1.998e-5)
    _write(gpu, 2, "cuda", 30_000, 1e-5)  # no CPU twin: left out
    status, out = _compare(gpu, cpu)
    summary = json.loads(out[-1])
    assert status == 1 and summary["pairs"] == 2 and summary["outside"] == 1
    assert summary["max_recon_rel"] > 1e-4 and summary["max_iterations_rel"] < 0.005
    assert out[0].startswith("outside: ") and "seed1" in out[0]
    assert _compare(gpu, cpu, "--recon-atol", "1e-7")[0] == 0  # 2e-8 apart
    (cpu / RUN.format(seed=1, device="cpu") / "metrics.json").write_text(
        json.dumps({"iterations": 30_000, "recon_error": 2e-5}))
    assert _compare(gpu, cpu)[0] == 0
    assert _compare(gpu, tmp_path / "nothing")[0] == 2


LOG = """Building DAG of jobs...
[Fri Nov 27 21:08:49 2026]
localrule ground_truth:
    output: results/data/a/seed0/ground_truth.npz
    jobid: 4
    wildcards: dataset=a, seed=0
[Fri Nov 27 21:08:50 2026]
Finished jobid: 4 (Rule: ground_truth)
[Fri Nov 27 21:08:51 2026]
localrule train_batch_0:
    output: results/runs/x/matrix.npz, results/runs/x/metrics.json
    jobid: 7
    resources: tmpdir=/tmp, gpu=1
[Fri Nov 27 21:09:01 2026]
localrule train_batch_1:
    output: results/runs/y/matrix.npz
    jobid: 8
[Fri Nov 27 21:10:31 2026]
Finished jobid: 7 (Rule: train_batch_0)
"""


def test_timeline_of_a_stopped_run(tmp_path):
    log = tmp_path / "run.log"
    log.write_text(LOG)
    res = subprocess.run([sys.executable, str(CI / "snakemake_timeline.py"), str(log)], capture_output=True, text=True)
    lines = res.stdout.splitlines()
    assert res.returncode == 0
    assert lines[0].split() == ["train_batch_0", "2", "s", "->", "102", "s", "(100", "s)", "results/runs/x/matrix.npz"]
    assert lines[1].split()[:5] == ["train_batch_1", "12", "s", "->", "(not"]  # still running at the end
    rules = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert rules["ground_truth"] == ["1", "1", "1", "s", "1", "s"] and rules["train_batch_1"] == ["1", "0"]
