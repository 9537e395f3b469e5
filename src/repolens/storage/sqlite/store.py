"""The embedded backend: one SQLite file holds sources, files, artifacts, relations,
the lexical indexes (FTS5) and the vectors.

Design notes:

* The FTS5 tables are *contentless* (``content=''``): tokens are produced in Python by
  ``parsing.tokens`` (FTS5 cannot split camelCase), and a stored copy of them would cost
  more than the source itself. Deleting from a contentless table needs the exact tokens
  that were inserted, so the caller supplies a pure ``Tokenize`` function that recomputes
  them from the stored content and rows (and ``TOKENIZER_VERSION`` guards its changes).
* A ``src`` column in each FTS table holds one token per source (``s<id>``), so a search
  scoped to some sources is an FTS ``AND`` instead of a scan of every match.
* ``AUTOINCREMENT`` ids are never reused, so a posting that outlived its row can never be
  attributed to another artifact; joins drop it.
* Writers take ``BEGIN IMMEDIATE``; WAL lets readers keep answering from the last commit
  while a re-index is being written.
* One connection per thread (the server answers from a thread pool): SQLite then runs
  reads in parallel, and one thread's transaction never sees another's statements.
* ``meta.generation`` counts commits that change indexed content, in every connection and
  process: caches built from the database (vector matrices, counts) key on it. Bookkeeping
  writes (job progress, keys, workspaces) leave it alone, or an idle job poller would
  invalidate every cache twice a second.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from repolens.domain import Relation, RelationKind
from repolens.errors import Conflict, InvalidInput, StorageError
from repolens.storage.base import ArtifactRow, FileRow, NewFile, SourceRow, Tokenize
from repolens.storage.cache import GenerationCache
from repolens.storage.sqlite.registry import REGISTRY_SCHEMA, RegistryMixin

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

SCHEMA_VERSION = 6
_BUSY_TIMEOUT_MS = 60_000  # a concurrent index run holds the write lock for seconds, not minutes
# Column weights for bm25(): a hit in a symbol's name says far more than one in its body,
# and a path hit sits in between (measured on the benchmark, see bench/REPORT.md).
UNIT_WEIGHTS = (0.0, 6.0, 1.0)  # src, name, body (paths are matched at file level)
FILE_WEIGHTS = (0.0, 3.0, 2.0, 1.0)  # src, path, symbols, body
# Relation kinds are stored as small integers: the table has tens of thousands of rows per repo.
RELATION_KINDS: tuple[RelationKind, ...] = ("calls", "references", "imports", "inherits")
RELATION_CODES: dict[str, int] = {k: i for i, k in enumerate(RELATION_KINDS)}
_FTS_TOKENIZE = "porter unicode61 tokenchars '_'"
# Read caches (see storage/cache.py): ~300 bytes per artifact row and 1 char ~ 1 byte of code,
# so together at most ~100 MB, enough for the hot files and candidates of many repositories.
ARTIFACT_CACHE_ROWS = 100_000
NO_MODEL = -1  # the model id of an embedder no vector was stored for yet (no row has it)
TEXT_CACHE_CHARS = 64_000_000
_COMPRESS_LEVEL = 6  # zlib's default: ~12% smaller than level 1 for ~0.3 s more per 18 MB indexed

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    public_id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    location TEXT NOT NULL,
    branch TEXT,
    commit_sha TEXT NOT NULL DEFAULT '',
    state TEXT NOT NULL DEFAULT 'New',
    state_reason TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    indexed_at REAL,
    file_count INTEGER NOT NULL DEFAULT 0,
    artifact_count INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS files(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    language TEXT,
    sha TEXT NOT NULL,
    size INTEGER NOT NULL,
    n_lines INTEGER NOT NULL,
    parser TEXT NOT NULL,
    content BLOB NOT NULL,
    UNIQUE(source_id, path)
);
CREATE TABLE IF NOT EXISTS artifacts(
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source_id INTEGER NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    ident TEXT,  -- NULL when it equals qualified_name (most symbols): saves a copy per row
    name TEXT NOT NULL,
    qualified_name TEXT NOT NULL,
    symbol_kind TEXT NOT NULL,
    parent TEXT NOT NULL,
    start_line INTEGER NOT NULL,
    end_line INTEGER NOT NULL,
    signature TEXT NOT NULL,
    doc TEXT NOT NULL,
    embed_key INTEGER
);
CREATE INDEX IF NOT EXISTS artifacts_file ON artifacts(file_id);
CREATE INDEX IF NOT EXISTS artifacts_name ON artifacts(source_id, name COLLATE NOCASE);
-- Clustered by the artifact an edge starts in (no rowid, no second copy for that lookup).
CREATE TABLE IF NOT EXISTS relations(
    from_id INTEGER NOT NULL REFERENCES artifacts(id) ON DELETE CASCADE,
    kind INTEGER NOT NULL,
    target TEXT NOT NULL,
    line INTEGER NOT NULL,
    source_id INTEGER NOT NULL,
    PRIMARY KEY(from_id, kind, target, line)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS relations_target ON relations(source_id, target, kind);
-- Vectors are content-addressed by the hash of the text that was embedded: a unit whose
-- text did not change keeps its vector through re-parses, renames and copies. A rowid table
-- (append-only, dense pages) with the hash in an index: clustering 400-byte rows on a random
-- hash would split pages on every insert and leave the table a third empty.
CREATE TABLE IF NOT EXISTS models(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS vectors(
    id INTEGER PRIMARY KEY,
    embed_key INTEGER NOT NULL,
    model INTEGER NOT NULL,  -- models.id: a name per row would cost 20 bytes x every unit
    vec BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS vectors_key ON vectors(embed_key, model);
CREATE VIRTUAL TABLE IF NOT EXISTS units_fts USING fts5(
    src, name, body, content='', tokenize="{_FTS_TOKENIZE}"
);
CREATE VIRTUAL TABLE IF NOT EXISTS files_fts USING fts5(
    src, path, symbols, body, content='', tokenize="{_FTS_TOKENIZE}"
);
"""

