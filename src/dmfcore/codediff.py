"""Why a result is stale: which modules of its code changed since it was computed.

A result's record says which code computed it (``code_part`` and its ``code_fingerprint``,
:mod:`dmfcore.provenance`); a fingerprint alone says only *that* the code changed. The
workflow's jobs therefore end their log with one line naming every module of their code part
with its own hash (:func:`append_module_hashes`), and ``dmf why RESULT_DIR`` compares that line
with today's modules (:func:`explain`).

This module is imported by no code part (only by the workflow's scripts and the command
line), so editing it reruns nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .provenance import PACKAGE_DIR, _cached_normalized_source, code_fingerprint, module_closure, module_file

LOG_PREFIX = "code modules of "


def module_hashes(part: str, package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """Each module of ``part``'s code (:func:`~dmfcore.provenance.module_closure`), by its path in
    the package, with the first 16 hex digits of the SHA-256 of its normalized source (comments
    and docstrings do not count, as in the fingerprint)."""
    hashes = {}
    for name in module_closure(part, package_dir):
        path = module_file(name, package_dir)
        stat = path.stat()
        source = _cached_normalized_source(path, (stat.st_mtime_ns, stat.st_size))
        hashes[path.relative_to(package_dir).as_posix()] = hashlib.sha256(source.encode()).hexdigest()[:16]
    return hashes


def module_line(part: str, package_dir: Path = PACKAGE_DIR) -> str:
    return f"{LOG_PREFIX}{part}: {json.dumps(module_hashes(part, package_dir), sort_keys=True)}"


def append_module_hashes(log_path: str | os.PathLike, part: str, package_dir: Path = PACKAGE_DIR) -> None:
    """End a job's log with the hashes of its code's modules (read back by :func:`explain`)."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as fh:
        fh.write(module_line(part, package_dir) + "\n")


def recorded_module_hashes(log_text: str, part: str) -> dict[str, str] | None:
    """The module hashes a log recorded for ``part`` (its last such line), or None."""
    prefix = f"{LOG_PREFIX}{part}: "
    lines = [line for line in log_text.splitlines() if line.startswith(prefix)]
    return json.loads(lines[-1][len(prefix):]) if lines else None


def module_changes(before: dict[str, str], now: dict[str, str]) -> dict[str, list[str]]:
    return {
        "changed": sorted(m for m in before.keys() & now.keys() if before[m] != now[m]),
        "added": sorted(now.keys() - before.keys()),
        "removed": sorted(before.keys() - now.keys()),
    }


def explain(result: str | os.PathLike, package_dir: Path = PACKAGE_DIR) -> dict[str, Any]:
    """Whether a result (a folder with ``metrics.json`` and ``run.log``, or its ``metrics.json``)
    comes from today's code, and if not which of its modules changed."""
    path = Path(result)
    folder = path.parent if path.name == "metrics.json" else path
    record = json.loads((folder / "metrics.json").read_text())
    part = record["code_part"]
    now = code_fingerprint(part, package_dir)
    out: dict[str, Any] = {"result": str(folder), "code_part": part, "recorded": record["code_fingerprint"],
                           "now": now, "stale": record["code_fingerprint"] != now}
    log = folder / "run.log"
    before = recorded_module_hashes(log.read_text(), part) if log.is_file() else None
    if out["stale"]:
        out["modules"] = module_changes(before, module_hashes(part, package_dir)) if before is not None else None
    return out


def describe(explanation: dict[str, Any]) -> str:
    """One paragraph for a person (``dmf why``)."""
    e = explanation
    head = f"{e['result']}: code part {e['code_part']}"
    if not e["stale"]:
        return f"{head}: up to date (fingerprint {e['now']})"
    text = f"{head}: stale (computed by code {e['recorded']}, today's is {e['now']})"
    modules = e.get("modules")
    if modules is None:
        return text + ("; its log names no modules (made before module hashes were recorded): "
                       "which modules changed is not known")
    said = [f"{what}: {', '.join(names)}" for what, names in modules.items() if names]
    return text + "; " + ("; ".join(said) if said else "no module of its code changed (another package "
                          "layout or fingerprint scheme)")
