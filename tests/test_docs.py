"""The documentation: the MkDocs site builds with --strict (broken links, missing anchors and
figures, pages left out of the navigation fail), every key of the config schema is documented,
the README stays a short user guide whose links, commands and code are true, and the smoke preset
touches every rule."""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys

import pytest
import yaml
from dmfcore.plan.make import batch_rule
from helpers import REPO

DOCS = REPO / "docs"
README = REPO / "README.md"
# pages other branches add; until a checkout has them docs/hooks.py leaves them out
OPTIONAL_PAGES = ("docs/norms.md", "docs/phase.md")


def build_site(dest):
    """``mkdocs build --strict`` into dest: (return code, output)."""
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(dest)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    return proc.returncode, proc.stdout + proc.stderr


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install -e '.[docs]')")
    pytest.importorskip("material", reason="mkdocs-material is not installed (pip install -e '.[docs]')")
    rc, out = build_site(tmp_path / "site")
    assert rc == 0, out
    assert not re.search(r"^WARNING", out, re.M), out
    # every page of docs/ is a page of the site, and every figure a page shows was copied
    for page in DOCS.glob("*.md"):
        built = tmp_path / "site" / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.exists(), page
    for html in (tmp_path / "site").rglob("index.html"):
        for src in re.findall(r'<img[^>]+src="([^"]+)"', html.read_text()):
            if not src.startswith(("http:", "https:", "data:")):
                assert (html.parent / src).resolve().exists(), (html, src)


def test_mkdocs_strict_fails_on_a_broken_link(tmp_path):
    """The build above can fail: a copy of the docs with a link to a missing page and a missing
    figure does not build."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    import shutil

    shutil.copytree(DOCS, tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs/index.md", "a") as f:
        f.write("\n[gone](no-such-page.md) ![gone](figures/no-such-figure.png)\n")
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "no-such-page.md" in proc.stderr + proc.stdout
    assert "no-such-figure.png" in proc.stderr + proc.stdout


def schema_keys() -> dict[str, set[str]]:
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    return {"top level": set(schema["properties"]),
            "datasets.<name>": set(schema["$defs"]["dataset"]["properties"]),
            "experiments.<name>": set(schema["$defs"]["experiment"]["properties"])}


def test_every_schema_key_is_documented():
    """docs/configuration.md documents every key of the schema in its section's table."""
    text = (DOCS / "configuration.md").read_text()
    sections = {"top level": "## Top level", "datasets.<name>": "## `datasets.<name>`",
                "experiments.<name>": "## `experiments.<name>`"}
    for where, keys in schema_keys().items():
        start = text.index(sections[where])
        section = text[start:text.find("\n## ", start + 1)]
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        documented = {k for row in rows for k in re.findall(r"`([a-z_0-9]+)`", row.split("|")[1])}
        assert keys <= documented, f"{where}: undocumented keys {sorted(keys - documented)}"
        assert documented <= keys, f"{where}: documented keys not in the schema {sorted(documented - keys)}"


def test_readme_is_a_short_guide_with_true_links():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    # what a reader needs to find from it
    for needle in ("dmf plan", "docs/norms.md", "## Adding an experiment", "docs/extending.md",
                   "## Citing", "@inproceedings", "Implicit Regularization in Deep Matrix Factorization",
                   "## License", "MIT", "https://download.pytorch.org/whl/cpu", "presets/smoke.yaml"):
        assert needle in text, needle
    # every relative link and image points to a file of the repository (or a page another branch adds)
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if target.startswith(("http:", "https:")) or target in OPTIONAL_PAGES:
            continue
        assert (REPO / target).exists(), target
    # the test command is the one CI runs
    ci = (REPO / ".ci/run").read_text()
    command = re.search(r"^python -m pytest .*$", ci, re.M).group(0)
    assert command in text
    # each measured time once: the default run's "about N minutes", as docs/performance.md measured it
    stated = re.findall(r"about (\d+(?:\.\d+)?) minutes on a 2-core", text)
    assert len(stated) == 1, stated
    measured = re.search(r"^(\d+)m(\d+) \(", (REPO / "docs/performance.md").read_text().split("## The default run")[1], re.M)
    assert abs(float(stated[0]) - (int(measured.group(1)) + int(measured.group(2)) / 60)) <= 0.5, (stated, measured.group(0))


def test_readme_anchors_exist_in_the_pages():
    """A README link to a page's section (docs/x.md#anchor) names a heading of that page, so a
    person gets from the README to each number in one click."""
    text = README.read_text()

    def slug(heading: str) -> str:  # Python-Markdown's toc slugify (MkDocs' default)
        heading = re.sub(r"[`*]", "", heading).strip().lower()
        heading = re.sub(r"[^\w\s-]", "", heading)
        return re.sub(r"[-\s]+", "-", heading)

    for page, anchor in re.findall(r"\]\((docs/[^)#\s]+)#([^)]+)\)", text):
        if page in OPTIONAL_PAGES:
            continue
        headings = re.findall(r"^#+ (.+)$", (REPO / page).read_text(), re.M)
        assert anchor in {slug(h) for h in headings}, (page, anchor)


def test_readme_library_example_names_exist():
    """The README's five lines use names the library has (the example itself was run by hand:
    it takes a minute)."""
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    tree = ast.parse(code)
    modules = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                modules[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
    used = [(n.value.id, n.attr) for n in ast.walk(tree)
            if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id in modules]
    assert used
    for module, attr in used:
        assert hasattr(modules[module], attr), f"{module}.{attr}"


def test_smoke_preset_touches_every_rule_and_figure():
    """presets/smoke.yaml plans every rule but the download (it needs the internet), every figure
    kind and every theory check but rates (40 CPU-seconds, too slow for a minute)."""
    from dmfcore.plots import FIGURES
    from dmfcore.theory import THEORY_CHECKS

    golden = json.loads((REPO / "tests/golden/smoke.json").read_text())
    rules = {job["rule"] for job in golden["jobs"]}
    defined = set(re.findall(r"^rule (\w+):", "\n".join(p.read_text() for p in (REPO / "workflow/rules").glob("*.smk")), re.M))
    assert defined - {"download_ratings"} <= rules, sorted(defined - rules)
    batches = {batch_rule(rule) for rule in rules - defined}
    assert batches == {"train_batch", "observations_batch", "min_nuclear_norm_batch"}, sorted(rules)
    config = yaml.safe_load((REPO / "presets/smoke.yaml").read_text())
    figures = {f for e in config["experiments"].values() for f in e.get("figures", [])}
    assert figures == set(FIGURES)
    assert set(config["theory"]) == set(THEORY_CHECKS) - {"rates"}


def test_the_module_table_names_every_module():
    """docs/development.md's table of dmfcore's modules lists each of them (no renamed or
    vanished name), so that a reader finds where a concept lives."""
    text = (REPO / "docs/development.md").read_text()
    table = text.split("| module | contents |")[1].split("\n\n")[0]
    named = {name for row in table.splitlines() if row.startswith("| `")
             for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    src = REPO / "src/dmfcore"
    packages = [p for p in src.iterdir() if (p / "__init__.py").is_file()]
    modules = {p.stem for d in [src, *packages] for p in d.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in packages}  # a package and its modules: `plan` (`config`, `make`, ...)
    assert named == modules, (sorted(modules - named), sorted(named - modules))
