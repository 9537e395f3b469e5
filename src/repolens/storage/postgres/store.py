"""The scale-out backend: PostgreSQL with pgvector holds everything the SQLite file holds, so any
number of API replicas and indexing workers on other hosts can share one index.

Design notes:

* Same rows, same ids, same answers as SQLite: the read side is shared (``storage/relational.py``).
  Names are ``citext`` so that ``name = ?`` is case-insensitive as ``COLLATE NOCASE`` is there.
* Lexical search is BM25 computed in SQL over postings tables, with exactly FTS5's formula
  (``k1`` 1.2, ``b`` 0.75, column weights folded into the term frequency, the whole row's length
  as the document length, a query stem counted as often as it occurs), over the same tokens
  (``parsing.tokens``) stemmed by Porter's algorithm under FTS5's length rule (snowball's "porter"
  and FTS5's own differ on a few -ly/-y words: 44 of ~68,800 terms on the benchmark corpora).
  Document counts and lengths come from the searched sources (FTS5 counts its whole
  table): on one corpus the two are the same; across many they move single corpora by a few
  hundredths and the overall NDCG not at all (bench/BACKENDS.md).
* Vectors live in pgvector as ``halfvec`` (half the bytes of ``vector``, the same ranking), one
  HNSW cosine index per embedding model (an expression index: models differ in dimension).
  ``hnsw.iterative_scan`` keeps a search scoped to a few sources from coming back short.
* Bulk writes use ``COPY`` with ids drawn from the sequences up front: a repository's files,
  artifacts, relations and postings are millions of rows.
* ``generation`` is a sequence bumped *after* each content commit: a reader that sees the new
  number sees the new rows, so caches keyed on it are never fresher-keyed than their data, and
  no row is locked by every writer (a counter row would serialize all workers).
* One connection per thread, as with SQLite; ``snapshot`` is a REPEATABLE READ transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg.errors
from psycopg import sql as pgsql

from repolens.errors import InvalidInput, StorageError
from repolens.storage import migrations
from repolens.storage.base import NewFile, Tokenize
from repolens.storage.cache import GenerationCache
from repolens.storage.database import SqlStore
from repolens.storage.relational import (
    NO_MODEL,
    RELATION_CODES,
    chunks,
    stored_content,
)

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

# BM25 as FTS5 computes it (fts5_aux.c): the same constants, so rankings agree across backends.
BM25_K1 = 1.2
BM25_B = 0.75
UNIT_NAME_WEIGHT, UNIT_BODY_WEIGHT = 6, 1  # the SQLite backend's UNIT_WEIGHTS
FILE_PATH_WEIGHT, FILE_SYMBOLS_WEIGHT, FILE_BODY_WEIGHT = 3, 2, 1  # ... and FILE_WEIGHTS
# HNSW breadth at query time: pgvector's default of 40 misses ~8% of the true top 10 on code
# units; 200 keeps recall@10 above 0.95 (bench/SCALE.md) for a millisecond or two more.
HNSW_EF_SEARCH = 200
# FTS5's porter tokenizer stems only tokens of 3 to 64 characters (fts5_tokenize.c).
FTS5_PORTER_MIN, FTS5_PORTER_MAX = 3, 64
STATS_CACHE_SCOPES = 1_000  # distinct searched source sets whose BM25 statistics are kept
COPY_FLUSH_FILES = 200  # files buffered before their rows are copied in: bounded memory per batch
_CLAIM_LOCK = 0x7265706F  # advisory lock id ("repo") that makes job claims take turns
_TS = Any  # psycopg's own row type


@lru_cache(maxsize=1 << 16)
def _translate(query: str) -> str:
    """The shared SQL dialect to psycopg's: ``?`` -> ``%s``, no ``COLLATE NOCASE`` (citext)."""
    return query.replace("%", "%%").replace(" COLLATE NOCASE", "").replace("?", "%s")


def _lost(exc: psycopg.OperationalError) -> StorageError:
    # A server restart or a terminated backend: the connection is now closed, and the next
    # use of ``_conn`` opens a new one; this request fails as "unavailable", not as a crash.
    return StorageError(f"lost the connection to PostgreSQL: {str(exc).strip()}")


