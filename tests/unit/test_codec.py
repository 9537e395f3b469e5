"""The stored vector form: int8 codes with a float32 scale, written and read in bulk."""

from __future__ import annotations

import numpy as np

from repolens.storage.codec import decode_many, encode, encode_many


def test_bulk_encoding_is_the_per_vector_encoding_and_decodes_to_unit_rows() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((50, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[3] = 0.0  # a text without tokens
    vectors[4] *= -1.0
    blobs = encode_many(vectors)
    assert blobs == [encode(v) for v in vectors]
    assert encode_many(np.zeros((0, 32), dtype=np.float32)) == []
    decoded = decode_many(blobs, 32)
    assert decoded.dtype == np.float32 and decoded.shape == (50, 32)
    assert not decoded[3].any(), "a zero vector stays zero, not NaN"
    kept = np.delete(np.arange(50), 3)
    assert np.allclose(np.linalg.norm(decoded[kept], axis=1), 1.0, atol=1e-6)
    assert (np.einsum("ij,ij->i", decoded[kept], vectors[kept]) > 0.999).all(), "int8 codes keep the direction"
