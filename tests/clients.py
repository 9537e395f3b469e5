"""Vendor clients in venvs of their own, built by the test suite once and cached.

A vendor's published client (CodeMie's SDK and MCP servers, codeer-cli, ...) is installed from
the package registry into its own virtual environment, with the interpreter it declares, so its
dependencies never meet ours and what runs is exactly what its users run. The venv is cached
under ``~/.cache/repolens-test-clients`` (``REPOLENS_TEST_CLIENTS`` moves it) keyed by the
interpreter and the pinned requirements, so a test run builds it once and later runs reuse it.

A client that cannot be set up fails the test that needs it; it is never skipped.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

CACHE_ENV = "REPOLENS_TEST_CLIENTS"
PYENV_VERSIONS = Path(os.environ.get("PYENV_ROOT", "/root/.pyenv")) / "versions"
INSTALL_TIMEOUT_S = 900  # a cold install of an SDK and its dependencies over a slow registry


def cache_dir() -> Path:
    """Where the client venvs live."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "repolens-test-clients")


def interpreter(minor: str = "3.12") -> tuple[Path, bool]:
    """A Python ``minor`` interpreter from pyenv (or PATH), else 3.11 with the client's
    ``requires-python`` ignored (second value True); failing the test when there is neither."""
    for version in (minor, "3.11"):
        candidates = sorted(PYENV_VERSIONS.glob(f"{version}.*/bin/python{version}"), reverse=True)
        found = shutil.which(f"python{version}")
        if found:
            candidates.append(Path(found))
        for exe in candidates:
            if exe.is_file():
                return exe, version != minor
    pytest.fail(f"no Python {minor} (nor 3.11) interpreter for the vendor clients: install one with pyenv")


def client_venv(name: str, requirements: Sequence[str], *, python: str = "3.12") -> Path:
    """The ``bin`` directory of a venv holding ``requirements`` (exact pins), built on first
    use. Concurrent test processes wait for one another on a lock file."""
    exe, ignore_requires = interpreter(python)
    key = hashlib.sha256("\n".join([str(exe), *sorted(requirements)]).encode()).hexdigest()[:12]
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"{name}-{key}"
    with (root / f"{name}-{key}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target / "bin"
        # Built in place and marked complete last: a build cut short is redone, never used.
        shutil.rmtree(target, ignore_errors=True)
        _run([str(exe), "-m", "venv", str(target)], f"create the {name} venv")
        pip = [str(target / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        if ignore_requires:
            pip.append("--ignore-requires-python")
        _run([*pip, *requirements], f"install {' '.join(requirements)}")
        (target / ".complete").write_text("\n".join(requirements) + "\n")
    return target / "bin"


def _run(cmd: list[str], what: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env)
    if result.returncode != 0:
        pytest.fail(f"could not {what} ({result.returncode}):\n{result.stderr[-4000:]}", pytrace=False)


def run_python(bin_dir: Path, code: str, *, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Run ``code`` with the venv's interpreter; its stdout, or the test fails with stderr."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    full_env.update(env or {})
    result = subprocess.run(
        [str(bin_dir / "python"), "-c", code], capture_output=True, text=True, timeout=timeout, env=full_env
    )
    if result.returncode != 0:
        pytest.fail(f"client script failed ({result.returncode}):\n{result.stderr[-6000:]}", pytrace=False)
    return result.stdout


__all__ = ["client_venv", "interpreter", "run_python"]
