"""Vector backfill: embed the units that have no vector yet, in batches, resumably.

Vectors are stored as int8 with one float32 scale each (388 bytes for 384 dimensions
instead of 1,536): the cosine error is far below what moves a ranking.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from repolens.embeddings.base import Embedder
from repolens.indexing.units import embedding_text_for
from repolens.storage.base import Store

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

BACKFILL_BATCH = 128  # units per write transaction: small enough that a kill loses seconds


def encode(vec: npt.NDArray[np.float32]) -> bytes:
    """int8 codes with a float32 scale in front."""
    import numpy as np

    scale = float(np.abs(vec).max()) or 1.0
    codes = np.round(vec / scale * 127.0).astype(np.int8)
    return struct.pack("<f", scale) + codes.tobytes()


def decode_many(blobs: Sequence[bytes], dim: int) -> npt.NDArray[np.float32]:
    """Stack encoded vectors back into a float32 matrix with unit rows."""
    import numpy as np

    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), 4 + dim)
    scales = raw[:, :4].copy().view("<f4").reshape(-1, 1)
    codes = raw[:, 4:].copy().view(np.int8).astype(np.float32)
    mat = codes * (scales / 127.0)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    normed: npt.NDArray[np.float32] = (mat / np.clip(norms, 1e-12, None)).astype(np.float32)
    return normed


def backfill(
    store: Store,
    source_id: int,
    embedder: Embedder,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    max_units: int | None = None,
) -> int:
    """Embed every distinct unit text of ``source_id`` lacking a vector; return how many."""
    done, total = store.vector_counts(source_id, embedder.name)
    embedded = 0
    cache: dict[int, list[str]] = {}
    while max_units is None or embedded < max_units:
        missing = store.units_missing_vectors(source_id, embedder.name, BACKFILL_BATCH)
        if not missing:
            break
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
            break
        vecs = embedder.embed(texts, input_type="document")
        store.put_vectors(embedder.name, [(k, encode(v)) for k, v in zip(keys, vecs, strict=True)])
        embedded += len(keys)
        if on_progress is not None:
            on_progress(min(total, done + embedded), total)
    return embedded
