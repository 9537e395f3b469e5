"""The code's form is checked like its behaviour: `ruff format`, `ruff check` and `mypy --strict`.

Run as tests so that a clean clone's `pytest` is the single gate; the tool versions are pinned in the
`test` extra, because a newer formatter or checker may judge the same code differently.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHECKED = ["src", "tests", "bench", ".ci"]


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_code_is_formatted_by_ruff_format() -> None:
    result = _run("ruff", "format", "--check", *CHECKED)
    assert result.returncode == 0, f"run `ruff format {' '.join(CHECKED)}`:\n{result.stdout}{result.stderr}"


def test_ruff_lint_passes() -> None:
    result = _run("ruff", "check", *CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes() -> None:
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
