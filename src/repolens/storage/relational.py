"""What the SQLite and PostgreSQL backends share: the read side of the ``Store`` and the
``Registry`` (``storage/registry.py``), written once in the SQL both dialects speak.

Each backend supplies a connection per thread (``_conn``), a write transaction (``_write``),
its content ``generation`` and everything that differs: schema, the write path of files,
lexical search and vectors. PostgreSQL's connection translates ``?`` placeholders and drops
``COLLATE NOCASE`` (its name columns are ``citext``, case-insensitive by type).
"""

from __future__ import annotations

import secrets
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from repolens.domain import Artifact, IndexedFile, Relation, RelationKind, Source
from repolens.errors import Conflict, StorageError
from repolens.storage.cache import GenerationCache
from repolens.storage.migrations import Migration
from repolens.storage.registry import RegistryMixin

if TYPE_CHECKING:
    from repolens.storage.base import NewFile

# Relation kinds are stored as small integers: the table has tens of thousands of rows per repo.
RELATION_KINDS: tuple[RelationKind, ...] = ("calls", "references", "imports", "inherits")
RELATION_CODES: dict[str, int] = {k: i for i, k in enumerate(RELATION_KINDS)}
# Read caches (see storage/cache.py): ~300 bytes per artifact row and 1 char ~ 1 byte of code,
# so together at most ~100 MB, enough for the hot files and candidates of many repositories.
ARTIFACT_CACHE_ROWS = 100_000
TEXT_CACHE_CHARS = 64_000_000
NO_MODEL = -1  # the model id of an embedder no vector was stored for yet (no row has it)
_COMPRESS_LEVEL = 6  # zlib's default: ~12% smaller than level 1 for ~0.3 s more per 18 MB indexed

SOURCE_COLUMNS = (
    "id, public_id, name, location, branch, commit_sha, state, state_reason, description, "
    "created_at, indexed_at, file_count, artifact_count"
)
ARTIFACT_COLUMNS = (
    "a.id, a.source_id, a.file_id, f.path, a.kind, coalesce(a.ident, a.qualified_name), a.name, a.qualified_name, "
    "a.symbol_kind, a.parent, a.start_line, a.end_line, a.signature, a.doc, f.language"
)
_UPDATABLE_SOURCE_FIELDS = frozenset(
    {
        "commit_sha",
        "state",
        "state_reason",
        "description",
        "indexed_at",
        "file_count",
        "artifact_count",
        "branch",
        "location",
    }
)


class Cursor(Protocol):
    """The part of a DB-API cursor the shared code uses."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """A connection that takes ``?`` placeholders (sqlite3's own; PostgreSQL's wrapper)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, params: Sequence[Sequence[Any]], /) -> Any: ...


def pack(text: str) -> bytes:
    """Stored form of a file's text."""
    return zlib.compress(text.encode("utf-8"), _COMPRESS_LEVEL)


def stored_content(new: NewFile) -> bytes:
    """A file's stored form: packed already by a parse worker, or packed now."""
    return new.packed if new.packed is not None else pack(new.content)


