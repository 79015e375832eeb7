"""MkDocs hook: pages another branch adds (OPTIONAL) are in the navigation and linked from other
pages; until a checkout has them, they are left out of the navigation and links to them become
plain text, so that `mkdocs build --strict` passes with and without them."""

from __future__ import annotations

import re
from pathlib import Path

OPTIONAL = ("norms.md", "phase.md")
_missing: set[str] = set()


def _prune(nav):
    out = []
    for item in nav:
        if isinstance(item, dict):
            (title, value), = item.items()
            if isinstance(value, list):
                value = _prune(value)
                if value:
                    out.append({title: value})
            elif value not in _missing:
                out.append(item)
        elif item not in _missing:
            out.append(item)
    return out


def on_config(config):
    docs = Path(config["docs_dir"])
    _missing.clear()
    _missing.update(name for name in OPTIONAL if not (docs / name).exists())
    if config.get("nav"):
        config["nav"] = _prune(config["nav"])
    return config


def on_page_markdown(markdown, page, config, files):
    for name in _missing:
        markdown = re.sub(r"\[([^\]]+)\]\(" + re.escape(name) + r"(#[^)]*)?\)",
                          r"\1 (`docs/" + name + "`, not in this checkout)", markdown)
    return markdown
