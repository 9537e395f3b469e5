"""The embedded backend: one SQLite file holds sources, files, artifacts, relations,
the lexical indexes (FTS5) and the vectors.

The tables are created and upgraded by the Alembic revisions in ``storage/migrations``.

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
* ``meta.lexical_generation`` counts only the commits that change the FTS tables (files
  written or deleted): a ``resident`` store keeps their postings in memory (``lexicon.py``) and
  rebuilds them when it moves, not on every batch of vectors an embedding run writes.
* ``meta.vectors_generation`` counts the commits that write or drop vectors. A source's vector
  matrix (its units' vectors of one model, decoded) depends on its artifacts and on the vectors
  table only, so the two counters name it exactly: it is kept as ``.npy`` files beside the
  database under that name (``matrices/``), written after indexing and on first use, and
  memory-mapped by a search (a ``repolens search`` from the shell then reads no vector rows).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, cast

from repolens.errors import StorageError
from repolens.storage import migrations
from repolens.storage.base import NewFile, Tokenize
from repolens.storage.relational import (
    ARTIFACT_COLUMNS,
    RELATION_CODES,
    SqlIndexStore,
    stored_content,
    unpack,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from repolens.storage.sqlite.database import SqliteStore as SqliteStore
    from repolens.storage.sqlite.lexicon import Lexicon

log = logging.getLogger(__name__)

_BUSY_TIMEOUT_MS = 60_000  # a concurrent index run holds the write lock for seconds, not minutes
# Column weights for bm25(): a hit in a symbol's name says far more than one in its body,
# and a path hit sits in between (measured on the benchmark, see bench/REPORT.md).
UNIT_WEIGHTS = (0.0, 6.0, 1.0)  # src, name, body (paths are matched at file level)
FILE_WEIGHTS = (0.0, 3.0, 2.0, 1.0)  # src, path, symbols, body
# The FTS tables a resident store holds in memory: (columns in order, their bm25() weights).
FTS_TABLES: dict[str, tuple[tuple[str, ...], tuple[float, ...]]] = {
    "units_fts": (("src", "name", "body"), UNIT_WEIGHTS),
    "files_fts": (("src", "path", "symbols", "body"), FILE_WEIGHTS),
}
# Bumped by every commit that changes the FTS tables (an upsert: the row may not exist yet).
_BUMP_LEXICAL = (
    "INSERT INTO meta(key, value) VALUES ('lexical_generation', 1) "
    "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
)
LEXICON_BUILD_CACHE_KIB = 4096  # page cache of the connection that reads the postings (see build_lexicons)
_BUMP_VECTORS = _BUMP_LEXICAL.replace("lexical_generation", "vectors_generation")
MATRIX_DIR = "matrices"  # beside the database: one pair of .npy files per (source, model, state)
# What a source's vector matrix file is named after: both counters and the source's random public
# id (a database made anew at the same path restarts the counters, never the ids).
_MATRIX_KEY = (
    "SELECT (SELECT value FROM meta WHERE key = 'lexical_generation'), "
    "(SELECT value FROM meta WHERE key = 'vectors_generation'), (SELECT public_id FROM sources WHERE id = ?)"
)
# What the in-memory postings are keyed on: the counter above, and FTS5's own averages record
# (row count and tokens per column), which also moves if an older release wrote the file.
_LEXICAL_KEY = (
    "SELECT (SELECT value FROM meta WHERE key = 'lexical_generation'), "
    "(SELECT block FROM units_fts_data WHERE id = 1), (SELECT block FROM files_fts_data WHERE id = 1)"
)


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


def _src_token(source_id: int) -> str:
    return f"s{source_id}"


def fts_query(terms: Sequence[str]) -> str:
    """An FTS5 OR-query over ``terms`` (each quoted, so no term is read as syntax)."""
    return " OR ".join('"' + t.replace('"', "") + '"' for t in terms if t)


def __getattr__(name: str) -> object:
    # PEP 562: the whole database (``sqlite/database.py``) loads the other stores when asked for.
    if name == "SqliteStore":
        from repolens.storage.sqlite.database import SqliteStore

        return SqliteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SqliteIndexStore(SqlIndexStore):
    """``Store`` and ``Registry`` on one SQLite file (``SqliteStore`` adds the other stores).

    ``resident``: a long-lived process (the server) answers lexical searches from postings held
    in memory (``lexicon.py``, the same scores as FTS5's ``bm25()``), built in a background
    thread whenever the FTS tables changed; until a build is ready, searches go through SQL.
    A one-shot command (``repolens search``) leaves it off: one SQL query costs less than a build.
    """

    _integrity_errors: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)

    def __init__(self, path: Path, *, resident: bool = False) -> None:
        self.path = path
        self.resident = resident
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._lexicons: dict[str, tuple[object, Lexicon | None]] = {}  # None: too large, SQL answers
        self._lexicon_builder: threading.Thread | None = None
        self._lexicon_lock = threading.Lock()
        self._init_caches()
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
        """Close every connection this store opened (after a lexicon build under way ends)."""
        builder = self._lexicon_builder
        if builder is not None:
            builder.join()
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- schema ---------------------------------------------------------------------------

    def _init_schema(self) -> None:
        # The schema lives in Alembic revisions (storage/migrations); opening an up-to-date
        # file costs one SELECT.
        if self._schema_revision() != migrations.HEAD:
            self.schema_migration = migrations.upgrade("sqlite", lambda: connect(self.path))

    def _schema_revision(self) -> str | None:
        try:
            row = self._conn.execute(f"SELECT version_num FROM {migrations.VERSION_TABLE}").fetchone()
        except sqlite3.OperationalError:  # no such table: a new file, or one made before migrations
            return None
        return None if row is None else str(row[0])

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

    def delete_source(self, source_id: int, *, tokenize: Tokenize) -> None:
        """Remove a source, its files, artifacts, relations, vectors, postings and vector matrix files."""
        with self._write() as conn:
            row = conn.execute("SELECT public_id FROM sources WHERE id = ?", (source_id,)).fetchone()
            paths = [r[0] for r in conn.execute("SELECT path FROM files WHERE source_id = ?", (source_id,))]
            self._delete_paths(conn, source_id, paths, tokenize)
            conn.execute("DELETE FROM sources WHERE id = ?", (source_id,))
            conn.execute(_BUMP_LEXICAL)
        if row is not None:
            for matrix_file in (self.path.parent / MATRIX_DIR).glob(f"{row[0]}-*"):
                matrix_file.unlink(missing_ok=True)

    # -- files ----------------------------------------------------------------------------

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
                    (source_id, new.path, new.language, new.sha, new.size, new.n_lines, new.parser, stored_content(new)),
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
            conn.execute(_BUMP_LEXICAL)
        return written

    def _insert_artifacts(self, conn: sqlite3.Connection, source_id: int, file_id: int, new: NewFile, src: str) -> None:
        ids_by_name: dict[str, int] = {}
        file_artifact = 0
        for art, (unit_name, unit_body), key in zip(new.artifacts, new.tokens.units, new.embed_keys, strict=True):
            cur = conn.execute(
                "INSERT INTO artifacts(source_id, file_id, kind, ident, name, qualified_name, symbol_kind, parent, "
                "start_line, end_line, signature, doc, embed_key) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    source_id,
                    file_id,
                    art.kind,
                    None if art.ident == art.qualified_name else art.ident,
                    art.name,
                    art.qualified_name,
                    art.symbol_kind,
                    art.parent,
                    art.start_line,
                    art.end_line,
                    art.signature,
                    art.doc,
                    key,
                ),
            )
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
            "INSERT OR IGNORE INTO relations(from_id, source_id, kind, target, line, hint) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    ids_by_name.get(r.source, file_artifact) if r.source else file_artifact,
                    source_id,
                    RELATION_CODES[r.kind],
                    r.target,
                    r.line,
                    r.hint,
                )
                for r in new.relations
            ],
        )

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
                    f"SELECT {ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id "
                    "WHERE a.file_id = ? ORDER BY a.id",
                    (file_id,),
                )
            ]
            tokens = tokenize(path, unpack(blob).split("\n"), rows)
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

    # -- artifacts ------------------------------------------------------------------------

    # -- lexical search -------------------------------------------------------------------

    def _fts(
        self, table: str, weights: tuple[float, ...], terms: Sequence[str], source_ids: Sequence[int], limit: int
    ) -> list[tuple[int, float]]:
        query = fts_query(terms)
        if not query or not source_ids:
            return []
        if self.resident:
            lexicon = self._lexicon(table)
            if lexicon is not None:
                from repolens.storage.sqlite.lexicon import stem_words

                # FTS5 scores each quoted term as a phrase; a word its tokenizer splits in two
                # (none that ``parsing.tokens`` makes) is a real phrase: SQL answers that query.
                stems = stem_words([t.replace('"', "") for t in terms if t.replace('"', "")])
                if all(len(s) == 1 for s in stems):
                    return lexicon.search([s[0] for s in stems], source_ids, limit)
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

    def _lexicon(self, table: str) -> Lexicon | None:
        """The in-memory postings of ``table`` if they are current; else None, and a build starts."""
        key = tuple(self._conn.execute(_LEXICAL_KEY).fetchone())
        cached = self._lexicons.get(table)
        if cached is not None and cached[0] == key:
            return cached[1]  # None: this state's table is too large to hold (lexicon.MAX_TOKENS)
        with self._lexicon_lock:
            if self._lexicon_builder is None or not self._lexicon_builder.is_alive():
                self._lexicon_builder = threading.Thread(
                    target=self._build_lexicons_logged, name="repolens-lexicon", daemon=True
                )
                self._lexicon_builder.start()
        return None

    def lexicons_current(self) -> bool:
        """Whether lexical searches are answered from memory now (a resident store with a current build)."""
        key = tuple(self._conn.execute(_LEXICAL_KEY).fetchone())
        current = [self._lexicons.get(table) for table in FTS_TABLES]
        return all(c is not None and c[0] == key and c[1] is not None for c in current)

    def _build_lexicons_logged(self) -> None:
        try:
            self.build_lexicons()
        except (sqlite3.Error, ValueError):
            # Searches keep going through SQL; the next one tries again.
            log.warning("could not build the in-memory lexical index of %s", self.path, exc_info=True)

    def build_lexicons(self) -> None:
        """Read both FTS tables' postings into memory now (a resident store does it in the background)."""
        from repolens.storage.sqlite.lexicon import build

        conn = connect(self.path)
        try:
            # The FTS pages are read once, in order: a small page cache (not 64 MiB) keeps the peak down.
            conn.execute(f"PRAGMA cache_size=-{LEXICON_BUILD_CACHE_KIB}")
            conn.execute("BEGIN")  # one snapshot: the key and the postings it stands for
            key = tuple(conn.execute(_LEXICAL_KEY).fetchone())
            source_ids = [int(r[0]) for r in conn.execute("SELECT id FROM sources")]
            built = {
                table: (key, build(conn, table, columns, weights, source_ids))
                for table, (columns, weights) in FTS_TABLES.items()
            }
            conn.execute("COMMIT")
        finally:
            conn.close()
        self._lexicons.update(built)

    def lexical_units(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(artifact id, BM25 score) of symbol and chunk units matching any term, best first."""
        return self._fts("units_fts", UNIT_WEIGHTS, terms, source_ids, limit)

    def lexical_files(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(file id, BM25 score) of whole files matching any term, best first."""
        return self._fts("files_fts", FILE_WEIGHTS, terms, source_ids, limit)

    # -- relations ------------------------------------------------------------------------

    # -- vectors --------------------------------------------------------------------------

    def put_vectors(self, model: str, items: Sequence[tuple[int, bytes]]) -> None:
        """Store encoded vectors by embed key."""
        with self._write() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO vectors(embed_key, model, vec) VALUES (?, ?, ?)",
                [(key, self._model_id(model, create=True), blob) for key, blob in items],
            )
            conn.execute(_BUMP_VECTORS)

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
            if cur.rowcount:
                conn.execute(_BUMP_VECTORS)
            return cur.rowcount

    def _matrix_stem(self, source_id: int, model: str) -> Path | None:
        """Where the source's matrix files for ``model`` in the current state are (None: no such source)."""
        lexical, vectors, public_id = self._conn.execute(_MATRIX_KEY, (source_id,)).fetchone()
        if public_id is None:
            return None
        # Readable and collision-proof without hashlib (OpenSSL's loading is ~10 ms of a shell search).
        model_key = f"{re.sub(r'[^A-Za-z0-9_]+', '_', model)[:48]}-{zlib.crc32(model.encode()):08x}"
        return self.path.parent / MATRIX_DIR / f"{public_id}-{model_key}-{lexical or 0}-{vectors or 0}"

    def vector_counts_cached(self, source_id: int, model: str) -> tuple[int, int]:
        """``vector_counts``, from the source's matrix files when they are current (a search from the
        shell then scans no rows), else as the shared read side computes and caches it."""
        gen = self.generation()
        cached = self._count_cache.get((source_id, model))
        if cached is not None and cached[0] == gen:
            return cached[1]
        stem = self._matrix_stem(source_id, model)
        if stem is not None:
            try:
                ready, total = stem.with_suffix(".counts").read_text().split()
            except (OSError, ValueError):
                pass  # not written yet (or half-written): counted in SQL
            else:
                self._count_cache[(source_id, model)] = (gen, (int(ready), int(total)))
                return int(ready), int(total)
        return super().vector_counts_cached(source_id, model)

    def vector_matrix(self, source_id: int, model: str, dim: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """(artifact ids, unit-length float32 rows) of a source's vectors from ``model``.

        Read memory-mapped from the source's matrix files when they match the database's state,
        else decoded from the vectors table and written for the next reader (see the module notes).
        """
        import numpy as np

        from repolens.storage.codec import decode_many

        stem = self._matrix_stem(source_id, model)
        if stem is None:  # no such source
            return np.zeros(0, dtype=np.int64), np.zeros((0, dim), dtype=np.float32)
        folder, prefix = stem.parent, stem.name.rsplit("-", 2)[0] + "-"
        ids_file, vec_file = stem.with_suffix(".ids.npy"), stem.with_suffix(".vec.npy")
        try:
            ids = np.load(ids_file, mmap_mode="r")
            matrix = np.load(vec_file, mmap_mode="r")
            if matrix.shape == (len(ids), dim) and stem.with_suffix(".counts").exists():
                return ids, matrix
        except (OSError, ValueError):
            pass  # missing, half-written by a killed process, or unreadable: rebuilt below
        ids, blobs = self.vectors((source_id,), model)
        matrix = decode_many(blobs, dim)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            # An older state of this source's matrix. Names compared as strings: a glob pattern is compiled to
            # a regex per call, and every source's prefix is new (~6 ms of each cold index).
            for name in os.listdir(folder):
                if name.startswith(prefix) and name.endswith((".npy", ".counts")):
                    (folder / name).unlink(missing_ok=True)
            # The matrix first and the ids last, each renamed into place: a reader that finds the
            # ids file finds a whole matrix file of the same state beside it. The unit counts
            # (``vector_counts``: ready = the matrix's rows) go last of all.
            _, total = self.vector_counts(source_id, model)
            counts = f"{len(ids)} {total}".encode()
            for target, payload in ((vec_file, matrix), (ids_file, ids), (stem.with_suffix(".counts"), counts)):
                partial = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
                with partial.open("wb") as out:
                    if isinstance(payload, bytes):
                        out.write(payload)
                    else:
                        np.save(out, payload)
                os.replace(partial, target)
        except OSError:
            log.warning("could not write the vector matrix of source %s to %s", source_id, folder, exc_info=True)
        return ids, matrix

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
            conn.execute(_BUMP_LEXICAL)
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
