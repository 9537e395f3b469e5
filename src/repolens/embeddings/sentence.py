"""Any sentence-transformers model from a local folder (``REPOLENS_EMBEDDER=st:/path``).

Needs the ``sentence-transformers`` extra, which brings PyTorch: not part of the default
install. The model must already be on disk; nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repolens.embeddings.base import InputType
from repolens.errors import ProviderError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class SentenceTransformerEmbedder:
    """Embeddings from a sentence-transformers model folder."""

    def __init__(self, path: str) -> None:
        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ProviderError(f"sentence-transformers model folder not found: {path!r}")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ProviderError("install the extra: pip install 'repolens[sentence-transformers]'") from None
        self._model: Any = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        self.dim = int(self._model.get_sentence_embedding_dimension())
        self.name = f"st:{folder.name}"

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> npt.NDArray[np.float32]:
        """Normalised vectors from the model."""
        import numpy as np

        out = self._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        vectors: npt.NDArray[np.float32] = np.asarray(out, dtype=np.float32)
        return vectors
