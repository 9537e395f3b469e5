"""A plain ``pip install .`` carries every import a plain install can reach.

The test suite installs ``.[test]``, which once brought ``httpx`` along and hid a server that
could not start after a plain install. This reads every import in ``src/repolens`` and checks
that its distribution is a core dependency (or one of theirs), unless it is one of the optional
extras below, imported only behind a guard that names the extra to install. ``.ci/smoke.py``
proves the same from the other side, by running the product from a plain install.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "repolens"

# Imports that belong to an extra: the module that imports them, and the file holding the guard
# that turns a missing package into "pip install 'repolens[extra]'".
OPTIONAL_IMPORTS = {
    "psycopg": ("postgres", "storage/factory.py"),
    "pgvector": ("postgres", "storage/factory.py"),
    "snowballstemmer": ("postgres", "storage/factory.py"),
    "sentence_transformers": ("sentence-transformers", "embeddings/sentence.py"),
}


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def core_closure() -> set[str]:
    """The distributions a plain install brings: core dependencies and theirs, without extras."""
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    todo = [_name(Requirement(r).name) for r in declared]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            # Only what this interpreter installs with no extras: markers evaluated, extras off.
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(requirement.name))
    return seen


def third_party_imports() -> dict[str, set[str]]:
    """Top-level third-party module name -> the source files importing it."""
    found: dict[str, set[str]] = {}
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "repolens" and top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, set()).add(str(path.relative_to(SRC)))
    return found


def test_every_import_reached_by_a_plain_install_is_a_core_dependency() -> None:
    """No module imports a package that only an extra (or the test extra) installs."""
    closure = core_closure()
    distributions = metadata.packages_distributions()
    missing: list[str] = []
    for module, files in sorted(third_party_imports().items()):
        if module in OPTIONAL_IMPORTS:
            continue
        owners = {_name(d) for d in distributions.get(module, [])}
        if not owners & closure:
            missing.append(f"{module} (from {', '.join(sorted(files))}; installed by {sorted(owners) or 'nothing'})")
    assert not missing, "imports a plain install does not carry: " + "; ".join(missing)


def test_optional_extras_are_imported_behind_a_guard_that_names_the_extra() -> None:
    """A missing extra is a message saying what to install, not a ModuleNotFoundError."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, (extra, guard) in OPTIONAL_IMPORTS.items():
        assert extra in extras, f"{module}: no extra {extra!r} in pyproject.toml"
        assert f"repolens[{extra}]" in (SRC / guard).read_text(), f"{guard} does not name repolens[{extra}]"
