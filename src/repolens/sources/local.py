"""Walk a directory on disk: ignore rules, vendored folders, size limits, symlinks.

The walk only looks at names and sizes; reading and classifying content happens in
``read_candidate`` so that the indexer can skip decoding files whose hash it already knows.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pathspec

from repolens.domain import Skipped
from repolens.sources.filters import VENDORED_DIRS, skip_by_name

IGNORE_FILES = (".gitignore", ".repolensignore")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file the walk found acceptable by name and size; its content is still unread."""

    path: str  # repository-relative, '/'-separated
    abs_path: str
    size: int


@dataclass(slots=True)
class _Rules:
    base: str  # repository-relative directory the patterns are relative to ('' for root)
    spec: pathspec.GitIgnoreSpec


def _load_rules(directory: Path, rel_dir: str) -> list[_Rules]:
    rules: list[_Rules] = []
    for name in IGNORE_FILES:
        ignore_file = directory / name
        if ignore_file.is_file() and not ignore_file.is_symlink():
            try:
                lines = ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            rules.append(_Rules(rel_dir, pathspec.GitIgnoreSpec.from_lines(lines)))
    return rules


def _ignored(rel_path: str, is_dir: bool, rules: list[_Rules]) -> bool:
    # Later (deeper) rule files override earlier ones, as in git: the last match decides.
    verdict = False
    for rule in rules:
        if rule.base:
            if not rel_path.startswith(rule.base + "/"):
                continue
            sub = rel_path[len(rule.base) + 1 :]
        else:
            sub = rel_path
        check = sub + "/" if is_dir else sub
        result = rule.spec.check_file(check)
        if result.include is not None:
            verdict = bool(result.include)
    return verdict


def walk(root: Path, *, max_file_bytes: int) -> Iterator[Candidate | Skipped]:
    """Yield every file under ``root`` as a ``Candidate`` or a ``Skipped`` with its reason.

    Vendored and ignored directories are pruned without being entered, and reported once.
    Symlinks are never followed: one that points outside ``root`` is reported as such.
    """
    root = root.resolve()
    base_rules = _load_rules(root, "")
    exclude = root / ".git" / "info" / "exclude"
    if exclude.is_file():
        lines = exclude.read_text(encoding="utf-8", errors="replace").splitlines()
        base_rules.insert(0, _Rules("", pathspec.GitIgnoreSpec.from_lines(lines)))
    yield from _walk_dir(root, "", base_rules, root, max_file_bytes)


def _walk_dir(
    directory: Path, rel_dir: str, rules: list[_Rules], root: Path, max_file_bytes: int
) -> Iterator[Candidate | Skipped]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        yield Skipped(rel_dir or ".", "unreadable", str(exc.strerror or exc))
        return
    for entry in entries:
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        if entry.is_symlink():
            yield _symlink_skip(entry, rel, root)
            continue
        if entry.is_dir(follow_symlinks=False):
            if entry.name in VENDORED_DIRS:
                if entry.name != ".git":
                    yield Skipped(rel + "/", "vendored", "dependency, build or cache directory")
                continue
            if _ignored(rel, True, rules):
                yield Skipped(rel + "/", "ignored", "matched an ignore rule")
                continue
            if os.path.exists(os.path.join(entry.path, "pyvenv.cfg")):
                # A virtualenv under any name (.venv2, env, py311): installed packages, not code.
                yield Skipped(rel + "/", "vendored", "Python virtual environment")
                continue
            sub_rules = rules + _load_rules(Path(entry.path), rel)
            yield from _walk_dir(Path(entry.path), rel, sub_rules, root, max_file_bytes)
            continue
        if not entry.is_file(follow_symlinks=False):
            continue  # sockets, fifos, devices
        if _ignored(rel, False, rules):
            yield Skipped(rel, "ignored", "matched an ignore rule")
            continue
        by_name = skip_by_name(rel)
        if by_name is not None:
            yield Skipped(rel, by_name[0], by_name[1])
            continue
        try:
            size = entry.stat(follow_symlinks=False).st_size
        except OSError as exc:
            yield Skipped(rel, "unreadable", str(exc.strerror or exc))
            continue
        if size > max_file_bytes:
            yield Skipped(rel, "too_large", f"{size:,} bytes > limit {max_file_bytes:,}")
            continue
        yield Candidate(rel, entry.path, size)


def _symlink_skip(entry: os.DirEntry[str], rel: str, root: Path) -> Skipped:
    try:
        target = Path(entry.path).resolve()
    except (OSError, RuntimeError):
        return Skipped(rel, "symlink_outside", "broken or looping symlink")
    if target != root and root not in target.parents:
        return Skipped(rel, "symlink_outside", "symlink points outside the repository")
    return Skipped(rel, "ignored", "symlink (its target is indexed at its own path)")
