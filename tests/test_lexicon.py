"""The in-memory lexical index of a resident SQLite store ranks exactly as FTS5's bm25() does,
and is rebuilt when the indexed files change (and only then)."""

from __future__ import annotations

import importlib
import math
import random
from pathlib import Path

import pytest

from conftest import MakeRepo
from repolens.embeddings.fake import HashEmbedder
from repolens.indexing.pipeline import index_source
from repolens.indexing.vectors import backfill
from repolens.retrieval.query import analyze
from repolens.settings import Settings
from repolens.storage.sqlite import lexicon
from repolens.storage.sqlite.store import SqliteStore

LANGUAGES = Path(__file__).parent / "fixtures" / "languages"
APP = {
    "src/auth/passwords.py": (
        "import hashlib\n\n"
        "def hash_password(password: str, salt: bytes) -> str:\n"
        "    '''Hash a password with a salt for storage.'''\n"
        "    return hashlib.pbkdf2_hmac('sha256', password.encode(), salt, 100_000).hex()\n\n"
        "def verify_password(password: str, salt: bytes, stored: str) -> bool:\n"
        "    '''Check a password against the stored hashes, connecting to the connection pool.'''\n"
        "    return hash_password(password, salt) == stored\n"
    ),
    "src/routing/router.py": (
        "class Router:\n    '''Maps URL rules to endpoints.'''\n\n"
        "    def add_route(self, rule: str, endpoint: str) -> None:\n        self.rules.append((rule, endpoint))\n"
    ),
}
QUESTIONS = [
    "hash a password with a salt",
    "connections to the pool",
    "where are routes matched against rules",
    "parse the configuration file and return a dict",
    "Router.add_route",
    "HttpClient",
    "s1 s2 s3",  # the words a row's source is tagged with: FTS5 matches them in the src column
]


def _agree(memory: list[tuple[int, float]], sql: list[tuple[int, float]]) -> None:
    assert len(memory) == len(sql)
    for (_, a), (_, b) in zip(memory, sql, strict=True):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if sql:
        # FTS5 leaves the order of equal scores open: rows above the last score are the same rows.
        last = sql[-1][1]
        assert {r for r, s in memory if not math.isclose(s, last, rel_tol=1e-9)} == {
            r for r, s in sql if not math.isclose(s, last, rel_tol=1e-9)
        }


@pytest.fixture
def two_sources(settings: Settings, make_repo: MakeRepo) -> tuple[Settings, Path]:
    store = SqliteStore(settings.db_path)
    index_source(store, settings, str(LANGUAGES), name="languages")
    app = make_repo(APP)
    index_source(store, settings, str(app), name="acme/app")
    store.close()
    return settings, app


def test_memory_and_sql_rank_the_same(two_sources: tuple[Settings, Path]) -> None:
    """Over two sources, every query gets FTS5's rows and scores from memory, scoped or not."""
    settings, _ = two_sources
    sql = SqliteStore(settings.db_path)
    memory = SqliteStore(settings.db_path, resident=True)
    memory.build_lexicons()
    assert memory.lexicons_current() and not sql.lexicons_current()
    ids = [s.id for s in sql.list_sources()]
    words = sorted(memory._lexicons["units_fts"][1].terms)  # the index's own stems, as query words
    rng = random.Random(16)
    queries = [analyze(q).terms for q in QUESTIONS] + [tuple(rng.sample(words, 3)) for _ in range(40)]
    compared = 0
    for terms in queries:
        for scope in ([ids[0]], [ids[1]], ids):
            for limit in (3, 200):
                _agree(memory.lexical_units(terms, scope, limit), sql.lexical_units(terms, scope, limit))
                _agree(memory.lexical_files(terms, scope, limit), sql.lexical_files(terms, scope, limit))
                compared += bool(sql.lexical_units(terms, scope, limit))
    assert compared > 100  # most queries match something: the comparison is not of empty lists
    memory.close()
    sql.close()


def test_a_reindex_makes_the_memory_index_stale_and_a_build_catches_up(two_sources: tuple[Settings, Path]) -> None:
    """New words are found at once (through SQL), then from memory after the rebuild; vectors do not invalidate it."""
    settings, app = two_sources
    store = SqliteStore(settings.db_path, resident=True)
    store.build_lexicons()
    app_id = next(s.id for s in store.list_sources() if s.name == "acme/app")
    assert store.lexical_units(["zebrafish"], [app_id], 10) == []

    backfill(store, app_id, HashEmbedder())  # vectors change the generation, not the lexical index
    assert store.lexicons_current()

    (app / "src" / "zoo.py").write_text("def feed_zebrafish(tank):\n    '''Feed the zebrafish.'''\n")
    index_source(store, settings, str(app), name="acme/app")
    assert not store.lexicons_current()
    found = store.lexical_units(["zebrafish"], [app_id], 10)  # answered through SQL meanwhile
    assert len(found) == 1
    store.build_lexicons()
    assert store.lexicons_current()
    _agree(store.lexical_units(["zebrafish"], [app_id], 10), found)
    store.close()


