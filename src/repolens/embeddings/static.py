"""The default embedder: a static (lookup-table) code model distilled from the packaged MiniLM.

A text's vector is the mean of its tokens' rows in a table, normalised: no neural network runs at
index or query time, so embedding costs about as much as tokenizing. The table ships inside the
package (``models/static-minilm-code/``), built by ``scripts/build_static_embedder.py`` from the
MiniLM teacher, with a vocabulary that adds frequent code sub-tokens and identifiers to MiniLM's
word pieces; PROVENANCE.md beside it says how, from what, and how close it stays to the teacher.

Files of a model folder (what ``load_static_model`` reads and the build script writes):

- ``tokenizer.json``: a ``tokenizers`` WordPiece tokenizer (lower-casing BERT normaliser and
  pre-tokenizer, no special tokens, no truncation or padding of its own).
- ``embeddings.npy``: int8 ``[vocab, dim]``, one row per token id.
- ``scales.npy``: float32 ``[vocab]``, each row's scale, with the token's frequency weight folded in
  (a row's vector is ``embeddings[i] * scales[i]``).
- ``config.json``: ``{"format": 1, "dim": ..., "vocab_size": ..., "checksum": ...}``; the checksum
  (of the two arrays) goes into the embedder's name, so vectors of a rebuilt table never mix with
  those of the old one.

numpy and tokenizers only; both are imported on first use, not when this module is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repolens.embeddings.base import InputType
from repolens.errors import ProviderError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_DIR = "models/static-minilm-code"
FORMAT_VERSION = 1
# Tokens read per text. A lookup costs little, so the limit is about meaning, not time: past
# ~512 tokens (about the 30 body lines a unit's embedding text holds, plus its head) a unit's mean
# is dominated by its tail, which says less about what it is than its name and first lines.
MAX_TOKENS = 512
# Texts per numpy gather: 256 texts x 512 tokens x 256 dims x 4 bytes = 128 MB at most in flight.
BATCH_TEXTS = 256

# Identifier boundaries the BERT pre-tokenizer does not see: fooBar, HTTPServer, foo_bar. Splitting
# them here (before lower-casing) lets the vocabulary's code words match the parts.
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_UNDERSCORES = re.compile(r"_+")


def split_identifiers(text: str) -> str:
    """``text`` with camelCase and snake_case identifiers split into words (the build uses it too)."""
    return _UNDERSCORES.sub(" ", _CAMEL_BOUNDARY.sub(" ", text))


@dataclass(frozen=True, slots=True)
class StaticModel:
    """A loaded table: tokenizer, int8 rows with their scales, and the name vectors are keyed by."""

    tokenizer: Any  # tokenizers.Tokenizer (untyped library)
    codes: npt.NDArray[np.int8]
    scales: npt.NDArray[np.float32]
    name: str

    @property
    def dim(self) -> int:
        """Dimensions of a vector."""
        return int(self.codes.shape[1])


def model_available(folder: Path | None = None) -> bool:
    """Whether the table is in the installed package (or in ``folder``)."""
    if folder is not None:
        return (folder / "config.json").is_file()
    return resources.files("repolens.embeddings").joinpath(f"{MODEL_DIR}/config.json").is_file()


def load_static_model(folder: Path) -> StaticModel:
    """Read a model folder written by ``scripts/build_static_embedder.py``; refuse other formats."""
    import numpy as np
    from tokenizers import Tokenizer

    config = json.loads((folder / "config.json").read_text())
    if config.get("format") != FORMAT_VERSION:
        raise ProviderError(
            f"static embedder in {str(folder)!r} has format {config.get('format')!r}, this repolens reads "
            f"{FORMAT_VERSION}: rebuild it with scripts/build_static_embedder.py"
        )
    # Memory-mapped: the CLI pays only for the pages a query's tokens touch, not for the whole table.
    codes = np.load(folder / "embeddings.npy", mmap_mode="r", allow_pickle=False)
    scales = np.load(folder / "scales.npy", allow_pickle=False).astype(np.float32)
    if codes.dtype != np.int8 or codes.ndim != 2 or scales.shape != (codes.shape[0],):
        raise ProviderError(f"static embedder in {str(folder)!r} is damaged: table {codes.shape} {codes.dtype}, "
                            f"scales {scales.shape}")  # fmt: skip
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    name = f"static-minilm-code-{codes.shape[1]}-{str(config['checksum'])[:8]}"
    return StaticModel(tokenizer, codes, scales, name)


def embed_with(model: StaticModel, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Mean of the token rows of each text, L2-normalised; a text without tokens gets zeros."""
    import numpy as np

    out = np.zeros((len(texts), model.dim), dtype=np.float32)
    for start in range(0, len(texts), BATCH_TEXTS):
        batch = [split_identifiers(t) for t in texts[start : start + BATCH_TEXTS]]
        encoded = model.tokenizer.encode_batch(batch, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encoded), dtype=np.int64, count=len(encoded))
        if not lengths.any():
            continue
        ids = np.fromiter((i for e in encoded for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        rows = model.codes[ids].astype(np.float32)
        rows *= model.scales[ids, None]
        filled = np.flatnonzero(lengths)
        starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))[filled]
        sums = np.add.reduceat(rows, starts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        out[start + filled] = sums / np.clip(norms, 1e-12, None)
    return out


class StaticEmbedder:
    """The packaged static code model (``REPOLENS_EMBEDDER=static``, the default).

    Queries and documents are embedded the same way. The table loads on first use.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._model: StaticModel | None = None
        config = self._config()
        self.dim = int(config["dim"])
        self.name = f"static-minilm-code-{self.dim}-{str(config['checksum'])[:8]}"

    def _config(self) -> dict[str, Any]:
        if self._folder is not None:
            text = (self._folder / "config.json").read_text()
        else:
            text = resources.files("repolens.embeddings").joinpath(f"{MODEL_DIR}/config.json").read_text()
        config: dict[str, Any] = json.loads(text)
        return config

    def _load(self) -> StaticModel:
        if self._model is None:
            if self._folder is not None:
                self._model = load_static_model(self._folder)
            else:
                base = resources.files("repolens.embeddings").joinpath(MODEL_DIR)
                with resources.as_file(base) as folder:
                    self._model = load_static_model(Path(folder))
        return self._model

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> npt.NDArray[np.float32]:
        """One unit vector per text (``input_type`` makes no difference to a lookup table)."""
        return embed_with(self._load(), texts)
