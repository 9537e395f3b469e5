"""FTS5's postings held in memory as numpy arrays, and BM25 computed over them exactly as FTS5 does.

A long-lived process (the server, the MCP server, the benchmark) answers the lexical half of
every search from here instead of from SQL: FTS5's ``bm25()`` calls back into the auxiliary
function once per matching row, and a natural-language query over a large repository matches
thousands of rows (10-18 ms of a query on sqlalchemy). Over arrays the same sum is a
``bincount`` (well under a millisecond).

The arrays are read from the FTS5 table itself (``fts5vocab``'s instance view: one row per token
occurrence), so they hold exactly FTS5's tokens, stems and document lengths, and the statistics
are FTS5's: row count, average length and document frequencies over the whole table, whatever
sources a query is scoped to. The score is ``fts5_aux.c``'s ``fts5Bm25Function``:

    idf(t)   = max(ln((N - n(t) + 0.5) / (n(t) + 0.5)), 1e-6)
    f(t, d)  = sum over columns c of weight[c] * (occurrences of t in column c of d)
    score(d) = sum over query phrases t of idf(t) * f(t, d) * (k1 + 1) / (f(t, d) + k1 * (1 - b + b * |d| / avgdl))

with ``N`` the table's rows, ``n(t)`` the rows holding ``t`` in any column, ``|d|`` the row's
tokens in all columns and ``avgdl`` the table's tokens per row. Query terms are stemmed by FTS5's
own tokenizer (a private in-memory FTS5 table), so "connections" finds "connect" exactly as the
SQL path does. Ties are broken by row id; FTS5 leaves their order open.

Reading the instance view takes seconds (2.5-4.5 s for the 16 benchmark corpora, 3.6 million
tokens, on a busy 2-core machine), so the store builds a lexicon in a background thread and
answers through SQL until it is ready (see ``SqliteIndexStore``).
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

# fts5_aux.c's constants (the SQL path uses FTS5's built-in bm25(), which hard-codes them).
BM25_K1 = 1.2
BM25_B = 0.75
BM25_MIN_IDF = 1e-6  # FTS5 replaces a non-positive idf (a term in most rows) with this
# The tokenizer of the FTS5 tables (storage/migrations/versions/0001_baseline.py, FTS_TOKENIZE):
# query terms must be stemmed by the same one. tests/test_lexicon.py checks the two agree.
FTS_TOKENIZE = "porter unicode61 tokenchars '_'"
COLUMN_BITS = 3  # a token's column is packed below its row id: up to 8 columns per table
STEM_CACHE = 1 << 16  # distinct query words whose stems are remembered
TERMS_PER_BATCH = 2_000  # terms whose occurrences are read and folded into postings at a time
# Tables with more tokens than this stay on SQL: a build peaks at ~40 bytes per token (the 16
# benchmark corpora, 3.6 million tokens: ~150 MB for a moment, 25 MB kept), so ~0.8 GB here.
MAX_TOKENS = 20_000_000


@dataclass(frozen=True, slots=True)
class Lexicon:
    """One FTS5 table's postings: for each term, the rows holding it and the score each gets from it."""

    terms: dict[str, int]  # stem -> term number
    starts: npt.NDArray[np.int64]  # term number -> first posting; postings of t: starts[t]:starts[t + 1]
    docs: npt.NDArray[np.int32]  # posting -> row number (an index into ``rowids``)
    # posting -> f * (k1 + 1) / (f + k1 * (1 - b + b * |d| / avgdl)), with f the sum of column
    # weight x occurrences (FTS5's aFreq): everything of a posting's score but the term's idf.
    gains: npt.NDArray[np.float64]
    doc_freq: npt.NDArray[np.int64]  # term number -> rows holding it in any column (FTS5's nHit)
    rowids: npt.NDArray[np.int64]  # row number -> the FTS5 rowid (artifact id or file id)
    sources: npt.NDArray[np.int64]  # row number -> the row's source id (from its ``src`` token)
    rows: int  # N

    def search(self, stems: Sequence[str], source_ids: Sequence[int], limit: int) -> list[tuple[int, float]]:
        """(rowid, BM25 score) of the rows of ``source_ids`` holding any of ``stems``, best first.

        ``stems`` may repeat a stem: FTS5 scores each quoted query term as its own phrase.
        """
        found = [self.terms[s] for s in stems if s in self.terms]
        if not found or not source_ids or limit <= 0:
            return []
        docs: list[npt.NDArray[np.int32]] = []
        gains: list[npt.NDArray[np.float64]] = []
        for t in found:
            lo, hi = int(self.starts[t]), int(self.starts[t + 1])
            n = float(self.doc_freq[t])
            idf = math.log((self.rows - n + 0.5) / (n + 0.5))
            if idf <= 0.0:
                idf = BM25_MIN_IDF
            docs.append(self.docs[lo:hi])
            gains.append(idf * self.gains[lo:hi])
        all_docs = np.concatenate(docs) if len(docs) > 1 else docs[0]
        all_gains = np.concatenate(gains) if len(gains) > 1 else gains[0]
        # Rows as a mask over the table (no sort): a posting list can hold most of the rows.
        matched = np.zeros(self.rows, dtype=bool)
        matched[all_docs] = True
        if len(source_ids) == 1:
            matched &= self.sources == source_ids[0]
        else:
            matched &= np.isin(self.sources, np.asarray(source_ids, dtype=np.int64))
        hit = np.flatnonzero(matched)
        if len(hit) == 0:
            return []
        scores = np.bincount(all_docs, weights=all_gains, minlength=self.rows)
        hit_scores = scores[hit]
        if len(hit) > limit:
            # Everything scoring above the limit-th best, plus enough of its ties (lowest row ids first).
            kth = np.partition(-hit_scores, limit - 1)[limit - 1]
            keep = -hit_scores <= kth
            hit, hit_scores = hit[keep], hit_scores[keep]
        order = np.lexsort((self.rowids[hit], -hit_scores))[:limit]
        return list(zip(self.rowids[hit[order]].tolist(), hit_scores[order].tolist(), strict=True))


