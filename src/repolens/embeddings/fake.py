"""A deterministic embedder for tests: bag of hashed identifier tokens, no model.

Texts that share tokens get similar vectors, so ranking tests mean something (a vector of
all ones would not), and the same text always gets the same vector.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

from repolens.embeddings.base import InputType
from repolens.parsing.tokens import identifier_tokens

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class HashEmbedder:
    """Feature-hashing embedder (``REPOLENS_EMBEDDER=hash``)."""

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.name = f"hash-{dim}"

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> npt.NDArray[np.float32]:
        """One normalised token-count vector per text."""
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in identifier_tokens(text):
                digest = hashlib.blake2b(token.encode(), digest_size=4).digest()
                out[row, int.from_bytes(digest, "little") % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        normed: npt.NDArray[np.float32] = (out / norms).astype(np.float32)
        return normed