def _refused(exc: psycopg.DataError) -> Exception:
    # PostgreSQL's text type cannot hold U+0000, which JSON and URLs can carry and SQLite stores:
    # such text is the caller's to fix (a 400 in every dialect), not a server fault.
    if "NUL (0x00)" in str(exc):
        return InvalidInput("text must not contain NUL (\\u0000) characters")
    return exc


class PgConn:
    """A psycopg connection that speaks the shared dialect (``?`` placeholders)."""

    def __init__(self, raw: psycopg.Connection[_TS]) -> None:
        self.raw = raw

    def execute(self, query: str, params: Sequence[Any] = (), /) -> psycopg.Cursor[_TS]:
        try:
            return self.raw.execute(_translate(query), tuple(params))
        except psycopg.OperationalError as exc:
            raise _lost(exc) from exc
        except psycopg.DataError as exc:
            raise _refused(exc) from exc

    def executemany(self, query: str, params: Sequence[Sequence[Any]], /) -> None:
        if params:
            try:
                with self.raw.cursor() as cur:
                    cur.executemany(_translate(query), [tuple(p) for p in params])
            except psycopg.OperationalError as exc:
                raise _lost(exc) from exc
            except psycopg.DataError as exc:
                raise _refused(exc) from exc

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


_stem_local = threading.local()


@lru_cache(maxsize=1 << 17)
def stem(token: str) -> str:
    """Porter stem of one lower-case token, as FTS5's ``porter`` tokenizer makes it (which passes
    tokens shorter than 3 or longer than 64 characters through unchanged)."""
    if not FTS5_PORTER_MIN <= len(token) <= FTS5_PORTER_MAX:
        return token
    stemmer = getattr(_stem_local, "stemmer", None)
    if stemmer is None:  # snowball stemmers keep state: one per thread
        import snowballstemmer

        stemmer = _stem_local.stemmer = snowballstemmer.stemmer("porter")
    return str(stemmer.stemWord(token))


def term_counts(text: str) -> tuple[dict[str, int], int]:
    """(stemmed term -> frequency, token count) of a space-separated token string."""
    counts: dict[str, int] = {}
    n = 0
    for token in text.split():
        term = stem(token)
        counts[term] = counts.get(term, 0) + 1
        n += 1
    return counts, n


def query_stems(terms: Sequence[str]) -> dict[str, int]:
    """Stemmed query terms with how often each occurs: FTS5 scores every quoted query term on its
    own, so two words with one stem ("compressed ... compression") count twice there too."""
    counts: dict[str, int] = {}
    for term in terms:
        for part in term.lower().split():
            stemmed = stem(part)
            counts[stemmed] = counts.get(stemmed, 0) + 1
    return counts


