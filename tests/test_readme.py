"""The README's examples run as written against what the README told the reader to index.

Every ``sh``/``bash`` block of README.md is cut into commands (backslash continuations joined)
and run in order with bash, in a checkout of this repository that the quick start indexed, with
a real ``repolens serve`` on 127.0.0.1 for the curl examples. ``python`` blocks run too. A
command is skipped only for a reason in ``SKIPS`` (it installs, needs the network or PostgreSQL,
is another program, or names a placeholder the README says to fill in); everything else must
exit 0, and curl must get a 2xx (``--fail-with-body`` is added). The quick start's install line
itself is walked by ``.ci/smoke.py`` from a plain install.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from conftest import git
from server import start_server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_PORT = "127.0.0.1:8000"  # what the README's examples call; the test server's port replaces it
COMMAND_TIMEOUT_S = 120
MIN_COMMANDS_RUN = 30  # the skip rules must not quietly swallow the README

# (pattern, reason): a command matching the pattern is not run, for that reason.
SKIPS: tuple[tuple[str, str], ...] = (
    (r"pip install|-m venv", "installs (.ci/smoke.py runs the quick start from a plain install)"),
    (r"\bpytest\b", "the test suite itself"),
    (r"https?://(?!127\.0\.0\.1)[\w.-]+", "needs the network"),
    (r"REPOLENS_DATABASE_URL|postgresql://|repolens (migrate-data|worker)\b", "needs PostgreSQL (tests/test_scaleout.py)"),
    (r"^(claude|codex)\b", "another program"),
    (r"^export REPOLENS_LLM|REPOLENS_LLM_\w+=", "configures a remote model"),
    (r"^(REPOLENS_\w+=\S+ )*repolens (serve|mcp)\b", "a long-running server (the test runs its own)"),
    (r"<[a-z][a-z ]*>", "a placeholder the README says to fill in"),
)


@dataclass(frozen=True)
class Example:
    """One command (or python block) of the README, with the line it starts on."""

    language: str
    line: int
    text: str


def examples() -> list[Example]:
    """Every command of every sh/bash block and every python block, in README order."""
    out: list[Example] = []
    lines = README.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        fence = re.fullmatch(r"```(\w+)", lines[i].strip())
        if not fence:
            i += 1
            continue
        language, start, body = fence.group(1), i + 2, []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        i += 1
        if language == "python":
            out.append(Example(language, start, "\n".join(body)))
        elif language in ("sh", "bash"):
            out.extend(_commands(body, start))
    return out


def _commands(body: list[str], first_line: int) -> list[Example]:
    commands: list[Example] = []
    pending, pending_line = "", first_line
    for offset, raw in enumerate(body):
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if not pending:
            pending_line = first_line + offset
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        commands.append(Example("sh", pending_line, (pending + line).strip()))
        pending = ""
    return commands


def skip_reason(command: str) -> str | None:
    for pattern, reason in SKIPS:
        if re.search(pattern, command):
            return reason
    return None


def python_skip_reason(block: str) -> str | None:
    """A python block that starts by saying it needs an install (another vendor's client, tested
    in its own venv by its own test) is not run here."""
    first = block.strip().split("\n", 1)[0]
    return "needs another package (its own test runs it in a venv)" if first.startswith("# pip install") else None


def checkout_named_repolens(tmp: Path) -> Path:
    """This repository's tracked text files in a folder called ``repolens`` with no remote, as a
    reader's checkout is when the README's examples call it ``repolens``."""
    target = tmp / "repolens"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in tracked:
        if rel.endswith((".onnx", ".whl")):
            continue  # the test indexes with the hash embedder: model weights are not needed
        dest = target / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dest)
    git(target, "init", "-q", "-b", "main")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "checkout")
    return target


def test_every_readme_example_runs_as_written(tmp_path: Path) -> None:
    """Each shell, curl and python example of the README succeeds against the quick start's index."""
    checkout = checkout_named_repolens(tmp_path)
    home = tmp_path / "home"
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "REPOLENS_HOME": str(home),
        "REPOLENS_EMBEDDER": "hash",
        "REPOLENS_ALLOWED_ROOTS": str(tmp_path),
    }
    for key in ("REPOLENS_LLM_PROVIDER", "REPOLENS_LLM_BASE_URL", "REPOLENS_DATABASE_URL"):
        env.pop(key, None)
    up = subprocess.run(["repolens", "up"], cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
    assert up.returncode == 0, up.stderr[-3000:]

    server = start_server(home, env={**env, "REPOLENS_EMBEDDER": "hash"})
    try:
        env["REPOLENS_KEY"] = server.admin_key
        port = server.url.rsplit(":", 1)[1]
        ran, failures, skipped = 0, [], []
        assignments: list[str] = []
        for example in examples():
            text = example.text.replace(README_PORT, f"127.0.0.1:{port}")
            reason = skip_reason(text) if example.language == "sh" else python_skip_reason(text)
            if reason:
                skipped.append(f"README:{example.line} ({reason})")
                continue
            if example.language == "python":
                result = subprocess.run(
                    [sys.executable, "-c", f"KEY = {server.admin_key!r}\n{text}"],
                    cwd=checkout,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=COMMAND_TIMEOUT_S,
                )
            else:
                # curl fails on a 4xx/5xx; variables an earlier command set keep their values (the
                # command itself is not run again), read back with `declare -p` after it ran
                names = re.findall(r"(?:^|;\s*)([A-Za-z_]\w*)=", text)
                declared = tmp_path / "declared.sh"
                declared.write_text("")
                script = "\n".join(
                    [
                        "set -o pipefail",
                        'curl() { command curl --fail-with-body "$@"; }',
                        *assignments,
                        text,
                        *([f"declare -p {' '.join(names)} > {declared}"] if names else []),
                    ]
                )
                result = subprocess.run(
                    ["bash", "-c", script], cwd=checkout, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
                )
                assignments.extend(line for line in declared.read_text().splitlines() if line.startswith("declare "))
            ran += 1
            if result.returncode != 0:
                failures.append(
                    f"README:{example.line}: {text}\n  exit {result.returncode}: "
                    f"{(result.stdout + result.stderr).strip()[-600:]}"
                )
        assert not failures, f"{len(failures)} README examples failed:\n" + "\n".join(failures)
        assert ran >= MIN_COMMANDS_RUN, f"only {ran} examples ran; skipped: {skipped}"
    finally:
        server.stop()
