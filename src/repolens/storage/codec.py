"""How vectors are stored: int8 codes with one float32 scale each (388 bytes for 384 dimensions
instead of 1,536); the cosine error is far below what moves a ranking. Both backends and the
exact-scan search read and write this form.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


def encode(vec: npt.NDArray[np.float32]) -> bytes:
    """int8 codes with a float32 scale in front."""
    import numpy as np

    scale = float(np.abs(vec).max()) or 1.0
    codes = np.round(vec / scale * 127.0).astype(np.int8)
    return struct.pack("<f", scale) + codes.tobytes()


def encode_many(matrix: npt.NDArray[np.float32]) -> list[bytes]:
    """``encode`` of each row, the same bytes, computed for all rows at once (~10x faster)."""
    import numpy as np

    if not len(matrix):
        return []
    scales = np.abs(matrix).max(axis=1)
    scales[scales == 0] = 1.0
    out = np.empty((len(matrix), 4 + matrix.shape[1]), dtype=np.uint8)
    out[:, :4] = scales.astype("<f4").view(np.uint8).reshape(-1, 4)
    out[:, 4:] = np.round(matrix / scales[:, None] * 127.0).astype(np.int8).view(np.uint8)
    return [row.tobytes() for row in out]


def decode_many(blobs: Sequence[bytes], dim: int) -> npt.NDArray[np.float32]:
    """Stack encoded vectors back into a float32 matrix with unit rows."""
    import numpy as np

    if not blobs:
        return np.zeros((0, dim), dtype=np.float32)
    raw = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(len(blobs), 4 + dim)
    # Rows come out unit length, so each row's scale (its first 4 bytes) cancels out: the codes alone,
    # normalised in place (80,000 rows: 790 -> 60 ms; the matrix is rebuilt after every index).
    mat: npt.NDArray[np.float32] = raw[:, 4:].view(np.int8).astype(np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", mat, mat))
    mat /= np.clip(norms, 1e-12, None)[:, None]
    return mat
