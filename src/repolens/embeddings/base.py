"""The embedder seam: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

InputType = Literal["query", "document"]


class Embedder(Protocol):
    """Turns text into vectors.

    ``name`` identifies the model *and* its settings: vectors stored under one name are
    never compared with vectors of another. ``embed`` returns an array of shape
    ``(len(texts), dim)``, each row of unit length.
    """

    name: str
    dim: int

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> npt.NDArray[np.float32]:
        """Vectors for ``texts``; documents and queries may be encoded differently."""
        ...
