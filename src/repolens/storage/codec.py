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
