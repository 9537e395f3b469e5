"""Shared fixtures: a data dir per test, real git repositories in temp dirs, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

# pytest rewrites the modules of every package that ships a pytest plugin, anyio included, and
# CPython 3.11.7 can fail to compile such a rewrite when the import happens deep inside an event
# loop ("AST constructor recursion depth mismatch"). The MCP stdio client imports this one lazily.
import anyio._core._subprocesses  # noqa: F401
import pytest

from pgcluster import PgCluster
from repolens.services import Services, build_services
from repolens.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` with a fixed identity; return stdout."""
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> None:
    """Create files (parents included) under ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def commit_tree(root: Path, files: Mapping[str, str | bytes], *, message: str = "initial") -> Path:
    """A new git repository at ``root`` with ``files`` committed on ``main``."""
    root.mkdir(parents=True, exist_ok=True)
    write_tree(root, files)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return root


# The small Python project the server, MCP and chat tests index as ``geo``: a class hierarchy, a
# module-level function and a caller in another file (calls and inheritance to follow).
GEO_CODE: dict[str, str | bytes] = {
    "geo/shapes.py": (
        '"""Shapes and their areas."""\n\n\n'
        "class Shape:\n"
        '    """Base of every shape."""\n\n'
        "    def area(self) -> float:\n"
        "        return 0.0\n\n\n"
        "class Circle(Shape):\n"
        '    """A circle of a given radius."""\n\n'
        "    def __init__(self, radius: float) -> None:\n"
        "        self.radius = radius\n\n"
        "    def area(self) -> float:\n"
        "        return 3.14159 * self.radius ** 2\n\n\n"
        "def total_area(shapes: list[Shape]) -> float:\n"
        '    """Sum the areas of many shapes."""\n'
        "    return sum(s.area() for s in shapes)\n"
    ),
    "geo/report.py": (
        "from geo.shapes import Circle, total_area\n\n\n"
        "def report() -> str:\n"
        '    """Print a report of the total area of unit circles."""\n'
        "    return str(total_area([Circle(1.0), Circle(2.0)]))\n"
    ),
}

MakeRepo = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Create a git repository with the given files committed."""

    def make(files: dict[str, str | bytes], *, name: str = "repo", commit: bool = True) -> Path:
        root = tmp_path / name
        if commit:
            return commit_tree(root, files)
        root.mkdir(parents=True, exist_ok=True)
        write_tree(root, files)
        return root

    return make


BACKENDS = ("sqlite", "postgres")
DATABASE_URL = "REPOLENS_DATABASE_URL"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``backends`` run once per storage backend: with a module-wide server
    (``module_backend``) or a fresh database per test (``backend``)."""
    if metafunc.definition.get_closest_marker("backends") is None:
        return
    if "module_backend" in metafunc.fixturenames:
        metafunc.parametrize("module_backend", BACKENDS, indirect=True, scope="module")
    else:
        metafunc.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """The session's PostgreSQL + pgvector server (started on first use)."""
    cluster = PgCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=True)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The database URL of this test: '' (SQLite in the data dir) or a fresh PostgreSQL database,
    also exported as REPOLENS_DATABASE_URL for the servers and CLI runs the test starts."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return os.environ.get(DATABASE_URL, "")
    url = request.getfixturevalue("pg_cluster").new_database()
    monkeypatch.setenv(DATABASE_URL, url)
    return url


@pytest.fixture(scope="module")
def module_backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """``backend`` for a whole module (for module-wide servers)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield os.environ.get(DATABASE_URL, "")
        return
    url = request.getfixturevalue("pg_cluster").new_database()
    before = os.environ.get(DATABASE_URL)
    os.environ[DATABASE_URL] = url
    try:
        yield url
    finally:
        if before is None:
            os.environ.pop(DATABASE_URL, None)
        else:
            os.environ[DATABASE_URL] = before


@pytest.fixture
def settings(tmp_path: Path, backend: str) -> Settings:
    """Settings on a fresh data dir (and database), with the deterministic hash embedder."""
    return Settings(home=tmp_path / "home", embedder="hash", database_url=backend)


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    """Services over the fresh data dir."""
    svc = build_services(settings)
    yield svc
    svc.close()


@pytest.fixture
def run_cli(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the real ``repolens`` console script in a subprocess with its own data dir."""
    home = tmp_path / "cli-home"

    def run(
        *args: str, env: dict[str, str] | None = None, check: bool = False, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, "REPOLENS_HOME": str(home), "REPOLENS_EMBEDDER": "hash", **(env or {})}
        exe = Path(sys.executable).with_name("repolens")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "repolens"]
        result = subprocess.run([*cmd, *args], env=full_env, capture_output=True, text=True, timeout=300, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"repolens {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    return run
