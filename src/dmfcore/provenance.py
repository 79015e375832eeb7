"""Which code computed a result: a fingerprint of the library's sources, and the git commit.

Every computed result (run record, table row) carries ``code_fingerprint``, the fingerprint of
the code that computed it, and ``code_part``, which code that is: an entry module of the
package (``datasets``, ``experiment`` for training runs, ``baselines``, ``theory``, ``tables``
for tables, ``plots`` for figures) with every package module it imports, directly or not
(:func:`module_closure`: every import statement of a module counts, lazy ones in functions
too). The fingerprint is the first 16 hex digits of the SHA-256 of those modules' *normalized*
source: their tokens without comments, docstrings and line breaks inside brackets, so that
editing a comment, a docstring or how a call is broken over lines does not invalidate results,
while any change to what the code does does; the same source gives the same fingerprint on
every Python version (results made on another machine are accepted). A change to the training
loop thus reruns the training runs, and neither the data nor the convex baselines (which
import no training code); a change to a module they all import reruns them all.

The workflow passes each job its part's fingerprint as a parameter (so Snakemake reruns a job
whose code changed) and checks it again where results are combined (so a table never mixes
results of different code, even when Snakemake's metadata was lost). ``code_commit`` (the git
commit of the source tree, with ``+dirty`` for uncommitted changes) is recorded for the
reader's information only: it is not part of the fingerprint.
"""

from __future__ import annotations

import ast
import hashlib
import io
import subprocess
import tokenize
from functools import lru_cache
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

PACKAGE = "dmfcore"


class StaleResultError(RuntimeError):
    """A result was computed by other code than the code running now."""


def _docstring_starts(tree: ast.AST) -> set[tuple[int, int]]:
    """(line, column) where each docstring (module, class, function) starts."""
    starts = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            starts.add((body[0].lineno, body[0].col_offset))
    return starts


def _normalized_source(path: Path) -> str:
    """The module's tokens without comments, docstrings and line breaks inside brackets, one
    per line. Tokens, unlike ``ast.dump`` (which gains fields from one Python version to the
    next), read the same on every Python: a GPU machine's 3.12 and a laptop's 3.11 give one
    fingerprint to one source. An f-string counts as its source text (3.12 splits it in parts)."""
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    docstrings = _docstring_starts(ast.parse(source, filename=str(path)))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
    fstring_start, fstring_end = getattr(tokenize, "FSTRING_START", None), getattr(tokenize, "FSTRING_END", None)
    out: list[str] = []
    in_docstring = False
    open_fstrings: list[tuple[int, int]] = []  # 3.12+: where each (nested) f-string starts
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == fstring_start:
            open_fstrings.append(tok.start)
        elif tok.type == fstring_end:
            start = open_fstrings.pop()
            if not open_fstrings:
                (l0, c0), (l1, c1) = start, tok.end
                text = "".join(lines[l0 - 1:l1])
                out.append(text[c0:len(text) - len(lines[l1 - 1]) + c1])
        elif open_fstrings or tok.type in skip:
            continue
        elif tok.type == tokenize.STRING and tok.start in docstrings:
            in_docstring = True  # the docstring and the NEWLINE ending its statement
        elif in_docstring and tok.type == tokenize.NEWLINE:
            in_docstring = False
        elif not in_docstring:
            out.append(tokenize.tok_name[tok.type] if tok.type in (tokenize.INDENT, tokenize.DEDENT) else tok.string)
    return "\n".join(out)


def module_file(name: str, package_dir: Path = PACKAGE_DIR) -> Path | None:
    """The file of the package's module ``name`` (dotted, relative to the package: ``io``,
    ``plan.registry``; ``__init__`` is the package's own ``__init__.py`` and a subpackage's
    name its ``__init__.py``), or None if there is no such module."""
    if name == "__init__":
        return package_dir / "__init__.py"
    path = package_dir.joinpath(*name.split("."))
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return path / "__init__.py" if (path / "__init__.py").is_file() else None


