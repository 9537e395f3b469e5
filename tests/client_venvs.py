"""Vendor clients in venvs of their own, made once and cached between runs.

A client is installed from the package registry at an exact version, into a venv under the
cache dir (``REPOLENS_CLIENT_VENVS``, default ``~/.cache/repolens-test-clients``) built with
the Python the client needs. A client that cannot be set up fails the test that asked for it:
a skipped client test would hide the very break it exists to catch.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

INSTALL_TIMEOUT_S = 600  # a cold pip install on a loaded 2-core runner
CACHE_ENV = "REPOLENS_CLIENT_VENVS"


def cache_dir() -> Path:
    """Where client venvs are kept."""
    raw = os.environ.get(CACHE_ENV, "")
    return Path(raw).expanduser() if raw else Path.home() / ".cache" / "repolens-test-clients"


def python_for(version: str) -> str:
    """An interpreter of ``version`` (e.g. "3.12") that runs: this one, one of pyenv's, or one on
    PATH (a pyenv shim on PATH may name a version that is not selected, so each is tried)."""
    candidates = [sys.executable] if f"{sys.version_info.major}.{sys.version_info.minor}" == version else []
    candidates += sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / f"{version}.*" / "bin" / "python3")))[::-1]
    candidates += [p for p in [shutil.which(f"python{version}")] if p]
    for candidate in candidates:
        if subprocess.run([candidate, "-c", "pass"], capture_output=True, timeout=60).returncode == 0:
            return candidate
    pytest.fail(f"no Python {version} to install the client with (install it, e.g. with pyenv)")


def client_venv(requirement: str, *, python: str, probe: str) -> Path:
    """The venv holding ``requirement`` (``name==version``); ``probe`` is a module it must import.

    Made under a file lock, so parallel test processes build it once; a venv whose probe fails
    (a half-finished install) is made again.
    """
    name = requirement.replace("==", "-").replace("[", "_").replace("]", "")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"{name}-py{python}"
    interpreter = venv / "bin" / "python"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if interpreter.exists() and _imports(interpreter, probe):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        steps = [
            [python_for(python), "-m", "venv", str(venv)],
            [str(interpreter), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                pytest.fail(f"could not set up {requirement}: {' '.join(step[:3])}...\n{done.stdout}\n{done.stderr}")
        if not _imports(interpreter, probe):
            pytest.fail(f"{requirement} installed but {probe!r} does not import")
    return venv


def _imports(interpreter: Path, module: str) -> bool:
    done = subprocess.run([str(interpreter), "-c", f"import {module}"], capture_output=True, timeout=60)
    return done.returncode == 0