def table_tokens(conn: sqlite3.Connection, table: str) -> int:
    """Tokens in FTS5 ``table``, from its averages record (row count, then tokens per column, as
    SQLite varints: fts5_index.c), without reading a posting."""
    row = conn.execute(f"SELECT block FROM {table}_data WHERE id = 1").fetchone()
    blob = bytes(row[0]) if row and row[0] else b""
    values: list[int] = []
    at = 0
    while at < len(blob):
        value = 0
        for i in range(9):  # SQLite's varint: 7 bits a byte, high bit set = more; a 9th byte gives 8 bits
            byte = blob[at]
            at += 1
            if i == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        values.append(value)
    return sum(values[1:])


def build(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], weights: Sequence[float], source_ids: Sequence[int]
) -> Lexicon | None:
    """Read the postings of FTS5 ``table`` (``columns`` in order, the first the ``src`` column).

    ``source_ids`` are the sources that may hold rows (their ``s<id>`` tokens name a row's source).
    Terms are read ``TERMS_PER_BATCH`` at a time, so memory peaks at the finished arrays plus one
    batch (the 16 benchmark corpora: ~25 MB held, where reading all occurrences at once took 340 MB).
    None if the table holds more than ``MAX_TOKENS`` tokens.
    """
    if table_tokens(conn, table) > MAX_TOKENS:
        return None
    vocab = f"temp.{table}_instances"
    conn.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {vocab} USING fts5vocab(main, {table}, 'instance')")
    column_code = " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate(columns))
    column_weights = np.asarray(weights, dtype=np.float64)
    # One row per term with its occurrences packed as text: 3.6 million tuples would take seconds
    # to cross into Python, one string per term takes a fraction of it.
    cursor = conn.execute(
        f"SELECT term, group_concat((doc << {COLUMN_BITS}) | CASE col {column_code} END, ' ') FROM {vocab} GROUP BY term"
    )
    terms: dict[str, int] = {}
    post_terms: list[npt.NDArray[np.int64]] = []  # per batch: each posting's term, row id, weighted frequency
    post_rowids: list[npt.NDArray[np.int64]] = []
    post_freqs: list[npt.NDArray[np.float64]] = []
    length_rowids: list[npt.NDArray[np.int64]] = []  # per batch: row ids and their occurrences (|d| parts)
    length_counts: list[npt.NDArray[np.int64]] = []
    src_rowids: list[npt.NDArray[np.int64]] = []  # occurrences in the src column: row id, term
    src_terms: list[npt.NDArray[np.int64]] = []
    while batch := cursor.fetchmany(TERMS_PER_BATCH):
        first_term = len(terms)
        for i, row in enumerate(batch):
            terms[str(row[0])] = first_term + i
        lengths = np.fromiter((r[1].count(" ") + 1 for r in batch), dtype=np.int64, count=len(batch))
        codes = np.fromstring(" ".join(r[1] for r in batch), dtype=np.int64, sep=" ")  # text mode: not deprecated
        if len(codes) != int(lengths.sum()):
            raise ValueError(f"{table}: {len(codes)} occurrences read, {int(lengths.sum())} expected")
        term_of = np.repeat(np.arange(first_term, first_term + len(batch), dtype=np.int64), lengths)
        rowid_of = codes >> COLUMN_BITS
        column_of = codes & ((1 << COLUMN_BITS) - 1)
        in_src = column_of == 0
        src_rowids.append(rowid_of[in_src])
        src_terms.append(term_of[in_src])
        # FTS5 lists a term's occurrences by row id; sort if it ever does not, then one posting per (term, row).
        order = np.lexsort((rowid_of, term_of))
        if not bool(np.all(order[1:] > order[:-1])):
            term_of, rowid_of, column_of = term_of[order], rowid_of[order], column_of[order]
        starts = np.flatnonzero(np.r_[True, (term_of[1:] != term_of[:-1]) | (rowid_of[1:] != rowid_of[:-1])])
        post_terms.append(term_of[starts])
        post_rowids.append(rowid_of[starts])
        post_freqs.append(np.add.reduceat(column_weights[column_of], starts) if len(starts) else np.zeros(0))
        ids, counts = np.unique(rowid_of, return_counts=True)
        length_rowids.append(ids)
        length_counts.append(counts)
    posting_terms = np.concatenate(post_terms) if post_terms else np.zeros(0, dtype=np.int64)
    freqs = np.concatenate(post_freqs) if post_freqs else np.zeros(0, dtype=np.float64)
    # Dense row numbers: row ids grow forever (AUTOINCREMENT), the arrays stay the table's size.
    rowids, docs64 = np.unique(np.concatenate(post_rowids) if post_rowids else np.zeros(0, np.int64), return_inverse=True)
    n_rows = len(rowids)
    docs = docs64.astype(np.int32)
    tokens = np.zeros(n_rows, dtype=np.float64)  # |d|: every token is one occurrence
    if length_rowids:
        np.add.at(tokens, np.searchsorted(rowids, np.concatenate(length_rowids)), np.concatenate(length_counts))
    avgdl = float(tokens.sum()) / n_rows if n_rows else 1.0
    # A row's source: the term of its one token in the ``src`` column (``s<id>``).
    source_of_term = np.full(len(terms), -1, dtype=np.int64)
    for sid, words in zip(source_ids, stem_words([f"s{sid}" for sid in source_ids]), strict=True):
        if len(words) == 1 and words[0] in terms:
            source_of_term[terms[words[0]]] = sid
    sources = np.full(n_rows, -1, dtype=np.int64)
    if src_rowids:
        sources[np.searchsorted(rowids, np.concatenate(src_rowids))] = source_of_term[np.concatenate(src_terms)]
    doc_freq = np.bincount(posting_terms, minlength=len(terms)).astype(np.int64)
    starts_of_term = np.zeros(len(terms) + 1, dtype=np.int64)
    np.cumsum(doc_freq, out=starts_of_term[1:])
    norms = BM25_K1 * (1.0 - BM25_B + BM25_B * tokens / avgdl)
    gains: npt.NDArray[np.float64] = freqs * (BM25_K1 + 1.0) / (freqs + norms[docs])
    return Lexicon(terms, starts_of_term, docs, gains, doc_freq, rowids, sources, n_rows)


