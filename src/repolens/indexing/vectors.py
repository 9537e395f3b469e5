"""Vector backfill: embed the units that have no vector yet, in batches, resumably.

Vectors are stored in the int8 form of ``storage.codec``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from repolens.embeddings.base import Embedder
from repolens.indexing.units import embedding_text_for
from repolens.storage.base import IndexStore, VectorMatrices
from repolens.storage.codec import encode_many

BACKFILL_BATCH = 128  # units in the first batch: MiniLM embeds them in about a second on 2 cores
MAX_BACKFILL_BATCH = 4096  # a fast (static) embedder grows its batches up to this
BATCH_TARGET_S = 1.0  # a batch (one write transaction) should take about this long: a kill loses ~1 s
# Missing units are listed this many at a time: the query scans all of a source's units, so asking
# once per batch made it most of a fast embedder's time (13k units in batches of 128: ~100 scans).
MISSING_WINDOW = 16_384


def backfill(
    store: IndexStore,
    source_id: int,
    embedder: Embedder,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    max_units: int | None = None,
) -> int:
    """Embed every distinct unit text of ``source_id`` lacking a vector; return how many.

    The missing units are listed a window at a time and embedded in batches that start at
    ``BACKFILL_BATCH`` units and double while one takes under half of ``BATCH_TARGET_S``; each batch
    is written in its own transaction, so a kill loses about one batch. A unit deleted meanwhile
    (a concurrent re-index) is skipped.
    """
    done, total = store.vector_counts(source_id, embedder.name)
    embedded = 0
    batch = BACKFILL_BATCH
    cache: dict[int, list[str]] = {}
    while max_units is None or embedded < max_units:
        window = store.units_missing_vectors(source_id, embedder.name, MISSING_WINDOW)
        if not window:
            break
        embedded_before = embedded
        pos = 0
        while pos < len(window) and (max_units is None or embedded < max_units):
            started = time.perf_counter()
            missing = window[pos : pos + batch]
            pos += len(missing)
            rows = store.artifacts_by_id([m[0] for m in missing])
            texts: list[str] = []
            keys: list[int] = []
            for art_id, key in missing:
                row = rows.get(art_id)
                if row is None:
                    continue
                if row.file_id not in cache:
                    if len(cache) > 64:
                        cache.clear()
                    cache[row.file_id] = store.file_content(row.file_id).split("\n")
                siblings = store.artifacts_in_file_by_id(row.file_id) if row.kind == "File" else []
                texts.append(embedding_text_for(row.path, row, cache[row.file_id], siblings))
                keys.append(key)
            if not keys:
                continue
            vecs = embedder.embed(texts, input_type="document")
            store.put_vectors(embedder.name, list(zip(keys, encode_many(vecs), strict=True)))
            embedded += len(keys)
            if on_progress is not None:
                on_progress(min(total, done + embedded), total)
            if time.perf_counter() - started < BATCH_TARGET_S / 2:
                batch = min(MAX_BACKFILL_BATCH, batch * 2)
        if embedded == embedded_before:
            break  # the whole window vanished (deleted meanwhile): nothing left to embed
    return embedded


def embed_and_compact(
    store: IndexStore,
    source_id: int,
    embedder: Embedder | None,
    *,
    embed: bool = True,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[int, int, int]:
    """What follows the lexical index for every caller (``repolens index``, an indexing job):
    embed the units that lack a vector (unless ``embed`` is False or there is no embedder),
    reporting the exact counts first and last, then compact the store and leave the source's
    vector matrix ready to load (a store with ``VectorMatrices``). Returns (embedded now,
    vectors ready, units in all)."""
    embedded = ready = total = 0
    if embedder is not None and embed:
        if on_progress is not None:
            on_progress(*store.vector_counts(source_id, embedder.name))
        embedded = backfill(store, source_id, embedder, on_progress=on_progress)
    if embedder is not None:
        ready, total = store.vector_counts(source_id, embedder.name)
        if embed and on_progress is not None:
            on_progress(ready, total)  # the backfill's last report may have fallen inside a write throttle
    store.compact()
    if embedder is not None and ready and isinstance(store, VectorMatrices):
        store.vector_matrix(source_id, embedder.name, embedder.dim)  # ready for the first search
    return embedded, ready, total
