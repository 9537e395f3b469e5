"""Schema migrations (Alembic, storage/migrations) on both backends: new databases, databases
made before migrations existed, concurrent first starts, a schema from a newer release, and the
way back down."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conftest import MakeRepo
from repolens.access.keys import create_key, plan_for
from repolens.errors import StorageError
from repolens.indexing.pipeline import index_source
from repolens.services import build_services
from repolens.settings import Settings
from repolens.storage import migrations
from repolens.storage.factory import open_store
from repolens.storage.relational import SqlIndexStore
from repolens.storage.sqlite.store import connect as sqlite_connect

REPO = {"pkg/alpha.py": "def alpha_handler():\n    '''Alpha doc.'''\n    return 'alpha'\n"}


@dataclass
class Target:
    """An empty database of one backend and the ways in that a test needs."""

    settings: Settings
    dialect: migrations.Dialect
    connect: Callable[[], Any]

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Run one statement outside the store (committed); its rows."""
        conn = self.connect()
        try:
            if self.dialect == "postgresql":
                conn.autocommit = True
            cursor = conn.execute(statement)
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            conn.close()

    def tables(self) -> set[str]:
        if self.dialect == "sqlite":
            rows = self.sql(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '%fts_%' AND name NOT LIKE 'sqlite_%'"
            )
        else:
            rows = self.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r[0] for r in rows}

    def open(self) -> SqlIndexStore:
        store = open_store(self.settings)
        assert isinstance(store, SqlIndexStore)
        return store


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    home = tmp_path / "home"
    if request.param == "sqlite":
        settings = Settings(home=home, embedder="hash")
        yield Target(settings, "sqlite", lambda: sqlite_connect(settings.db_path))
        return
    url = request.getfixturevalue("pg_cluster").new_database(empty=True)
    yield Target(Settings(home=home, embedder="hash", database_url=url), "postgresql", lambda: psycopg.connect(url))


def _migrate_cli(target: Target) -> subprocess.Popen[str]:
    env = {
        "REPOLENS_HOME": str(target.settings.home),
        "REPOLENS_DATABASE_URL": target.settings.database_url,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "repolens", "migrate"], env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def test_head_is_the_newest_revision() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(str(migrations.SCRIPT_LOCATION))
    assert scripts.get_heads() == [migrations.HEAD]  # one line of history, and HEAD names its tip


def test_concurrent_first_starts_migrate_a_new_database_once(target: Target) -> None:
    runs = [_migrate_cli(target) for _ in range(4)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, outputs
    said = [out for out, _ in outputs]
    assert sum(f"upgraded from nothing to revision {migrations.HEAD}" in s for s in said) == 1, said
    assert sum(f"already at revision {migrations.HEAD}" in s for s in said) == 3, said
    assert target.sql(f"SELECT version_num FROM {migrations.VERSION_TABLE}") == [(migrations.HEAD,)]

    store = target.open()  # and an ordinary open does nothing more
    assert store.schema_migration is None
    store.close()


def test_a_database_from_before_migrations_is_adopted_with_its_data(target: Target, make_repo: MakeRepo) -> None:
    services = build_services(target.settings)
    source, _ = index_source(services.store, target.settings, str(make_repo(REPO)))
    services.close()
    # What a release before migrations left: the same tables, no alembic_version.
    target.sql(f"DROP TABLE {migrations.VERSION_TABLE}")
    if target.dialect == "sqlite":
        target.sql("INSERT INTO meta VALUES ('schema_version', '6')")

    services = build_services(target.settings)
    try:
        store = services.store
        assert isinstance(store, SqlIndexStore) and store.schema_migration == migrations.Migration(None, migrations.HEAD)
        kept = store.get_source(source.name)
        assert kept is not None and kept.state == "Ready" and kept.public_id == source.public_id
        assert services.searcher.search("alpha_handler").hits[0].artifact.qualified_name == "alpha_handler"
    finally:
        services.close()
    assert target.sql(f"SELECT version_num FROM {migrations.VERSION_TABLE}") == [(migrations.HEAD,)]


def test_an_older_sqlite_format_keeps_sources_and_asks_for_a_reindex(tmp_path: Path, make_repo: MakeRepo) -> None:
    settings = Settings(home=tmp_path / "home", embedder="hash")
    services = build_services(settings)
    root = make_repo(REPO)
    source, _ = index_source(services.store, settings, str(root))
    create_key(services.store, name="ci", role="admin", plan=plan_for("team"))
    services.close()
    conn = sqlite3.connect(settings.db_path)
    conn.execute(f"DROP TABLE {migrations.VERSION_TABLE}")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '5')")
    conn.commit()
    conn.close()

    services = build_services(settings)
    try:
        kept = services.store.get_source(source.name)
        assert kept is not None and kept.public_id == source.public_id
        assert kept.state == "New" and "re-index" in kept.state_reason
        assert services.store.files([kept.id]) == [] and services.searcher.search("alpha_handler").hits == []
        assert [k.name for k in services.store.list_keys()] == ["ci"]  # registry data is not derived: kept
        index_source(services.store, settings, str(root), name=source.name)
        assert services.searcher.search("alpha_handler").hits[0].artifact.qualified_name == "alpha_handler"
    finally:
        services.close()


def test_a_schema_from_a_newer_release_is_refused(target: Target) -> None:
    target.open().close()
    target.sql(f"UPDATE {migrations.VERSION_TABLE} SET version_num = '9999'")
    with pytest.raises(StorageError, match=r"revision '9999'.*newer repolens"):
        target.open()
    run = _migrate_cli(target)
    _, err = run.communicate(timeout=120)
    assert run.returncode != 0 and "newer repolens" in err and "Traceback" not in err


def test_downgrade_to_base_and_up_again(target: Target, make_repo: MakeRepo) -> None:
    target.open().close()
    assert {"sources", "artifacts", "jobs", "api_keys"} <= target.tables()
    migrations.downgrade(target.dialect, target.connect, "base")
    assert target.tables() == {migrations.VERSION_TABLE}
    services = build_services(target.settings)  # opening migrates again from nothing
    try:
        index_source(services.store, target.settings, str(make_repo(REPO)))
        assert services.searcher.search("alpha_handler").hits[0].artifact.qualified_name == "alpha_handler"
    finally:
        services.close()
