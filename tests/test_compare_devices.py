"""ci/compare_devices.py: GPU runs paired with the CPU's, against issue 10's tolerances."""

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "ci" / "compare_devices.py"
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
