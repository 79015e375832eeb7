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


def test_cli_checks_every_argument_before_writing_anything(tmp_path, capsys):
    """Before: an invalid argument was rejected only after --out/data/*.npz had been written."""
    import torch

    base = ["run", "--d", "6", "--rank", "1", "--n-obs", "10"]
    cases = [
        (["--depth", "0"], "depth must be an integer >= 1"),
        (["--init-scale", "-1"], "--init-scale must be a positive finite number"),
        (["--lr", "0"], "lr must be a positive finite number"),
        (["--n-obs", "500"], "n_obs=500 exceeds the 36 entries of a 6x6 matrix"),
        (["--rank", "7"], "--rank 7 exceeds min(d1, d2) = 6"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "torch sees no CUDA device"))
    for k, (extra, message) in enumerate(cases):
        out = tmp_path / f"out{k}"
        assert main(base + extra + ["--out", str(out)]) == 2
        assert message in capsys.readouterr().err
        assert not out.exists(), extra
    help_text = subprocess.run([sys.executable, "-m", "dmfcore.cli", "nuclear-norm", "--help"], capture_output=True,
                               text=True).stdout
    assert "chosen by size" in help_text and "(default: 1e-08)" in help_text


def test_help_shows_no_default_for_a_required_argument():
    from dmfcore.cli import build_parser

    parser = build_parser()
    run = parser._subparsers._group_actions[0].choices["run"]
    text = run.format_help()
    assert "(default: None)" not in text, text
    assert "output folder (required)" in " ".join(text.split())
    assert "default: 1000" in " ".join(text.split())  # defaults that exist are still shown


def test_record_every_0_means_first_and_last_step_as_in_the_workflow(tmp_path):
    """`--record-every 0` keeps trajectory.parquet with the first and the last step, as a workflow
    run with record_every: 0 does (its rule always has that output)."""
    out = tmp_path / "run"
    assert main(["run", "--d", "12", "--rank", "2", "--n-obs", "80", "--depth", "2", "--record-every", "0",
                 "--out", str(out)]) == 0
    record = json.loads((out / "metrics.json").read_text())
    traj = pd.read_parquet(out / "trajectory.parquet")
    assert list(traj["step"]) == [0, record["iterations"]]
