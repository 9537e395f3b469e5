"""The layering holds: import-linter's contracts in pyproject.toml are kept."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_imports_point_down_the_layers_and_dialects_stay_apart() -> None:
    """`lint-imports` keeps every contract: surfaces > application > engine > infrastructure > vocabulary."""
    exe = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(exe)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "BROKEN" not in result.stdout and "KEPT" in result.stdout
