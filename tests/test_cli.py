import json
import subprocess
import sys

import numpy as np
import pandas as pd

from dmfcore.cli import main


def test_cli_run_writes_the_workflow_files(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["run", "--d", "12", "--rank", "2", "--n-obs", "80", "--depth", "3", "--record-every", "200", "--out", str(out)])
    assert rc == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["method"] == "dmf" and record["depth"] == 3 and record["n_obs"] == 80
    assert record["converged"] is True
    with np.load(out / "matrix.npz") as npz:
        assert npz["W"].shape == (12, 12)
    traj = pd.read_parquet(out / "trajectory.parquet")
    assert traj["step"].iloc[-1] == record["iterations"]
    assert "iterations" in (out / "run.log").read_text()
    printed = json.loads(capsys.readouterr().out)
    assert printed["recon_error"] == record["recon_error"]

    nn_out = tmp_path / "nn"
    rc = main(["nuclear-norm", "--ground-truth", str(out / "data/ground_truth.npz"),
               "--observations", str(out / "data/observations_n80.npz"), "--out", str(nn_out)])
    assert rc == 0
    assert json.loads((nn_out / "metrics.json").read_text())["method"] == "nuclear_norm"


def test_cli_bad_arguments_exit_nonzero_with_message(tmp_path, capsys):
    assert main(["run", "--depth", "0", "--d", "5", "--rank", "1", "--n-obs", "5", "--out", str(tmp_path)]) == 2
    assert "depth" in capsys.readouterr().err
    assert main(["run", "--n-obs", "500", "--d", "5", "--rank", "1", "--out", str(tmp_path)]) == 2
    assert "n_obs=500" in capsys.readouterr().err
    assert main(["run", "--ground-truth", str(tmp_path / "missing.npz"), "--observations", str(tmp_path / "o.npz"),
                 "--out", str(tmp_path)]) == 2
    assert "missing.npz" in capsys.readouterr().err


def test_console_script_help():
    res = subprocess.run([sys.executable, "-m", "dmfcore.cli", "run", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "--n-obs" in res.stdout