_SOURCE_COLUMNS = (
    "id, public_id, name, location, branch, commit_sha, state, state_reason, description, "
    "created_at, indexed_at, file_count, artifact_count"
)
_ARTIFACT_COLUMNS = (
    "a.id, a.source_id, a.file_id, f.path, a.kind, coalesce(a.ident, a.qualified_name), a.name, a.qualified_name, "
    "a.symbol_kind, a.parent, a.start_line, a.end_line, a.signature, a.doc, f.language"
)
_UPDATABLE_SOURCE_FIELDS = frozenset(
    {"commit_sha", "state", "state_reason", "description", "indexed_at", "file_count", "artifact_count",
     "branch", "location"}
)  # fmt: skip


def connect(path: Path) -> sqlite3.Connection:
    """Open the database with the pragmas every connection needs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
    # Settable only on an empty file, before WAL writes its header: lets compact() hand
    # freed pages back to the file system instead of growing with every re-index.
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    _enable_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across crashes of the process
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache
    return conn


_WAL_RETRIES = 50  # x 0.1 s: switching to WAL needs a moment alone with a brand-new file


def _enable_wal(conn: sqlite3.Connection) -> None:
    # WAL persists in the file, so only the first opener switches; two first openers at
    # once can see SQLITE_BUSY (the busy handler does not cover this pragma), so retry.
    for _ in range(_WAL_RETRIES):
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            time.sleep(0.1)
    raise StorageError("could not switch the database to WAL mode: it stayed locked")


def _pack(text: str) -> bytes:
    return zlib.compress(text.encode("utf-8"), _COMPRESS_LEVEL)


def _unpack(blob: bytes) -> str:
    return zlib.decompress(blob).decode("utf-8")


def _src_token(source_id: int) -> str:
    return f"s{source_id}"


def fts_query(terms: Sequence[str]) -> str:
    """An FTS5 OR-query over ``terms`` (each quoted, so no term is read as syntax)."""
    return " OR ".join('"' + t.replace('"', "") + '"' for t in terms if t)


class SqliteStore(RegistryMixin):
    """``Store`` and ``Registry`` on one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._model_ids: dict[str, int] = {}
        self._count_cache: dict[tuple[int, str], tuple[tuple[int, int], tuple[int, int]]] = {}
        self._artifact_cache: GenerationCache[int, ArtifactRow] = GenerationCache(ARTIFACT_CACHE_ROWS)
        self._text_cache: GenerationCache[int, str] = GenerationCache(TEXT_CACHE_CHARS, weigh=len)
        self._init_schema()

    @property
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- schema ---------------------------------------------------------------------------

    def _init_schema(self) -> None:
        # CREATE ... IF NOT EXISTS is idempotent, so concurrent first starts are harmless.
        self._conn.executescript(_SCHEMA + REGISTRY_SCHEMA)
        with self._write() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is not None and int(row[0]) != SCHEMA_VERSION:
                # Derived data only: sources are kept and marked for re-indexing.
                for table in ("relations", "vectors", "models", "artifacts", "files", "units_fts", "files_fts"):
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
                conn.execute("DELETE FROM meta WHERE key = 'index_version'")
                conn.execute(
                    "UPDATE sources SET state = 'New', state_reason = 'storage format changed: re-index needed', "
                    "file_count = 0, artifact_count = 0"
                )
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('generation', '0')")
        self._conn.executescript(_SCHEMA)

    @contextmanager
    def _write(self, *, content: bool = True) -> Iterator[sqlite3.Connection]:
        """A write transaction; ``content=False`` for writes no index cache depends on (jobs,
        keys, workspaces), which then leave ``meta.generation`` alone."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(f"could not lock {self.path} for writing: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            if content:
                conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'generation'")
            conn.execute("COMMIT")

    # -- sources --------------------------------------------------------------------------

    @staticmethod
    def _source(row: tuple[Any, ...]) -> SourceRow:
        return SourceRow(*row)

    def get_source(self, name_or_id: str) -> SourceRow | None:
        """A source by name (case-insensitive) or public id."""
        row = self._conn.execute(
            f"SELECT {_SOURCE_COLUMNS} FROM sources WHERE name = ? COLLATE NOCASE OR public_id = ?",
            (name_or_id, name_or_id),
        ).fetchone()
        return self._source(row) if row else None

    def list_sources(self) -> list[SourceRow]:
        """All sources, by name."""
        rows = self._conn.execute(f"SELECT {_SOURCE_COLUMNS} FROM sources ORDER BY name COLLATE NOCASE")
        return [self._source(r) for r in rows]

    def create_source(self, *, name: str, location: str, branch: str | None, description: str = "") -> SourceRow:
        """Register a new source in state New."""
        public_id = secrets.token_hex(12)  # 24 hex characters, the shape of a Mongo ObjectId
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO sources(public_id, name, location, branch, description, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (public_id, name, location, branch, description, time.time()),
                )
            except sqlite3.IntegrityError:
                raise Conflict(f"a source named {name!r} already exists", [name]) from None
        source = self.get_source(public_id)
        assert source is not None
        return source

    def update_source(self, source_id: int, **fields: object) -> None:
        """Set columns of a source (state, commit_sha, counts, ...)."""
        unknown = set(fields) - _UPDATABLE_SOURCE_FIELDS
        if unknown:
            raise InvalidInput(f"cannot update source fields {sorted(unknown)!r}")
        if not fields:
            return
        assignments = ", ".join(f"{k} = ?" for k in fields)
        with self._write() as conn:
            conn.execute(f"UPDATE sources SET {assignments} WHERE id = ?", (*fields.values(), source_id))

    def delete_source(self, source_id: int, *, tokenize: Tokenize) -> None:
        """Remove a source, its files, artifacts, relations, vectors and postings."""
        with self._write() as conn:
            paths = [r[0] for r in conn.execute("SELECT path FROM files WHERE source_id = ?", (source_id,))]
            self._delete_paths(conn, source_id, paths, tokenize)
            conn.execute("DELETE FROM sources WHERE id = ?", (source_id,))

    # -- files ----------------------------------------------------------------------------

    def file_hashes(self, source_id: int) -> dict[str, str]:
        """path -> content hash of every stored file of a source."""
        return dict(self._conn.execute("SELECT path, sha FROM files WHERE source_id = ?", (source_id,)).fetchall())

    def replace_files(
        self, source_id: int, *, upserts: Iterable[NewFile], deletes: Iterable[str], tokenize: Tokenize
    ) -> int:
        """Write changed files and drop deleted ones in one transaction; return files written.

        Readers see either the previous state or the new one, never a mix. ``tokenize``
        recomputes the tokens of a stored file so its postings can be deleted.
        """
        written = 0
        src = _src_token(source_id)
        with self._write() as conn:
            self._delete_paths(conn, source_id, list(deletes), tokenize)
            for new in upserts:
                self._delete_paths(conn, source_id, [new.path], tokenize)
                written += 1
                cur = conn.execute(
                    "INSERT INTO files(source_id, path, language, sha, size, n_lines, parser, content) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (source_id, new.path, new.language, new.sha, new.size, new.n_lines, new.parser, _pack(new.content)),
                )
                file_id = cast(int, cur.lastrowid)
                tokens = new.tokens
                conn.execute(
                    "INSERT INTO files_fts(rowid, src, path, symbols, body) VALUES (?, ?, ?, ?, ?)",
                    (file_id, src, tokens.path, tokens.symbols, tokens.body),
                )
                self._insert_artifacts(conn, source_id, file_id, new, src)
            counts = conn.execute(
                "SELECT (SELECT count(*) FROM files WHERE source_id = ?), "
                "(SELECT count(*) FROM artifacts WHERE source_id = ?)",
                (source_id, source_id),
            ).fetchone()
            conn.execute("UPDATE sources SET file_count = ?, artifact_count = ? WHERE id = ?", (*counts, source_id))
        return written

    def _insert_artifacts(self, conn: sqlite3.Connection, source_id: int, file_id: int, new: NewFile, src: str) -> None:
        ids_by_name: dict[str, int] = {}
        file_artifact = 0
        for art, (unit_name, unit_body), key in zip(new.artifacts, new.tokens.units, new.embed_keys, strict=True):
            cur = conn.execute(
                "INSERT INTO artifacts(source_id, file_id, kind, ident, name, qualified_name, symbol_kind, parent, "
                "start_line, end_line, signature, doc, embed_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (source_id, file_id, art.kind, None if art.ident == art.qualified_name else art.ident, art.name,
                 art.qualified_name, art.symbol_kind, art.parent,
                 art.start_line, art.end_line, art.signature, art.doc, key),
            )  # fmt: skip
            art_id = cast(int, cur.lastrowid)
            if art.kind == "File":
                file_artifact = art_id
                continue
            if art.kind == "Symbol":
                ids_by_name.setdefault(art.qualified_name, art_id)
            conn.execute(
                "INSERT INTO units_fts(rowid, src, name, body) VALUES (?, ?, ?, ?)",
                (art_id, src, unit_name, unit_body),
            )
        conn.executemany(
            "INSERT OR IGNORE INTO relations(from_id, source_id, kind, target, line) VALUES (?, ?, ?, ?, ?)",
            [
                (ids_by_name.get(r.source, file_artifact) if r.source else file_artifact, source_id,
                 RELATION_CODES[r.kind], r.target, r.line)
                for r in new.relations
            ],
        )  # fmt: skip

    def _delete_paths(self, conn: sqlite3.Connection, source_id: int, paths: list[str], tokenize: Tokenize) -> None:
        src = _src_token(source_id)
        for path in paths:
            row = conn.execute(
                "SELECT id, content FROM files WHERE source_id = ? AND path = ?", (source_id, path)
            ).fetchone()
            if row is None:
                continue
            file_id, blob = row
            rows = [
                self._artifact(r)
                for r in conn.execute(
                    f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id "
                    "WHERE a.file_id = ? ORDER BY a.id",
                    (file_id,),
                )
            ]
            tokens = tokenize(path, _unpack(blob).split("\n"), rows)
            for art, (unit_name, unit_body) in zip(rows, tokens.units, strict=True):
                if art.kind == "File":
                    continue
                conn.execute(
                    "INSERT INTO units_fts(units_fts, rowid, src, name, body) VALUES ('delete', ?, ?, ?, ?)",
                    (art.id, src, unit_name, unit_body),
                )
            conn.execute(
                "INSERT INTO files_fts(files_fts, rowid, src, path, symbols, body) VALUES ('delete', ?, ?, ?, ?, ?)",
                (file_id, src, tokens.path, tokens.symbols, tokens.body),
            )
            conn.execute("DELETE FROM files WHERE id = ?", (file_id,))

    def file_content(self, file_id: int) -> str:
        """The stored text of a file."""
        generation = self.generation()
        self._text_cache.sync(generation)
        text = self._text_cache.get(file_id)
        if text is not None:
            return text
        row = self._conn.execute("SELECT content FROM files WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise StorageError(f"file {file_id} vanished")
        text = _unpack(row[0])
        self._text_cache.put(file_id, text, generation)
        return text

    def files(self, source_ids: Sequence[int]) -> list[FileRow]:
        """All files of the given sources, by path."""
        marks = ",".join("?" * len(source_ids))
        rows = self._conn.execute(
            f"SELECT id, source_id, path, language, sha, size, n_lines, parser FROM files "
            f"WHERE source_id IN ({marks}) ORDER BY source_id, path",
            tuple(source_ids),
        )
        return [FileRow(*r) for r in rows]

    def iter_contents(self, source_ids: Sequence[int]) -> Iterator[tuple[FileRow, str]]:
        """Every file of the given sources with its text (for grep)."""
        marks = ",".join("?" * len(source_ids))
        rows = self._conn.execute(
            f"SELECT id, source_id, path, language, sha, size, n_lines, parser, content FROM files "
            f"WHERE source_id IN ({marks}) ORDER BY source_id, path",
            tuple(source_ids),
        )
        for row in rows:
            yield FileRow(*row[:8]), _unpack(row[8])

    # -- artifacts ------------------------------------------------------------------------

    @staticmethod
    def _artifact(row: tuple[Any, ...]) -> ArtifactRow:
        return ArtifactRow(*row)

    def artifacts_by_id(self, ids: Sequence[int]) -> dict[int, ArtifactRow]:
        """Artifacts by row id (missing ids are simply absent)."""
        generation = self.generation()
        self._artifact_cache.sync(generation)
        out: dict[int, ArtifactRow] = {}
        missing: list[int] = []
        for artifact_id in ids:
            cached = self._artifact_cache.get(artifact_id)
            if cached is None:
                missing.append(artifact_id)
            else:
                out[artifact_id] = cached
        for chunk in _chunks(missing, 500):
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id WHERE a.id IN ({marks})",
                chunk,
            )
            for row in rows:
                artifact = out[row[0]] = self._artifact(row)
                self._artifact_cache.put(artifact.id, artifact, generation)
        return out

    def artifacts_in_path(self, source_id: int, path: str) -> list[ArtifactRow]:
        """Every artifact of the file at ``path`` in a source, in line order."""
        rows = self._conn.execute(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id "
            "WHERE a.source_id = ? AND f.path = ? ORDER BY a.start_line, a.end_line DESC",
            (source_id, path),
        )
        return [self._artifact(r) for r in rows]

    def artifacts_in_file_by_id(self, file_id: int) -> list[ArtifactRow]:
        """Every artifact of one file in insertion order (the order tokens were made in)."""
        rows = self._conn.execute(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id "
            "WHERE a.file_id = ? ORDER BY a.id",
            (file_id,),
        )
        return [self._artifact(r) for r in rows]

    def find_artifacts(self, source_ids: Sequence[int], path: str, ident: str) -> list[ArtifactRow]:
        """Artifacts at ``path`` with ``ident`` ('' for the file itself) in the given sources."""
        marks = ",".join("?" * len(source_ids))
        rows = self._conn.execute(
            f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id "
            f"WHERE a.source_id IN ({marks}) AND f.path = ? AND coalesce(a.ident, a.qualified_name) = ?",
            (*source_ids, path, ident),
        )
        return [self._artifact(r) for r in rows]

    def symbols_named(self, names: Sequence[str], source_ids: Sequence[int]) -> list[ArtifactRow]:
        """Symbols whose name or qualified name is one of ``names`` (case-insensitive)."""
        if not names or not source_ids:
            return []
        marks = ",".join("?" * len(source_ids))
        # Qualified names (``Router.add_route``) are found through the index on the last
        # segment and filtered here; a second index on qualified names would cost megabytes.
        wanted = {n.lower() for n in names}
        lasts = sorted({n.rsplit(".", 1)[-1] for n in names})
        last_marks = ",".join("?" * len(lasts))
        rows = [
            r
            for r in self._conn.execute(
                f"SELECT {_ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id "
                f"WHERE a.source_id IN ({marks}) AND a.name COLLATE NOCASE IN ({last_marks}) AND a.kind = 'Symbol'",
                (*source_ids, *lasts),
            )
            if r[6].lower() in wanted or r[7].lower() in wanted
        ]
        return [self._artifact(r) for r in rows]

    # -- lexical search -------------------------------------------------------------------

    def _fts(self, table: str, weights: tuple[float, ...], terms: Sequence[str], source_ids: Sequence[int],
             limit: int) -> list[tuple[int, float]]:  # fmt: skip
        query = fts_query(terms)
        if not query or not source_ids:
            return []
        scope = " OR ".join(_src_token(s) for s in source_ids)
        match = f"src:({scope}) AND ({query})"
        w = ", ".join(str(x) for x in weights)
        try:
            rows = self._conn.execute(
                f"SELECT rowid, -bm25({table}, {w}) FROM {table} WHERE {table} MATCH ? ORDER BY bm25({table}, {w}) LIMIT ?",
                (match, limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise StorageError(f"lexical search failed: {exc}") from exc
        return [(int(r[0]), float(r[1])) for r in rows]

    def lexical_units(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(artifact id, BM25 score) of symbol and chunk units matching any term, best first."""
        return self._fts("units_fts", UNIT_WEIGHTS, terms, source_ids, limit)

    def lexical_files(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(file id, BM25 score) of whole files matching any term, best first."""
        return self._fts("files_fts", FILE_WEIGHTS, terms, source_ids, limit)

    # -- relations ------------------------------------------------------------------------

    def relations_from(self, artifact_ids: Sequence[int], kinds: Sequence[str]) -> list[tuple[int, Relation]]:
        """(artifact id, edge) for edges that start in the given artifacts."""
        marks = ",".join("?" * len(artifact_ids))
        k_marks = ",".join("?" * len(kinds))
        rows = self._conn.execute(
            f"SELECT from_id, kind, target, line FROM relations WHERE from_id IN ({marks}) "
            f"AND kind IN ({k_marks}) ORDER BY line",
            (*artifact_ids, *(RELATION_CODES[k] for k in kinds)),
        )
        return [(r[0], Relation(None, RELATION_KINDS[r[1]], r[2], r[3])) for r in rows]

    def top_targets(self, source_id: int, kinds: Sequence[str], limit: int) -> list[tuple[str, int]]:
        """(target name, edge count) of the most referenced names in a source, most first."""
        k_marks = ",".join("?" * len(kinds))
        rows = self._conn.execute(
            f"SELECT target, count(*) AS n FROM relations WHERE source_id = ? AND kind IN ({k_marks}) "
            "GROUP BY target ORDER BY n DESC, target LIMIT ?",
            (source_id, *(RELATION_CODES[k] for k in kinds), limit),
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    def relations_to(
        self, source_ids: Sequence[int], targets: Sequence[str], kinds: Sequence[str]
    ) -> list[tuple[int, Relation]]:
        """(artifact id the edge starts in, edge) for edges whose target is one of ``targets``."""
        marks = ",".join("?" * len(source_ids))
        t_marks = ",".join("?" * len(targets))
        k_marks = ",".join("?" * len(kinds))
        rows = self._conn.execute(
            f"SELECT from_id, kind, target, line FROM relations WHERE source_id IN ({marks}) "
            f"AND target IN ({t_marks}) AND kind IN ({k_marks}) ORDER BY from_id, line",
            (*source_ids, *targets, *(RELATION_CODES[k] for k in kinds)),
        )
        return [(r[0], Relation(None, RELATION_KINDS[r[1]], r[2], r[3])) for r in rows]

    # -- vectors --------------------------------------------------------------------------

    def _model_id(self, name: str, *, create: bool = False) -> int:
        """The row id of an embedding model; ``NO_MODEL`` (matches no vector) when it has none yet
        and ``create`` is off, so that reads never write (a read inside ``snapshot`` must not take
        the write lock)."""
        cached = self._model_ids.get(name)
        if cached is not None:
            return cached
        row = self._conn.execute("SELECT id FROM models WHERE name = ?", (name,)).fetchone()
        if row is None:
            if not create:
                return NO_MODEL
            self._conn.execute("INSERT OR IGNORE INTO models(name) VALUES (?)", (name,))
            row = self._conn.execute("SELECT id FROM models WHERE name = ?", (name,)).fetchone()
        self._model_ids[name] = int(row[0])
        return int(row[0])

    def units_missing_vectors(self, source_id: int, model: str, limit: int) -> list[tuple[int, int]]:
        """(artifact id, embed key) of one unit per embedding text still lacking a vector."""
        rows = self._conn.execute(
            "SELECT min(a.id), a.embed_key FROM artifacts a WHERE a.source_id = ? AND a.embed_key IS NOT NULL "
            "AND NOT EXISTS (SELECT 1 FROM vectors v WHERE v.embed_key = a.embed_key AND v.model = ?) "
            "GROUP BY a.embed_key ORDER BY min(a.id) LIMIT ?",
            (source_id, self._model_id(model), limit),
        ).fetchall()
        return [(int(r[0]), int(r[1])) for r in rows]

    def vector_counts(self, source_id: int, model: str) -> tuple[int, int]:
        """(units with a vector for ``model``, all units) of a source."""
        row = self._conn.execute(
            "SELECT count(v.embed_key), count(*) FROM artifacts a LEFT JOIN vectors v "
            "ON v.embed_key = a.embed_key AND v.model = ? WHERE a.source_id = ? AND a.embed_key IS NOT NULL",
            (self._model_id(model), source_id),
        ).fetchone()
        return int(row[0]), int(row[1])

    def put_vectors(self, model: str, items: Sequence[tuple[int, bytes]]) -> None:
        """Store encoded vectors by embed key."""
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO vectors(embed_key, model, vec) VALUES (?, ?, ?)",
                [(key, self._model_id(model, create=True), blob) for key, blob in items],
            )

    def vectors(self, source_ids: Sequence[int], model: str) -> tuple[npt.NDArray[np.int64], list[bytes]]:
        """(artifact ids, encoded vectors) for ``model`` of every unit in the given sources."""
        import numpy as np

        marks = ",".join("?" * len(source_ids))
        rows = self._conn.execute(
            f"SELECT a.id, v.vec FROM artifacts a JOIN vectors v ON v.embed_key = a.embed_key AND v.model = ? "
            f"WHERE a.source_id IN ({marks}) ORDER BY a.id",
            (self._model_id(model), *source_ids),
        ).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64), [r[1] for r in rows]

    def collect_vector_garbage(self) -> int:
        """Drop vectors no artifact refers to any more; return how many."""
        with self._write() as conn:
            # NOT IN builds one temporary index over the keys in use; no permanent index needed.
            cur = conn.execute(
                "DELETE FROM vectors WHERE embed_key NOT IN (SELECT embed_key FROM artifacts WHERE embed_key IS NOT NULL)"
            )
            return cur.rowcount

    def compact(self) -> None:
        """Drop orphaned vectors and give freed pages back, so re-indexing never grows the file."""
        self.collect_vector_garbage()
        self._conn.execute("PRAGMA incremental_vacuum")
        self.checkpoint()

    def ensure_index_version(self, version: str) -> bool:
        """Forget every file if the parser/tokenizer fingerprint changed; True if it did.

        Stored tokens can only be deleted with the tokenizer that made them, and stored
        symbols are only as good as the queries that found them: a new fingerprint means the
        next index run re-reads everything. Vectors survive (they are keyed by text).
        """
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'index_version'").fetchone()
        if row is not None and row[0] == version:
            return False
        with self._write() as conn:
            if row is not None:
                conn.execute("DELETE FROM files")
                # Contentless FTS5 tables refuse DELETE; 'delete-all' is their way to empty.
                conn.execute("INSERT INTO units_fts(units_fts) VALUES('delete-all')")
                conn.execute("INSERT INTO files_fts(files_fts) VALUES('delete-all')")
                conn.execute(
                    "UPDATE sources SET state = 'New', state_reason = 'index format changed: re-index needed', "
                    "file_count = 0, artifact_count = 0"
                )
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('index_version', ?)", (version,))
        return row is not None

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """A read transaction: in WAL mode it pins the state of its first read for every later
        read on this thread's connection, without blocking writers. Nests as a no-op."""
        conn = self._conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")  # nothing was written: this only ends the snapshot

    def generation(self) -> tuple[int, int]:
        """Changes whenever anything commits, in any connection or process (cache key)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
        return (int(row[0]) if row else 0), 0

    def vector_counts_cached(self, source_id: int, model: str) -> tuple[int, int]:
        """``vector_counts``, recomputed only when the database changed."""
        gen = self.generation()
        cached = self._count_cache.get((source_id, model))
        if cached is not None and cached[0] == gen:
            return cached[1]
        counts = self.vector_counts(source_id, model)
        self._count_cache[(source_id, model)] = (gen, counts)
        return counts

    def size_bytes(self) -> int:
        """Bytes on disk of the database and its WAL."""
        total = 0
        for suffix in ("", "-wal"):
            p = Path(str(self.path) + suffix)
            if p.exists():
                total += os.path.getsize(p)
        return total

    def checkpoint(self) -> None:
        """Fold the WAL back into the main file."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
