"""Which code computed a result (dmfcore.provenance) and independent random streams."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dmfcore.seeds import STREAM_TAGS, stream_seed
from dmfcore.tables import check_provenance
from dmfcore.provenance import PACKAGE_DIR, StaleResultError, check_code_fingerprint, code_fingerprint, module_closure


@pytest.fixture
def package_copy(tmp_path):
    dest = tmp_path / "dmfcore"
    shutil.copytree(PACKAGE_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_fingerprint_follows_the_code_not_its_comments(package_copy):
    parts = ("datasets", "runs", "baselines", "tables", "theory", "plots")

    def fingerprints() -> dict:
        code_fingerprint.cache_clear()
        return {part: code_fingerprint(part, package_copy) for part in parts}

    before = fingerprints()
    assert len(set(before.values())) == len(parts)
    training = package_copy / "training.py"
    source = training.read_text()
    training.write_text(source.replace('"""The training loop', '"""An edited docstring. The training loop', 1)
                        + "\n# a comment\n")
    assert fingerprints() == before
    # the training loop: training runs and the theory checks (which train), not the data, the
    # baselines, the tables or the figures
    training.write_text(source.replace("t += 1", "t = t + 1", 1))
    after = fingerprints()
    assert {part for part in parts if after[part] != before[part]} == {"runs", "theory"}
    # a module every part imports: every part
    problems = package_copy / "problems.py"
    problems.write_text(problems.read_text() + "\nX = 1\n")
    assert all(value != after[part] for part, value in fingerprints().items())
    code_fingerprint.cache_clear()


def test_a_part_is_its_module_and_all_it_imports(package_copy):
    # the baselines import no training code; a lazy import inside a function counts
    assert "training" not in module_closure("baselines", package_copy)
    assert {"baselines", "convex", "nuclear_admm", "records", "__init__"} <= set(module_closure("baselines", package_copy))
    convex = package_copy / "convex.py"
    convex.write_text(convex.read_text() + "\n\ndef _late():\n    from .training import train\n\n    return train\n")
    assert "training" in module_closure("baselines", package_copy)
    with pytest.raises(ValueError, match=r"code part must be a module of .*, one of \[.*'baselines'.*\]; got 'compute'"):
        module_closure("compute", package_copy)


def test_fingerprint_ignores_line_breaks_inside_brackets_but_not_fstrings(package_copy):
    before = code_fingerprint("runs", package_copy)
    training = package_copy / "training.py"
    source = training.read_text()
    assert "def _record(\n" in source
    training.write_text(source.replace("def _record(\n", "def _record(\n\n    # why\n", 1))
    code_fingerprint.cache_clear()
    assert code_fingerprint("runs", package_copy) == before
    assert 'f"{name}' in source or "f'" in source or 'f"' in source
    first_fstring = source.index('f"')
    training.write_text(source[:first_fstring + 2] + "x" + source[first_fstring + 2:])
    code_fingerprint.cache_clear()
    assert code_fingerprint("runs", package_copy) != before
    code_fingerprint.cache_clear()


def _other_pythons() -> list[str]:
    """Other CPython versions (3.11+) on this machine (pyenv's, or python3.X on PATH)."""
    found = {}
    for candidate in sorted(Path.home().glob(".pyenv/versions/3.*/bin/python3")) + [
            Path(p) for p in (shutil.which(f"python3.{minor}") for minor in range(10, 15)) if p]:
        res = subprocess.run([str(candidate), "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True,
                             text=True)
        version = tuple(int(v) for v in res.stdout.split()) if res.returncode == 0 else ()
        if version >= (3, 11) and version != sys.version_info[:2]:  # the project's Pythons
            found.setdefault(version, str(candidate))
    return list(found.values())


def test_fingerprint_is_the_same_on_every_python_version():
    """A run made on a GPU machine's Python (3.12) must be accepted by a workflow on 3.11: the
    old fingerprint (an ``ast.dump``) differed between versions for the same source."""
    others = _other_pythons()
    if not others:
        pytest.skip("no other Python version on this machine")
    script = ("import importlib.util, sys; from pathlib import Path; "
              "spec = importlib.util.spec_from_file_location('provenance', sys.argv[1]); "
              "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
              "print(m.code_fingerprint('runs', Path(sys.argv[2])), m.code_fingerprint('plots', Path(sys.argv[2])))")
    here = f"{code_fingerprint('runs')} {code_fingerprint('plots')}"
    for python in others:
        res = subprocess.run([python, "-c", script, str(PACKAGE_DIR / "provenance.py"), str(PACKAGE_DIR)],
                             capture_output=True, text=True, check=True)
        assert res.stdout.strip() == here, python


def test_a_job_with_other_code_refuses_to_run():
    check_code_fingerprint(code_fingerprint("baselines"), "baselines")
    with pytest.raises(StaleResultError, match="another version of dmfcore installed"):
        check_code_fingerprint("0" * 16, "baselines")


def test_check_provenance_lists_the_stale_results_and_the_command():
    # each record against today's code of its own part
    records = [{"code_fingerprint": "aaaa", "code_part": "runs"},
               {"code_fingerprint": "cccc", "code_part": "baselines"},
               {"code_fingerprint": "cccc", "code_part": "runs"},  # the baselines' code, not its own
               {}]
    paths = ["runs/a/metrics.json", "runs/b/metrics.json", "runs/c/metrics.json", "runs/d/metrics.json"]
    expected = {"runs": "aaaa", "baselines": "cccc"}
    check_provenance(records[:2], paths[:2], expected)
    with pytest.raises(StaleResultError) as err:
        check_provenance(records, paths, expected)
    message = str(err.value)
    assert message.startswith("2 of 4 results were computed by other code (code fingerprint None, cccc; the code "
                              "now is no code part None, runs aaaa)")
    assert "snakemake --cores all --forcerun runs/c/metrics.json runs/d/metrics.json" in message
    assert "runs/a/metrics.json" not in message and "runs/b/metrics.json" not in message


def test_random_streams_never_coincide():
    # before: observations drew from (seed, n_obs) and the initialization from (seed, depth),
    # one and the same stream whenever n_obs == depth
    for seed in (0, 7):
        for key in (1, 2, 3, 4):
            draws = {stream: np.random.default_rng(stream_seed(seed, stream, key)).random(4).tolist()
                     for stream in STREAM_TAGS}
            draws["ground_truth"] = np.random.default_rng(seed).random(4).tolist()
            assert len({tuple(d) for d in draws.values()}) == len(draws), (seed, key)
    # the observation stream is unchanged, so existing data files stay valid
    assert stream_seed(3, "observations", 2000) == (3, 2000)


def test_a_module_of_a_subpackage_is_in_its_importers_closure(package_copy):
    sub = package_copy / "extra"
    sub.mkdir()
    (sub / "__init__.py").write_text('"""A subpackage."""\nfrom .helpers import scale\n')
    (sub / "helpers.py").write_text("from ..io import atomic_path\n\n\ndef scale(x):\n    return 2 * x\n")
    (sub / "other.py").write_text("from . import helpers\n\n\ndef unused():\n    return helpers\n")
    plots = package_copy / "plots.py"
    plots.write_text(plots.read_text() + "\n\ndef _doubled(x):\n    from .extra.helpers import scale\n\n    return scale(x)\n")
    closure = module_closure("plots", package_copy)
    # the module, its package's __init__ (which runs first), and what the module imports in turn
    assert {"extra", "extra.helpers", "io"} <= set(closure) and "extra.other" not in closure
    assert set(module_closure("extra.other", package_copy)) >= {"extra", "extra.helpers", "extra.other", "io", "__init__"}
    code_fingerprint.cache_clear()
    before = code_fingerprint("plots", package_copy)
    (sub / "helpers.py").write_text("from ..io import atomic_path\n\n\ndef scale(x):\n    return 3 * x\n")
    code_fingerprint.cache_clear()
    assert code_fingerprint("plots", package_copy) != before
    # absolute imports of a subpackage's module count too
    (sub / "other.py").write_text("import dmfcore.extra.helpers\n")
    assert "extra.helpers" in module_closure("extra.other", package_copy)
    code_fingerprint.cache_clear()


def test_editing_the_ratings_code_reruns_no_synthetic_data_training_or_baseline(package_copy):
    parts = ("datasets", "real_data", "runs", "baselines", "tables", "theory", "plots")
    code_fingerprint.cache_clear()
    before = {part: code_fingerprint(part, package_copy) for part in parts}
    ratings = package_copy / "ratings.py"
    ratings.write_text(ratings.read_text().replace("need non-empty train and test sets", "need a train and a test set"))
    code_fingerprint.cache_clear()
    after = {part: code_fingerprint(part, package_copy) for part in parts}
    assert {part for part in parts if after[part] != before[part]} == {"real_data"}
    code_fingerprint.cache_clear()


def test_each_source_file_is_normalized_once_per_process(package_copy, monkeypatch):
    import dmfcore.provenance as provenance

    calls = []
    real = provenance._normalized_source
    monkeypatch.setattr(provenance, "_normalized_source", lambda path: calls.append(path) or real(path))
    code_fingerprint.cache_clear()
    provenance._cached_normalized_source.cache_clear()
    for part in ("datasets", "runs", "baselines", "tables", "theory", "plots"):
        code_fingerprint(part, package_copy)
    assert len(calls) == len(set(calls))
    code_fingerprint.cache_clear()


def test_dmf_why_names_the_modules_that_changed_since_a_result(package_copy, tmp_path, capsys):
    """A job's log ends with its code's module hashes; `dmf why` says which changed since."""
    import json

    from dmfcore.cli import main
    from dmfcore.codediff import append_module_hashes, describe, explain

    code_fingerprint.cache_clear()
    result = tmp_path / "runs/nuclear_norm"
    result.mkdir(parents=True)
    (result / "metrics.json").write_text(json.dumps(
        {"code_part": "baselines", "code_fingerprint": code_fingerprint("baselines", package_copy)}))
    (result / "run.log").write_text("solver: admm-svt\n")
    append_module_hashes(result / "run.log", "baselines", package_copy)

    assert explain(result, package_copy) == {"result": str(result), "code_part": "baselines", "stale": False,
                                             "recorded": code_fingerprint("baselines", package_copy),
                                             "now": code_fingerprint("baselines", package_copy)}
    convex = package_copy / "convex.py"
    convex.write_text(convex.read_text() + "\n# a comment changes nothing\n")
    code_fingerprint.cache_clear()
    assert not explain(result, package_copy)["stale"]
    convex.write_text(convex.read_text() + "\n_EDITED = True\n")
    (package_copy / "newmodule.py").write_text("X = 1\n")
    baselines = package_copy / "baselines.py"
    baselines.write_text(baselines.read_text() + "\nfrom .newmodule import X  # noqa\n")
    code_fingerprint.cache_clear()
    why = explain(result, package_copy)
    assert why["stale"] and why["modules"] == {"changed": ["baselines.py", "convex.py"], "added": ["newmodule.py"],
                                               "removed": []}
    assert "changed: baselines.py, convex.py; added: newmodule.py" in describe(why)
    # a result whose log names no modules (made before they were recorded): said so
    (result / "run.log").write_text("solver: admm-svt\n")
    assert "which modules changed is not known" in describe(explain(result, package_copy))
    code_fingerprint.cache_clear()
    # the command, on today's package: a result of other code is stale
    (result / "metrics.json").write_text(json.dumps({"code_part": "baselines", "code_fingerprint": "0" * 16}))
    assert main(["why", str(result / "metrics.json")]) == 0
    assert "stale (computed by code" in capsys.readouterr().out
    assert main(["why", str(tmp_path / "nowhere")]) == 2


def test_every_workflow_job_with_a_record_logs_its_module_hashes():
    """The scripts of the jobs that write a metrics.json end their log with the module hashes."""
    scripts = Path(__file__).resolve().parents[1] / "workflow/scripts"
    for script in ("train_dmf", "train_batch", "min_nuclear_norm", "ground_truth_row", "predictor_row"):
        assert "append_module_hashes(" in (scripts / f"{script}.py").read_text(), script
