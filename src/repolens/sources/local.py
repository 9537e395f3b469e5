"""Walk a directory on disk: ignore rules, vendored folders, size limits, symlinks.

The walk only looks at names and sizes; the indexer reads content later (through the same
tree), so that it can skip decoding files whose hash it already knows.

Everything is read through a ``SourceTree``: a directory opened once, whose sub-folders and files
are opened relative to it, one component at a time, never following a symlink. A folder that is
swapped for a symlink at any moment (before the walk, or between the walk and the read) then fails
to open instead of leading the indexer out of the tree, so nothing outside a source's folder (or
outside the allowed roots it was registered under) can be indexed by a race.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pathspec

from repolens.domain import Skipped
from repolens.errors import InvalidInput, NotFound, SourceError, UnsafeSource
from repolens.sources.filters import VENDORED_DIRS, skip_by_name

IGNORE_FILES = (".gitignore", ".repolensignore")
MAX_IGNORE_FILE_BYTES = 1_000_000  # 1 MB: an ignore file larger than this is not a list of patterns
# A repository's ignore files are its author's input, and pathspec's pure-Python backend turns
# ``a*a*a*a*a*a*a*a*a*a*a*a*b`` into a regex that backtracks for hours on one long file name.
# RE2 (a core dependency for grep) matches in linear time; naming it makes a missing install
# an import error instead of a silent fallback to the backtracking backend.
IGNORE_BACKEND = "re2"
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _CLOEXEC
# O_NONBLOCK: a FIFO swapped in for a file must not block the indexer on open (no effect on
# regular files); O_NOCTTY: a terminal device never becomes our controlling terminal.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | _CLOEXEC


class SourceTree:
    """A directory opened once; every file under it is opened beneath its descriptor.

    Use as a context manager (or call ``close``). ``path`` is where the tree was opened, for
    messages only: after a swap it may name something else, and nothing is read through it.
    """

    def __init__(self, fd: int, path: Path) -> None:
        self._fd = fd
        self.path = path

    @classmethod
    def open_exact(cls, path: Path) -> SourceTree:
        """Open the directory at the absolute ``path`` with no symlink in any of its components.

        A data source's stored location is a real path (resolved when it was registered), so a
        symlink anywhere along it means the folder, or one of its parents, was swapped since:
        ``UnsafeSource`` says which one. A missing folder is ``NotFound``.
        """
        if not path.is_absolute():
            raise InvalidInput(f"a source folder must be an absolute path, got {str(path)!r}")
        fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC)
        walked = Path("/")
        try:
            for part in path.parts[1:]:
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise _refusal(fd, walked / part, part, path, exc) from None
                os.close(fd)
                fd, walked = child, walked / part
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path)

    @classmethod
    def open_trusted(cls, path: Path) -> SourceTree:
        """Open a directory this install made itself (a clone under REPOLENS_HOME), following
        symlinks on the way to it: the operator may keep the data dir behind one."""
        try:
            return cls(os.open(path, os.O_RDONLY | os.O_DIRECTORY | _CLOEXEC), path)
        except OSError as exc:
            raise SourceError(f"cannot open {str(path)!r}: {exc.strerror or exc}") from None

    def close(self) -> None:
        """Release the descriptor (idempotent)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SourceTree:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    @property
    def fd(self) -> int:
        """The root's descriptor (valid until ``close``)."""
        return self._fd

    def open_file(self, rel: str, *, dir_fd: int | None = None) -> int:
        """A descriptor of the file at ``rel`` ('/'-separated, relative to the root or to
        ``dir_fd``), opened one component at a time without following symlinks."""
        parts = rel.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise OSError(errno.EINVAL, f"not a plain relative path: {rel!r}")
        base = self._fd if dir_fd is None else dir_fd
        current, owned = base, False
        try:
            for part in parts[:-1]:
                child = os.open(part, _DIR_FLAGS, dir_fd=current)
                if owned:
                    os.close(current)
                current, owned = child, True
            return os.open(parts[-1], _FILE_FLAGS, dir_fd=current)
        finally:
            if owned:
                os.close(current)

    def read_bytes(self, rel: str, *, limit: int, dir_fd: int | None = None) -> bytes:
        """At most ``limit + 1`` bytes of the regular file at ``rel`` (so a caller sees a file
        that grew past ``limit``). ``OSError`` when it is not a regular file any more (a symlink,
        a folder or a FIFO swapped in) or cannot be read."""
        fd = self.open_file(rel, dir_fd=dir_fd)
        with open(fd, "rb", closefd=True) as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file")
            return handle.read(limit + 1)


def _refusal(parent_fd: int, where: Path, part: str, wanted: Path, exc: OSError) -> Exception:
    """The error for a component of a source's folder that would not open as a plain directory."""
    try:
        target = os.readlink(part, dir_fd=parent_fd)
    except OSError:
        target = None
    if target is not None:
        # The target is not named: it may lie outside every allowed root, and the reason is shown
        # to API callers who may not learn paths there.
        return UnsafeSource(
            f"{str(where)!r} is now a symlink; a data source's folder is read only where it was "
            "registered, never through a symlink: re-add the source if it moved"
        )
    if exc.errno == errno.ENOENT:
        return NotFound(f"no such directory: {str(wanted)!r}")
    if exc.errno == errno.ENOTDIR:
        return InvalidInput(f"not a directory: {str(where)!r}")
    return SourceError(f"cannot open {str(where)!r}: {exc.strerror or exc}")