def unpack(blob: bytes) -> str:
    """A file's text from its stored form."""
    return zlib.decompress(blob).decode("utf-8")


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """``items`` in slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


class SqlIndexStore(RegistryMixin):
    """The shared read side of the index and the registry; subclasses set ``_integrity_errors`` and
    call ``_init_caches``. ``storage.database.SqlStore`` adds the other stores' mixins."""

    # What opening the store did to the schema (``repolens migrate`` reports it); None: nothing.
    schema_migration: Migration | None = None

    def _init_caches(self) -> None:
        self._model_ids: dict[str, int] = {}
        self._count_cache: dict[tuple[int, str], tuple[tuple[int, int], tuple[int, int]]] = {}
        self._artifact_cache: GenerationCache[int, Artifact] = GenerationCache(ARTIFACT_CACHE_ROWS)
        self._text_cache: GenerationCache[int, str] = GenerationCache(TEXT_CACHE_CHARS, weigh=len)

    def generation(self) -> tuple[int, int]:  # provided by the backend
        raise NotImplementedError

    # -- sources --------------------------------------------------------------------------

    @staticmethod
    def _source(row: tuple[Any, ...]) -> Source:
        return Source(*row)

    def get_source(self, name_or_id: str) -> Source | None:
        """A source by public id, else by name (case-insensitive): an id always finds its own
        source, even if an older database has another source named like it."""
        row = self._conn.execute(f"SELECT {SOURCE_COLUMNS} FROM sources WHERE public_id = ?", (name_or_id,)).fetchone()
        if row is None:
            row = self._conn.execute(
                f"SELECT {SOURCE_COLUMNS} FROM sources WHERE name = ? COLLATE NOCASE", (name_or_id,)
            ).fetchone()
        return self._source(row) if row else None

    def list_sources(self) -> list[Source]:
        """All sources, by name."""
        rows = self._conn.execute(f"SELECT {SOURCE_COLUMNS} FROM sources ORDER BY name COLLATE NOCASE")
        return [self._source(r) for r in rows]

    def create_source(self, *, name: str, location: str, branch: str | None, description: str = "") -> Source:
        """Register a new source in state New."""
        public_id = secrets.token_hex(12)  # 24 hex characters, the shape of a Mongo ObjectId
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO sources(public_id, name, location, branch, description, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (public_id, name, location, branch, description, time.time()),
                )
            except self._integrity_errors:
                raise Conflict(f"a source named {name!r} already exists", [name]) from None
        source = self.get_source(public_id)
        assert source is not None
        return source

    def update_source(self, source_id: int, **fields: object) -> None:
        """Set columns of a source (state, commit_sha, counts, ...)."""
        self._update_row("sources", _UPDATABLE_SOURCE_FIELDS, source_id, fields, content=True)

    # -- files ----------------------------------------------------------------------------

    def file_hashes(self, source_id: int) -> dict[str, str]:
        """path -> content hash of every stored file of a source."""
        return dict(self._conn.execute("SELECT path, sha FROM files WHERE source_id = ?", (source_id,)).fetchall())

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
        text = unpack(row[0])
        self._text_cache.put(file_id, text, generation)
        return text

    def files(self, source_ids: Sequence[int]) -> list[IndexedFile]:
        """All files of the given sources, by path."""
        marks = ",".join("?" * len(source_ids))
        rows = self._conn.execute(
            f"SELECT id, source_id, path, language, sha, size, n_lines, parser FROM files "
            f"WHERE source_id IN ({marks}) ORDER BY source_id, path",
            tuple(source_ids),
        )
        return [IndexedFile(*r) for r in rows]

    def iter_contents(self, source_ids: Sequence[int]) -> Iterator[tuple[IndexedFile, str]]:
        """Every file of the given sources with its text (for grep)."""
        marks = ",".join("?" * len(source_ids))
        rows = self._conn.execute(
            f"SELECT id, source_id, path, language, sha, size, n_lines, parser, content FROM files "
            f"WHERE source_id IN ({marks}) ORDER BY source_id, path",
            tuple(source_ids),
        )
        for row in rows:
            yield IndexedFile(*row[:8]), unpack(row[8])

    # -- artifacts ------------------------------------------------------------------------

    @staticmethod
    def _artifact(row: tuple[Any, ...]) -> Artifact:
        return Artifact(*row)

    def artifacts_by_id(self, ids: Sequence[int]) -> dict[int, Artifact]:
        """Artifacts by row id (missing ids are simply absent)."""
        generation = self.generation()
        self._artifact_cache.sync(generation)
        out, missing = self._artifact_cache.get_many(ids)
        for chunk in chunks(missing, 500):
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT {ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id WHERE a.id IN ({marks})",
                chunk,
            )
            for row in rows:
                artifact = out[row[0]] = self._artifact(row)
                self._artifact_cache.put(artifact.id, artifact, generation)
        return out

    def artifacts_in_path(self, source_id: int, path: str) -> list[Artifact]:
        """Every artifact of the file at ``path`` in a source, in line order."""
        rows = self._conn.execute(
            f"SELECT {ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id "
            "WHERE a.source_id = ? AND f.path = ? ORDER BY a.start_line, a.end_line DESC",
            (source_id, path),
        )
        return [self._artifact(r) for r in rows]

    def artifacts_in_file_by_id(self, file_id: int) -> list[Artifact]:
        """Every artifact of one file in insertion order (the order tokens were made in)."""
        rows = self._conn.execute(
            f"SELECT {ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id WHERE a.file_id = ? ORDER BY a.id",
            (file_id,),
        )
        return [self._artifact(r) for r in rows]

    def find_artifacts(self, source_ids: Sequence[int], path: str, ident: str) -> list[Artifact]:
        """Artifacts at ``path`` with ``ident`` ('' for the file itself) in the given sources."""
        marks = ",".join("?" * len(source_ids))
        rows = self._conn.execute(
            f"SELECT {ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id "
            f"WHERE a.source_id IN ({marks}) AND f.path = ? AND coalesce(a.ident, a.qualified_name) = ?",
            (*source_ids, path, ident),
        )
        return [self._artifact(r) for r in rows]

    def symbols_named(self, names: Sequence[str], source_ids: Sequence[int]) -> list[Artifact]:
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
                f"SELECT {ARTIFACT_COLUMNS} FROM artifacts a JOIN files f ON f.id = a.file_id "
                f"WHERE a.source_id IN ({marks}) AND a.name COLLATE NOCASE IN ({last_marks}) AND a.kind = 'Symbol'",
                (*source_ids, *lasts),
            )
            if r[6].lower() in wanted or r[7].lower() in wanted
        ]
        return [self._artifact(r) for r in rows]

    # -- relations ------------------------------------------------------------------------

    def relations_from(self, artifact_ids: Sequence[int], kinds: Sequence[str]) -> list[tuple[int, Relation]]:
        """(artifact id, edge) for edges that start in the given artifacts."""
        marks = ",".join("?" * len(artifact_ids))
        k_marks = ",".join("?" * len(kinds))
        rows = self._conn.execute(
            f"SELECT from_id, kind, target, line, hint FROM relations WHERE from_id IN ({marks}) "
            f"AND kind IN ({k_marks}) ORDER BY line",
            (*artifact_ids, *(RELATION_CODES[k] for k in kinds)),
        )
        return [(r[0], Relation(None, RELATION_KINDS[r[1]], r[2], r[3], r[4])) for r in rows]

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
            f"SELECT from_id, kind, target, line, hint FROM relations WHERE source_id IN ({marks}) "
            f"AND target IN ({t_marks}) AND kind IN ({k_marks}) ORDER BY from_id, line",
            (*source_ids, *targets, *(RELATION_CODES[k] for k in kinds)),
        )
        return [(r[0], Relation(None, RELATION_KINDS[r[1]], r[2], r[3], r[4])) for r in rows]

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
            self._conn.execute("INSERT INTO models(name) VALUES (?) ON CONFLICT DO NOTHING", (name,))
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

    def vector_models(self, source_id: int) -> list[tuple[str, int]]:
        """(model, units with a vector from it) for every model that embedded some of a source's units."""
        rows = self._conn.execute(
            "SELECT m.name, count(*) FROM artifacts a JOIN vectors v ON v.embed_key = a.embed_key "
            "JOIN models m ON m.id = v.model WHERE a.source_id = ? AND a.embed_key IS NOT NULL "
            "GROUP BY m.name ORDER BY m.name",
            (source_id,),
        ).fetchall()
        return [(str(r[0]), int(r[1])) for r in rows]

    def vector_counts_cached(self, source_id: int, model: str) -> tuple[int, int]:
        """``vector_counts``, recomputed only when the database changed."""
        gen = self.generation()
        cached = self._count_cache.get((source_id, model))
        if cached is not None and cached[0] == gen:
            return cached[1]
        counts = self.vector_counts(source_id, model)
        self._count_cache[(source_id, model)] = (gen, counts)
        return counts