class _Stemmer:
    """FTS5's own tokenizer, run on a private in-memory table: the exact stems of query words."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(":memory:", check_same_thread=False)
        self._conn.execute(f'CREATE VIRTUAL TABLE words USING fts5(w, tokenize="{FTS_TOKENIZE}")')
        self._conn.execute("CREATE VIRTUAL TABLE stems USING fts5vocab(words, 'instance')")

    def tokens(self, words: Sequence[str]) -> list[tuple[str, ...]]:
        with self._lock:
            self._conn.executemany("INSERT INTO words(rowid, w) VALUES (?, ?)", list(enumerate(words, start=1)))
            out: list[list[str]] = [[] for _ in words]
            for doc, term in self._conn.execute("SELECT doc, term FROM stems ORDER BY doc, offset"):
                out[int(doc) - 1].append(str(term))
            self._conn.execute("DELETE FROM words")
        return [tuple(t) for t in out]


_stemmer: _Stemmer | None = None
_stemmer_lock = threading.Lock()


@lru_cache(maxsize=STEM_CACHE)
def _word_tokens(word: str) -> tuple[str, ...]:
    global _stemmer
    with _stemmer_lock:
        if _stemmer is None:
            _stemmer = _Stemmer()
    return _stemmer.tokens([word])[0]


def stem_words(words: Sequence[str]) -> list[tuple[str, ...]]:
    """The tokens FTS5 makes of each word (one stem for an identifier-shaped word)."""
    return [_word_tokens(w) for w in words]