def _parents(name: str) -> set[str]:
    """The packages whose ``__init__`` importing module ``name`` runs: the package's own
    (``__init__``) and each enclosing subpackage's."""
    parts = name.split(".")
    return {"__init__"} | {".".join(parts[:k]) for k in range(1, len(parts))}


def _imported_modules(name: str, package_dir: Path) -> set[str]:
    """The package's modules that module ``name`` imports anywhere in its source (lazy imports
    in functions too), with the ``__init__`` of every package that importing them runs.

    ``from .x import y`` names module ``x`` relative to the importing module's package, and
    ``y`` too where ``y`` is a module (``from . import y``, ``from .sub import module``)."""
    path = module_file(name, package_dir)
    is_package = path.name == "__init__.py" and name != "__init__"
    # the package that relative imports start from: a subpackage's __init__ is its own package
    here = [] if name == "__init__" else (name.split(".") if is_package else name.split(".")[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0:
                if module.split(".")[0] != PACKAGE:
                    continue
                base = module.split(".")[1:]
            else:
                up = node.level - 1
                if up > len(here):
                    continue  # beyond the package
                base = here[: len(here) - up] + (module.split(".") if module else [])
            if base:
                found.add(".".join(base))
            # a name imported from a package may be a module of it
            found.update(".".join(base + [alias.name]) for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    found.add(".".join(parts[1:]))
    modules = {m for m in found if module_file(m, package_dir) is not None}
    return modules | {p for m in modules | {name} for p in _parents(m)}


def module_closure(part: str, package_dir: Path = PACKAGE_DIR) -> list[str]:
    """The package module ``part`` (dotted for a module of a subpackage) and every package module
    it imports, directly or not, with the ``__init__`` of each package on the way (sorted)."""
    if part == "__init__" or module_file(part, package_dir) is None:
        modules = sorted(
            ".".join(p.relative_to(package_dir).with_suffix("").parts)
            for p in package_dir.rglob("*.py") if p.name != "__init__.py"
        )
        raise ValueError(f"code part must be a module of {package_dir}, one of {modules}; got {part!r}")
    seen, todo = set(), [part]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(_imported_modules(name, package_dir) - seen)
    return sorted(seen)


@lru_cache(maxsize=None)
def _cached_normalized_source(path: Path, stamp: tuple[int, int]) -> str:
    """:func:`_normalized_source`, computed once per file version (``stamp``: its modification
    time and size) in a process: the closures of every part share it."""
    return _normalized_source(path)


@lru_cache(maxsize=None)
def code_fingerprint(part: str, package_dir: Path = PACKAGE_DIR) -> str:
    """Fingerprint of the code of ``part``: the module and every package module it imports
    (:func:`module_closure`), each as its normalized source, named by its path in the package."""
    digest = hashlib.sha256()
    for name in module_closure(part, package_dir):
        path = module_file(name, package_dir)
        stat = path.stat()
        label = path.relative_to(package_dir).as_posix()
        source = _cached_normalized_source(path, (stat.st_mtime_ns, stat.st_size))
        digest.update(label.encode() + b"\0" + source.encode() + b"\0")
    return digest.hexdigest()[:16]


@lru_cache(maxsize=None)
def code_commit(package_dir: Path = PACKAGE_DIR) -> str | None:
    """The git commit of the source tree (``+dirty`` if it has uncommitted changes), or None."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=package_dir, capture_output=True, text=True, timeout=10
        )
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "."], cwd=package_dir, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if status.stdout.strip() else "")


def check_code_fingerprint(expected: str, part: str) -> None:
    """Fail if the library imported here is not the code the caller (the workflow) planned with.

    Guards against a job running other code than the workflow's (a conda environment or a
    cluster node with another dmfcore installed).
    """
    actual = code_fingerprint(part)
    if actual != expected:
        raise StaleResultError(
            f"this job imports dmfcore from {PACKAGE_DIR} with code fingerprint {actual}, but the "
            f"workflow was planned with {expected}: the job's environment has another version of "
            "dmfcore installed (reinstall it, or run without --software-deployment-method conda)"
        )
