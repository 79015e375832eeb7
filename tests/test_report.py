"""The report's captions (workflow/report/*.rst) are valid reStructuredText for every figure and
theory check: rendered as Snakemake renders them (Jinja2, then docutils), in-process."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from helpers import REPO, docutils_problems

from dmfcore.plots import FIGURES, THEORY_FIGURES

REPORT = REPO / "workflow/report"


def render(caption: str, **wildcards: str) -> str:
    """A caption as ``snakemake --report`` renders it (snakemake.report: Jinja2, publish_parts)."""
    import jinja2
    from docutils.core import publish_parts

    text = jinja2.Environment().from_string((REPORT / caption).read_text()).render(
        snakemake=SimpleNamespace(wildcards=SimpleNamespace(**wildcards)))
    return publish_parts(text, writer="html")["body"]


@pytest.mark.parametrize("figure", sorted(FIGURES))
def test_every_figure_caption_renders_without_docutils_errors(figure):
    html = render("figure.rst", figure=figure, experiment="tiny")
    assert not docutils_problems(html), html
    assert "no caption yet" not in html  # every registered figure has its own caption


@pytest.mark.parametrize("check", sorted(THEORY_FIGURES))
def test_every_theory_caption_renders_without_docutils_errors(check):
    html = render("theory.rst", check=check)
    assert not docutils_problems(html), html
    assert f"<em>{check}</em>" in html  # each check is described


def test_the_workflow_description_renders_without_docutils_errors():
    from docutils.core import publish_parts

    html = publish_parts((REPORT / "workflow.rst").read_text(), writer="html")["body"]
    assert not docutils_problems(html), html


def test_the_check_finds_an_undefined_substitution():
    from docutils.core import publish_parts

    html = publish_parts("the |diagonal| entries", writer="html")["body"]
    assert docutils_problems(html)


@pytest.mark.parametrize("figure", ["phase", "phase_heatmap"])
def test_the_phase_caption_renders_without_docutils_errors(figure):
    html = render("phase.rst", figure=figure, experiment="phase_completion")
    assert not docutils_problems(html), html
    assert "phase_completion_phase_thresholds.parquet" in html