@dataclass(frozen=True, slots=True)
class Candidate:
    """A file the walk found acceptable by name and size; its content is still unread."""

    path: str  # repository-relative, '/'-separated
    size: int


@dataclass(slots=True)
class _Rules:
    base: str  # repository-relative directory the patterns are relative to ('' for root)
    spec: pathspec.GitIgnoreSpec


def _read_rules(tree: SourceTree, rel: str, dir_fd: int) -> pathspec.GitIgnoreSpec | None:
    try:
        data = tree.read_bytes(rel, limit=MAX_IGNORE_FILE_BYTES, dir_fd=dir_fd)
    except OSError:
        return None  # absent, a symlink, or unreadable: no rules from it
    lines = data.decode("utf-8", errors="replace").splitlines()
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines, backend=IGNORE_BACKEND)
    except ValueError:  # pathspec raises a ValueError subclass for a pattern it cannot parse
        # git skips a pattern it cannot parse (a lone trailing backslash, say) and keeps the rest;
        # so do we, rather than failing the whole walk on one bad line.
        return pathspec.GitIgnoreSpec.from_lines([line for line in lines if _valid_pattern(line)], backend=IGNORE_BACKEND)


def _valid_pattern(line: str) -> bool:
    try:
        pathspec.GitIgnoreSpec.from_lines([line], backend=IGNORE_BACKEND)
    except ValueError:  # pathspec raises a ValueError subclass for a pattern it cannot parse
        return False
    return True


def _load_rules(tree: SourceTree, dir_fd: int, rel_dir: str) -> list[_Rules]:
    rules: list[_Rules] = []
    for name in IGNORE_FILES:
        spec = _read_rules(tree, name, dir_fd)
        if spec is not None:
            rules.append(_Rules(rel_dir, spec))
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


def walk(root: Path | SourceTree, *, max_file_bytes: int) -> Iterator[Candidate | Skipped]:
    """Yield every file under ``root`` as a ``Candidate`` or a ``Skipped`` with its reason.

    Vendored and ignored directories are pruned without being entered, and reported once.
    Symlinks are never followed: one that points outside ``root`` is reported as such. A
    ``Path`` is resolved and opened for the length of the walk.
    """
    if isinstance(root, SourceTree):
        yield from _walk_tree(root, max_file_bytes)
        return
    with SourceTree.open_exact(root.resolve()) as tree:
        yield from _walk_tree(tree, max_file_bytes)


def _walk_tree(tree: SourceTree, max_file_bytes: int) -> Iterator[Candidate | Skipped]:
    base_rules = _load_rules(tree, tree.fd, "")
    exclude = _read_rules(tree, ".git/info/exclude", tree.fd)
    if exclude is not None:
        base_rules.insert(0, _Rules("", exclude))
    yield from _walk_dir(tree, tree.fd, "", base_rules, max_file_bytes)


def _walk_dir(
    tree: SourceTree, dir_fd: int, rel_dir: str, rules: list[_Rules], max_file_bytes: int
) -> Iterator[Candidate | Skipped]:
    try:
        with os.scandir(dir_fd) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except OSError as exc:
        yield Skipped(rel_dir or ".", "unreadable", str(exc.strerror or exc))
        return
    for entry in entries:
        rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
        if entry.is_symlink():
            yield _symlink_skip(tree.path, rel)
            continue
        if entry.is_dir(follow_symlinks=False):
            if entry.name in VENDORED_DIRS:
                if entry.name != ".git":
                    yield Skipped(rel + "/", "vendored", "dependency, build or cache directory")
                continue
            if _ignored(rel, True, rules):
                yield Skipped(rel + "/", "ignored", "matched an ignore rule")
                continue
            try:
                sub_fd = os.open(entry.name, _DIR_FLAGS, dir_fd=dir_fd)
            except OSError as exc:  # swapped for a symlink (ELOOP) or removed since the listing
                yield Skipped(rel + "/", "unreadable", str(exc.strerror or exc))
                continue
            try:
                if _exists("pyvenv.cfg", sub_fd):
                    # A virtualenv under any name (.venv2, env, py311): installed packages, not code.
                    yield Skipped(rel + "/", "vendored", "Python virtual environment")
                    continue
                sub_rules = rules + _load_rules(tree, sub_fd, rel)
                yield from _walk_dir(tree, sub_fd, rel, sub_rules, max_file_bytes)
            finally:
                os.close(sub_fd)
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
        yield Candidate(rel, size)


def _exists(name: str, dir_fd: int) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _symlink_skip(root: Path, rel: str) -> Skipped:
    # Only the reason is computed from the path: the link is never followed to read anything.
    try:
        target = (root / rel).resolve()
    except (OSError, RuntimeError):
        return Skipped(rel, "symlink_outside", "broken or looping symlink")
    if target != root and root not in target.parents:
        return Skipped(rel, "symlink_outside", "symlink points outside the repository")
    return Skipped(rel, "ignored", "symlink (its target is indexed at its own path)")