class PostgresStore(SqlStore):
    """``Store`` and ``Registry`` on a PostgreSQL database with pgvector."""

    _integrity_errors = (psycopg.errors.IntegrityError,)
    _skip_locked = " FOR UPDATE SKIP LOCKED"

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self._local = threading.local()
        # (owner thread, connection): the server's pool threads come and go, and a thread that
        # exited cannot use its connection again, so it is closed when the next one opens.
        self._connections: list[tuple[threading.Thread, psycopg.Connection[_TS]]] = []
        self._connections_lock = threading.Lock()
        self._dims: dict[int, int] = {}
        self._stats_cache: GenerationCache[tuple[int, ...], tuple[float, float, float, float]] = GenerationCache(
            STATS_CACHE_SCOPES
        )
        self._init_caches()
        if migrate and self._schema_revision() != migrations.HEAD:
            self.schema_migration = migrations.upgrade("postgresql", self._plain_connection)

    def _schema_revision(self) -> str | None:
        # A plain connection: the per-thread ones need the vector type a migration creates.
        with self._plain_connection() as conn:
            conn.autocommit = True
            try:
                row = conn.execute(f"SELECT version_num FROM {migrations.VERSION_TABLE}").fetchone()
            except psycopg.errors.UndefinedTable:  # a new database, or one made before migrations
                return None
        return None if row is None else str(row[0])

    def _plain_connection(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url)
        except psycopg.OperationalError as exc:
            raise StorageError(f"cannot reach PostgreSQL at {_redacted(self.url)}: {exc}") from exc

    @property
    def _conn(self) -> PgConn:
        conn: PgConn | None = getattr(self._local, "conn", None)
        if conn is None or conn.raw.closed:
            try:
                raw = psycopg.connect(self.url, autocommit=True)
            except psycopg.OperationalError as exc:
                raise StorageError(f"cannot reach PostgreSQL at {_redacted(self.url)}: {exc}") from exc
            from pgvector.psycopg import register_vector

            register_vector(raw)  # vector and halfvec values as numpy arrays / HalfVector
            raw.execute(f"SET hnsw.ef_search = {HNSW_EF_SEARCH}")
            raw.execute("SET hnsw.iterative_scan = relaxed_order")
            conn = PgConn(raw)
            self._local.conn = conn
            with self._connections_lock:
                live = []
                for owner, other in self._connections:
                    if owner.is_alive() and not other.closed:
                        live.append((owner, other))
                    else:
                        other.close()
                self._connections = [*live, (threading.current_thread(), raw)]
        return conn

    def open_connections(self) -> int:
        """Connections this store holds open (one per live thread that used it)."""
        with self._connections_lock:
            return sum(1 for _, raw in self._connections if not raw.closed)

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._connections_lock:
            for _, raw in self._connections:
                raw.close()
            self._connections.clear()
        self._local = threading.local()

    @contextmanager
    def _write(self, *, content: bool = True) -> Iterator[PgConn]:
        """A write transaction; a content write bumps the generation once it is committed."""
        conn = self._conn
        try:
            conn.raw.execute("BEGIN")
        except psycopg.Error as exc:
            raise StorageError(f"could not start a transaction: {exc}") from exc
        try:
            yield conn
        except BaseException:
            conn.raw.execute("ROLLBACK")
            raise
        else:
            conn.raw.execute("COMMIT")
            if content:
                conn.raw.execute("SELECT nextval('content_generation')")

    def _serialize_claims(self, conn: Any) -> None:
        conn.execute(f"SELECT pg_advisory_xact_lock({_CLAIM_LOCK})")

    def generation(self) -> tuple[int, int]:
        """Changes after every content commit, in any process on any host (cache key)."""
        row = self._conn.raw.execute("SELECT last_value, is_called FROM content_generation").fetchone()
        return (int(row[0]) if row and row[1] else 0), 0

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees one committed state of the database. Nests as a no-op."""
        conn = self._conn
        if conn.in_transaction:
            yield
            return
        conn.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        try:
            yield
        finally:
            conn.raw.execute("COMMIT")

    # -- sources and files ----------------------------------------------------------------

    def delete_source(self, source_id: int, *, tokenize: Tokenize) -> None:
        """Remove a source, its files, artifacts, relations and postings (vectors are shared)."""
        with self._write() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM files WHERE source_id = ?", (source_id,))]
            self._delete_files(conn, ids)
            conn.execute("DELETE FROM sources WHERE id = ?", (source_id,))

    @staticmethod
    def _delete_files(conn: PgConn, file_ids: list[int]) -> None:
        for part in chunks(file_ids, 1000):
            conn.raw.execute("DELETE FROM unit_terms WHERE file_id = ANY(%s)", (part,))
            conn.raw.execute("DELETE FROM file_terms WHERE file_id = ANY(%s)", (part,))
            conn.raw.execute("DELETE FROM files WHERE id = ANY(%s)", (part,))  # artifacts, relations cascade

    def replace_files(
        self, source_id: int, *, upserts: Iterable[NewFile], deletes: Iterable[str], tokenize: Tokenize
    ) -> int:
        """Write changed files and drop deleted ones in one transaction; return files written."""
        written = 0
        with self._write() as conn:
            gone = list(deletes)
            if gone:
                rows = conn.raw.execute(
                    "SELECT id FROM files WHERE source_id = %s AND path = ANY(%s)", (source_id, gone)
                ).fetchall()
                self._delete_files(conn, [r[0] for r in rows])
            batch: list[NewFile] = []
            for new in upserts:
                batch.append(new)
                written += 1
                if len(batch) >= COPY_FLUSH_FILES:
                    self._copy_files(conn, source_id, batch)
                    batch = []
            self._copy_files(conn, source_id, batch)
            conn.execute(
                "UPDATE sources SET file_count = (SELECT count(*) FROM files WHERE source_id = ?), "
                "artifact_count = (SELECT count(*) FROM artifacts WHERE source_id = ?) WHERE id = ?",
                (source_id, source_id, source_id),
            )
        return written

    @staticmethod
    def _ids(conn: PgConn, sequence: str, n: int) -> list[int]:
        if n == 0:
            return []
        rows = conn.raw.execute("SELECT nextval(%s) FROM generate_series(1, %s)", (sequence, n)).fetchall()
        return [int(r[0]) for r in rows]

    def _copy_files(self, conn: PgConn, source_id: int, batch: list[NewFile]) -> None:
        if not batch:
            return
        old = conn.raw.execute(
            "SELECT id FROM files WHERE source_id = %s AND path = ANY(%s)", (source_id, [f.path for f in batch])
        ).fetchall()
        self._delete_files(conn, [r[0] for r in old])
        file_ids = self._ids(conn, "files_id_seq", len(batch))
        art_ids = iter(self._ids(conn, "artifacts_id_seq", sum(len(f.artifacts) for f in batch)))
        files: list[tuple[Any, ...]] = []
        artifacts: list[tuple[Any, ...]] = []
        relations: list[tuple[Any, ...]] = []
        units: list[tuple[Any, ...]] = []
        file_terms: list[tuple[Any, ...]] = []
        for file_id, new in zip(file_ids, batch, strict=True):
            t = new.tokens
            path_tf, n_path = term_counts(t.path)
            sym_tf, n_sym = term_counts(t.symbols)
            body_tf, n_body = term_counts(t.body)
            file_len = 1 + n_path + n_sym + n_body  # + the source column FTS5 has
            file_terms.extend(
                (term, source_id, file_id, path_tf.get(term, 0), sym_tf.get(term, 0), body_tf.get(term, 0), file_len)
                for term in path_tf.keys() | sym_tf.keys() | body_tf.keys()
            )
            unit_docs = unit_tokens = 0
            ids_by_name: dict[str, int] = {}
            file_artifact = 0
            for art, (unit_name, unit_body), key in zip(new.artifacts, t.units, new.embed_keys, strict=True):
                art_id = next(art_ids)
                artifacts.append(
                    (
                        art_id,
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
                    )
                )
                if art.kind == "File":
                    file_artifact = art_id
                    continue
                if art.kind == "Symbol":
                    ids_by_name.setdefault(art.qualified_name, art_id)
                name_tf, n_name = term_counts(unit_name)
                ubody_tf, n_ubody = term_counts(unit_body)
                unit_len = 1 + n_name + n_ubody
                unit_docs += 1
                unit_tokens += unit_len
                units.extend(
                    (term, source_id, art_id, file_id, name_tf.get(term, 0), ubody_tf.get(term, 0), unit_len)
                    for term in name_tf.keys() | ubody_tf.keys()
                )
            files.append(
                (
                    file_id,
                    source_id,
                    new.path,
                    new.language,
                    new.sha,
                    new.size,
                    new.n_lines,
                    new.parser,
                    stored_content(new),
                    file_len,
                    unit_docs,
                    unit_tokens,
                )
            )
            seen: set[tuple[int, int, str, int]] = set()
            for r in new.relations:
                from_id = ids_by_name.get(r.source, file_artifact) if r.source else file_artifact
                edge = (from_id, RELATION_CODES[r.kind], r.target, r.line)
                if edge not in seen:  # the primary key: SQLite's INSERT OR IGNORE
                    seen.add(edge)
                    relations.append((*edge, source_id, r.hint))
        self._copy(
            conn,
            "files",
            "id, source_id, path, language, sha, size, n_lines, parser, content, lex_tokens, unit_docs, unit_tokens",
            files,
        )
        self._copy(
            conn,
            "artifacts",
            "id, source_id, file_id, kind, ident, name, qualified_name, symbol_kind, "
            "parent, start_line, end_line, signature, doc, embed_key",
            artifacts,
        )
        self._copy(conn, "relations", "from_id, kind, target, line, source_id, hint", relations)
        self._copy(conn, "unit_terms", "term, source_id, unit_id, file_id, tf_name, tf_body, doc_len", units)
        self._copy(conn, "file_terms", "term, source_id, file_id, tf_path, tf_symbols, tf_body, doc_len", file_terms)

    @staticmethod
    def _copy(conn: PgConn, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        statement = pgsql.SQL("COPY {} ({}) FROM STDIN").format(pgsql.Identifier(table), pgsql.SQL(columns))
        with conn.raw.cursor() as cur, cur.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)

    # -- lexical search -------------------------------------------------------------------

    def _scope_stats(self, source_ids: Sequence[int]) -> tuple[float, float, float, float]:
        """(unit docs, mean unit length, file docs, mean file length) of the searched sources,
        computed once per content generation (both lexical queries of a search need them)."""
        generation = self.generation()
        self._stats_cache.sync(generation)
        key = tuple(sorted(source_ids))
        cached = self._stats_cache.get(key)
        if cached is not None:
            return cached
        row = self._conn.raw.execute(
            "SELECT coalesce(sum(unit_docs), 0), coalesce(sum(unit_tokens), 0), count(*), "
            "coalesce(sum(lex_tokens), 0) FROM files WHERE source_id = ANY(%s)",
            (list(source_ids),),
        ).fetchone()
        assert row is not None  # an aggregate always returns a row
        unit_docs, unit_tokens, file_docs, file_tokens = (float(x) for x in row)
        stats = (unit_docs, unit_tokens / max(unit_docs, 1.0), file_docs, file_tokens / max(file_docs, 1.0))
        self._stats_cache.put(key, stats, generation)
        return stats

    def _bm25(
        self,
        table: str,
        doc: str,
        tf: str,
        terms: Sequence[str],
        source_ids: Sequence[int],
        n_docs: float,
        avgdl: float,
        limit: int,
    ) -> list[tuple[int, float]]:
        stems = query_stems(terms)
        if not stems or not source_ids or n_docs <= 0:
            return []
        query = (
            f"WITH p AS (SELECT {doc} AS doc, term, ({tf})::float8 AS tf, doc_len FROM {table} "
            "WHERE term = ANY(%(terms)s) AND source_id = ANY(%(sources)s)), "
            "df AS (SELECT term, count(*)::float8 AS n FROM p GROUP BY term), "
            "q AS (SELECT * FROM unnest(%(terms)s::text[], %(weights)s::float8[]) AS q(term, w)) "
            "SELECT p.doc, sum(q.w * greatest(ln((%(n)s - df.n + 0.5) / (df.n + 0.5)), 1e-6) * (p.tf * (%(k1)s + 1)) "
            "/ (p.tf + %(k1)s * (1 - %(b)s + %(b)s * p.doc_len / %(avgdl)s))) AS score "
            "FROM p JOIN df USING (term) JOIN q USING (term) GROUP BY p.doc ORDER BY score DESC, p.doc LIMIT %(limit)s"
        )
        params = {
            "terms": list(stems),
            "weights": [float(w) for w in stems.values()],
            "sources": list(source_ids),
            "n": n_docs,
            "k1": BM25_K1,
            "b": BM25_B,
            "avgdl": max(avgdl, 1.0),
            "limit": limit,
        }
        try:
            rows = self._conn.raw.execute(query, params).fetchall()
        except psycopg.Error as exc:
            raise StorageError(f"lexical search failed: {exc}") from exc
        return [(int(r[0]), float(r[1])) for r in rows]

    def lexical_units(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(artifact id, BM25 score) of symbol and chunk units matching any term, best first."""
        docs, avgdl, _, _ = self._scope_stats(source_ids) if source_ids else (0.0, 0.0, 0.0, 0.0)
        tf = f"{UNIT_NAME_WEIGHT} * tf_name + {UNIT_BODY_WEIGHT} * tf_body"
        return self._bm25("unit_terms", "unit_id", tf, terms, source_ids, docs, avgdl, limit)

    def lexical_files(self, terms: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(file id, BM25 score) of whole files matching any term, best first."""
        _, _, docs, avgdl = self._scope_stats(source_ids) if source_ids else (0.0, 0.0, 0.0, 0.0)
        tf = f"{FILE_PATH_WEIGHT} * tf_path + {FILE_SYMBOLS_WEIGHT} * tf_symbols + {FILE_BODY_WEIGHT} * tf_body"
        return self._bm25("file_terms", "file_id", tf, terms, source_ids, docs, avgdl, limit)

    # -- vectors --------------------------------------------------------------------------

    def _model_dim(self, model_id: int) -> int:
        dim = self._dims.get(model_id)
        if dim is None:
            row = self._conn.raw.execute("SELECT dim FROM models WHERE id = %s", (model_id,)).fetchone()
            dim = self._dims[model_id] = int(row[0]) if row and row[0] else 0
        return dim

    def _ensure_model(self, name: str, dim: int) -> int:
        """The model's id, registering it and its HNSW index on first use."""
        model_id = self._model_id(name)
        if model_id != NO_MODEL and self._model_dim(model_id):
            return model_id
        conn = self._conn.raw
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext('repolens.models'))")
            conn.execute("INSERT INTO models(name, dim) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING", (name, dim))
            row = conn.execute("SELECT id, dim FROM models WHERE name = %s", (name,)).fetchone()
            assert row is not None  # inserted just above, under the lock
            model_id, stored = int(row[0]), int(row[1])
            if stored != dim:
                raise StorageError(f"embedding model {name!r} is stored with {stored} dimensions, not {dim}")
            conn.execute(
                pgsql.SQL(
                    "CREATE INDEX IF NOT EXISTS {} ON vectors USING hnsw ((vec::halfvec({})) halfvec_cosine_ops) "
                    "WHERE model = {}"
                ).format(pgsql.Identifier(f"vectors_hnsw_{model_id}"), pgsql.Literal(dim), pgsql.Literal(model_id))
            )
        self._model_ids[name] = model_id
        self._dims[model_id] = dim
        return model_id

    def put_vectors(self, model: str, items: Sequence[tuple[int, bytes]]) -> None:
        """Store encoded vectors (int8 + scale, see indexing/vectors.py) by embed key."""
        from pgvector import HalfVector

        from repolens.storage.codec import decode_many

        if not items:
            return
        dim = len(items[0][1]) - 4
        model_id = self._ensure_model(model, dim)
        matrix = decode_many([blob for _, blob in items], dim)
        with self._write() as conn, conn.raw.cursor() as cur:
            cur.executemany(
                "INSERT INTO vectors(embed_key, model, vec) VALUES (%s, %s, %s) "
                "ON CONFLICT (embed_key, model) DO UPDATE SET vec = excluded.vec",
                [(key, model_id, HalfVector(vec)) for (key, _), vec in zip(items, matrix, strict=True)],
            )

    def vectors(self, source_ids: Sequence[int], model: str) -> tuple[npt.NDArray[np.int64], list[bytes]]:
        """(artifact ids, encoded vectors) for ``model`` of every unit in the given sources."""
        import numpy as np

        from repolens.storage.codec import encode

        rows = self._conn.raw.execute(
            "SELECT a.id, v.vec FROM artifacts a JOIN vectors v ON v.embed_key = a.embed_key AND v.model = %s "
            "WHERE a.source_id = ANY(%s) ORDER BY a.id",
            (self._model_id(model), list(source_ids)),
        ).fetchall()
        blobs = [encode(r[1].to_numpy().astype(np.float32)) for r in rows]
        return np.array([r[0] for r in rows], dtype=np.int64), blobs

    def nearest_units(
        self, source_ids: Sequence[int], model: str, query: npt.NDArray[np.float32], limit: int
    ) -> list[tuple[int, float]]:
        """(artifact id, cosine similarity) of the units nearest to ``query`` (HNSW, approximate)."""
        from pgvector import HalfVector

        model_id = self._model_id(model)
        dim = self._model_dim(model_id) if model_id != NO_MODEL else 0
        if not dim or not source_ids:
            return []
        # The model id is a literal, like the dimension: as a parameter, a generic plan could not
        # match the model's partial HNSW index and would stop using it after a few calls.
        query_sql = pgsql.SQL(
            "SELECT a.id, 1 - (v.vec::halfvec({d}) <=> %(q)s) AS sim FROM vectors v "
            "JOIN artifacts a ON a.embed_key = v.embed_key "
            "WHERE v.model = {m} AND a.source_id = ANY(%(s)s) ORDER BY v.vec::halfvec({d}) <=> %(q)s LIMIT %(k)s"
        ).format(d=pgsql.Literal(dim), m=pgsql.Literal(model_id))
        rows = self._conn.raw.execute(query_sql, {"q": HalfVector(query), "s": list(source_ids), "k": limit}).fetchall()
        # Iterative scans return neighbours in relaxed order; fusion uses ranks, so sort exactly.
        return sorted(((int(r[0]), float(r[1])) for r in rows), key=lambda hit: -hit[1])

    def exact_nearest_units(
        self, source_ids: Sequence[int], model: str, query: npt.NDArray[np.float32], limit: int
    ) -> list[tuple[int, float]]:
        """``nearest_units`` without the index (the ground truth its recall is measured against)."""
        conn = self._conn.raw
        with conn.transaction():
            conn.execute("SET LOCAL enable_indexscan = off")
            conn.execute("SET LOCAL enable_bitmapscan = off")
            return self.nearest_units(source_ids, model, query, limit)

    def collect_vector_garbage(self) -> int:
        """Drop vectors no artifact refers to any more; return how many."""
        with self._write() as conn:
            cur = conn.raw.execute(
                "DELETE FROM vectors v WHERE NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.embed_key = v.embed_key)"
            )
            return cur.rowcount

    def compact(self) -> None:
        """Drop orphaned vectors (autovacuum gives the space back)."""
        self.collect_vector_garbage()

    def ensure_index_version(self, version: str) -> bool:
        """Forget every file if the parser/tokenizer fingerprint changed; True if it did."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'index_version'").fetchone()
        if row is not None and row[0] == version:
            return False
        with self._write() as conn:
            conn.raw.execute("SELECT pg_advisory_xact_lock(hashtext('repolens.index_version'))")
            again = conn.execute("SELECT value FROM meta WHERE key = 'index_version'").fetchone()
            if again is not None and again[0] == version:  # another process got here first
                return False
            if again is not None:
                conn.raw.execute("TRUNCATE unit_terms, file_terms")
                conn.raw.execute("DELETE FROM files")
                conn.execute(
                    "UPDATE sources SET state = 'New', state_reason = 'index format changed: re-index needed', "
                    "file_count = 0, artifact_count = 0"
                )
            conn.execute(
                "INSERT INTO meta(key, value) VALUES ('index_version', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (version,),
            )
        return row is not None

    def take_quota(self, bucket: str, window_start: int, limit: int) -> int | None:
        """Count one request in a shared rate-limit window (see access/ratelimit.py)."""
        conn = self._conn.raw
        row = conn.execute(
            "INSERT INTO rate_windows(bucket, window_start, used) VALUES (%s, %s, 1) "
            "ON CONFLICT (bucket, window_start) DO UPDATE SET used = rate_windows.used + 1 "
            "WHERE rate_windows.used < %s RETURNING used",
            (bucket, window_start, limit),
        ).fetchone()
        if row is not None and row[0] == 1:  # a new window: old ones are history now
            conn.execute("DELETE FROM rate_windows WHERE bucket = %s AND window_start < %s", (bucket, window_start))
        return int(row[0]) if row is not None and row[0] <= limit else None

    def size_bytes(self) -> int:
        """Bytes on disk of the database."""
        row = self._conn.raw.execute("SELECT pg_database_size(current_database())").fetchone()
        return int(row[0]) if row else 0


def _redacted(url: str) -> str:
    """The URL without its password, for error messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
