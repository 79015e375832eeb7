"""What the files say about each other agrees: the report's path, where measured times live."""

from __future__ import annotations

import re

from helpers import REPO


def test_the_snakefile_and_the_readme_give_the_same_report_path():
    from dmfcore.plan import make_plan, read_config_files

    out = make_plan(read_config_files([REPO / "config.yaml"])).out  # where the default config's files go
    paths = {
        name: set(re.findall(r"--report (\S+\.html)", (REPO / name).read_text()))
        for name in ("Snakefile", "README.md")
    }
    assert paths["Snakefile"] and paths["README.md"]
    assert paths["Snakefile"] == paths["README.md"] == {f"{out}/report.html"}, paths


def test_config_yaml_states_no_measured_times():
    """Timings are measurements of one machine at one commit: the README (and the docs) state
    them once; config.yaml's comments would drift from them."""
    comments = [line for line in (REPO / "config.yaml").read_text().splitlines() if line.lstrip().startswith("#")]
    timing = re.compile(r"\b\d+m\d+\b|\b\d+(\.\d+)? ?(s|ms|min|minutes|hours|h)\b|~\d")
    assert not [line for line in comments if timing.search(line)], [line for line in comments if timing.search(line)]