def test_query_words_are_stemmed_by_fts5_itself() -> None:
    """The stemmer is FTS5's porter tokenizer, configured as the tables are."""
    baseline = importlib.import_module("repolens.storage.migrations.versions.0001_baseline")
    assert baseline.FTS_TOKENIZE == lexicon.FTS_TOKENIZE
    assert lexicon.stem_words(["connections", "Connected", "is_empty", "ab", "foo-bar"]) == [
        ("connect",),
        ("connect",),
        ("is_empti",),
        ("ab",),
        ("foo", "bar"),
    ]


def _matrix_files(settings: Settings) -> list[str]:
    return sorted(p.name for p in (settings.db_path.parent / "matrices").glob("*"))


def test_the_vector_matrix_file_is_written_after_embedding_and_rebuilt_when_stale(
    two_sources: tuple[Settings, Path],
) -> None:
    """The .npy matrix matches the vectors table, names the state it was read in, and is replaced
    (not reused) after a re-index or a vector write; a damaged file is rebuilt from the database."""
    from repolens.indexing.vectors import embed_and_compact
    from repolens.storage.codec import decode_many

    settings, app = two_sources
    store = SqliteStore(settings.db_path)
    embedder = HashEmbedder()
    app_id = next(s.id for s in store.list_sources() if s.name == "acme/app")
    embed_and_compact(store, app_id, embedder)
    written = _matrix_files(settings)
    assert [n.rsplit(".", 2)[-2:] for n in written if not n.endswith(".counts")] == [["ids", "npy"], ["vec", "npy"]]
    ids, matrix = store.vector_matrix(app_id, embedder.name, embedder.dim)
    ref_ids, blobs = store.vectors((app_id,), embedder.name)
    assert list(ids) == list(ref_ids) and len(ids) > 3
    assert (abs(matrix - decode_many(blobs, embedder.dim)) < 1e-6).all()
    assert store.vector_counts_cached(app_id, embedder.name) == store.vector_counts(app_id, embedder.name)

    (app / "src" / "zoo.py").write_text("def feed_zebrafish(tank):\n    '''Feed the zebrafish.'''\n")
    index_source(store, settings, str(app), name="acme/app")
    stale = store.vector_matrix(app_id, embedder.name, embedder.dim)[0]
    assert set(stale) == set(store.vectors((app_id,), embedder.name)[0])  # the new unit has no vector yet
    embed_and_compact(store, app_id, embedder)
    fresh, _ = store.vector_matrix(app_id, embedder.name, embedder.dim)
    assert len(fresh) > len(stale) and _matrix_files(settings) != written
    assert list(fresh) == list(store.vectors((app_id,), embedder.name)[0])
    assert len(_matrix_files(settings)) == 3  # the older state's files were removed
    assert store.vector_counts_cached(app_id, embedder.name) == store.vector_counts(app_id, embedder.name)

    vec_file = next((settings.db_path.parent / "matrices").glob("*.vec.npy"))
    vec_file.write_bytes(b"not a matrix")
    again, rebuilt = store.vector_matrix(app_id, embedder.name, embedder.dim)
    assert list(again) == list(fresh) and rebuilt.shape == (len(fresh), embedder.dim)
    store.close()

    from repolens.catalog import delete_repository

    db = SqliteStore(settings.db_path)
    source = db.get_source("acme/app")
    assert source is not None
    delete_repository(db, settings, source)
    assert _matrix_files(settings) == []  # a removed source leaves no matrix behind
    db.close()


def test_a_table_too_large_to_hold_stays_on_sql(two_sources: tuple[Settings, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_TOKENS no lexicon is built, searches answer through SQL, and no build is retried
    until the index changes."""
    settings, _ = two_sources
    monkeypatch.setattr(lexicon, "MAX_TOKENS", 10)
    store = SqliteStore(settings.db_path, resident=True)
    sql = SqliteStore(settings.db_path)
    ids = [s.id for s in sql.list_sources()]
    store.build_lexicons()
    assert not store.lexicons_current()
    assert store.lexical_units(["password"], ids, 10) == sql.lexical_units(["password"], ids, 10) != []
    assert store._lexicon_builder is None  # the refusal is remembered for this state: no thread started
    store.close()
    sql.close()


def test_a_search_from_the_shell_loads_only_the_index(two_sources: tuple[Settings, Path]) -> None:
    """`repolens search` answers without importing the other stores' code (nor numpy, in lexical mode)."""
    import json
    import os
    import subprocess
    import sys

    settings, _ = two_sources
    probe = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr))\n"
        "sys.argv = ['repolens', 'search', 'hash a password', '--mode', 'lexical']\n"
        "from repolens.surfaces.cli.main import main\n"
        "main()\n"
    )
    env = {**os.environ, "REPOLENS_HOME": str(settings.home), "REPOLENS_EMBEDDER": "hash"}
    env.pop("REPOLENS_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "passwords.py" in done.stdout
    modules = set(json.loads(done.stderr.strip().splitlines()[-1]))
    assert "repolens.storage.sqlite.store" in modules
    for heavy in ("agents", "batch_store", "workflow_store", "chats", "eval_store", "knowledge", "database"):
        assert f"repolens.storage.{heavy}" not in modules
    assert "numpy" not in modules and "repolens.access.keys" not in modules
