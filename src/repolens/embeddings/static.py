"""The default embedder: a static (lookup-table) code model distilled from the packaged MiniLM.

A text's vector is a weighted mean of its tokens' rows in a table, normalised (a token's weight falls
with its position, see ``POSITION_DECAY``): no neural network runs at
index or query time, so embedding costs about as much as tokenizing. The table ships inside the
package (``models/static-minilm-code/``), built by ``scripts/build_static_embedder.py`` from the
MiniLM teacher, with a vocabulary that adds frequent code sub-tokens and identifiers to MiniLM's
word pieces; PROVENANCE.md beside it says how, from what, and how close it stays to the teacher.

Files of a model folder (what ``load_static_model`` reads and the build script writes):

- ``tokenizer.json``: a ``tokenizers`` WordPiece tokenizer (lower-casing BERT normaliser and
  pre-tokenizer, no special tokens, no truncation or padding of its own).
- ``vocab.txt``: its vocabulary, a word a line in id order, which queries are tokenized with
  (``wordpiece.py``: the same ids without importing ``tokenizers``); a folder without it has the
  vocabulary read from ``tokenizer.json``.
- ``embeddings.npy``: int8 ``[vocab, dim]``, one row per token id.
- ``scales.npy``: float32 ``[vocab]``, each row's scale, with the token's frequency weight folded in
  (a row's vector is ``embeddings[i] * scales[i]``).
- ``config.json``: ``{"format": 1, "dim": ..., "vocab_size": ..., "checksum": ...}``; the checksum
  (of the two arrays) goes into the embedder's name, so vectors of a rebuilt table never mix with
  those of the old one.

numpy and tokenizers only; both are imported on first use, not when this module is, and a query needs
only numpy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from repolens.embeddings.base import InputType
from repolens.errors import ProviderError
from repolens.parsing.tokens import QUERY_STOPWORDS

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_DIR = "models/static-minilm-code"
# The packaged table's folder. A plain path, not importlib.resources (whose import, with tempfile,
# shutil and zipfile, was ~5 ms of a ~220 ms `repolens search` from a shell): the table is memory-mapped,
# so it has to be a file on disk anyway.
PACKAGED = Path(__file__).resolve().parent / MODEL_DIR
FORMAT_VERSION = 1
# A unit's embedding text starts with what identifies it (path, name, signature, docstring), then its
# code; a question starts with what it asks about. In a plain mean every later token dilutes that head
# as much as it counts itself, so a token at position p (0-based) weighs 1 / (1 + p / POSITION_DECAY):
# the first POSITION_DECAY tokens carry most of the vector, later ones still add to it, with no cliff.
# Measured on the dev set with the same table (bench/REPORT.md, session 11), fused default NDCG@10:
# a plain mean of 64 tokens 0.828; decay 8 0.836, 16 0.840, 32 0.840 (128 tokens); 16 with 256 tokens
# 0.839. (Before: a hard cut was the only head weighting: 512 tokens 0.698 vectors alone, 64 0.733.)
POSITION_DECAY = 16
# Tokens read per text: past 128 a token weighs under 1/9 of the first one and adds little. Reading
# 64 scored 0.839 and 96 0.841 (against 0.845), but 128 tokenizes twice the characters of 64: ~28 %
# slower embedding, taken for the ranking.
MAX_TOKENS = 128
# Characters read per text: the token limit cuts after tokenizing, so a long text (a file summary of a
# module with hundreds of symbols) is cut first, and tokenizing is most of the embedding time. Measured on
# 6,000 unit texts of four dev corpora (Python, TypeScript, Ruby, Rust): with 8 characters a token no
# text's first 64 tokens change, with 6 0.4 % of texts lose some of their last tokens, with 5 5 %;
# 6 tokenizes a quarter less text than 8.
MAX_CHARS = MAX_TOKENS * 6
# Texts per numpy gather: 256 texts x 512 tokens x 256 dims x 4 bytes = 128 MB at most in flight.
BATCH_TEXTS = 256

# Identifier boundaries the BERT pre-tokenizer does not see: fooBar, HTTPServer, foo_bar. Splitting
# them here (before lower-casing) lets the vocabulary's code words match the parts.
_IDENTIFIER_BOUNDARY = re.compile(r"_+|(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
# A question's function words ("how does the ...") are rare in code, so the frequency weights of the
# table count them as telling, and they open the question where position weights are highest. The
# lexical side drops the same words from queries (parsing.tokens); documents keep them. Measured with
# the shipped table on the dev set, fused default NDCG@10: 0.840 -> 0.844 (session 11, bench/REPORT.md).
_QUERY_STOPWORD = re.compile(r"\b(?:" + "|".join(sorted(QUERY_STOPWORDS)) + r")\b", re.IGNORECASE)
_SEPARATOR = "\x00"  # joins a batch for one regex pass; never in indexed text (NUL marks a binary file)


def split_identifiers(text: str) -> str:
    """``text`` with camelCase and snake_case identifiers split into words (the build uses it too)."""
    return _IDENTIFIER_BOUNDARY.sub(" ", text)


def _split_all(texts: Sequence[str]) -> list[str]:
    """``split_identifiers`` of each text, in one regex pass over the batch when that is safe."""
    if any(_SEPARATOR in t for t in texts):
        return [split_identifiers(t) for t in texts]
    return split_identifiers(_SEPARATOR.join(texts)).split(_SEPARATOR)


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


def model_name(dim: int, checksum: str) -> str:
    """What vectors are keyed by: the table (its checksum) and how it reads a text (tokens, decay)."""
    return f"static-minilm-code-{dim}-{checksum[:8]}-t{MAX_TOKENS}d{POSITION_DECAY}"


def position_weights(n: int) -> npt.NDArray[np.float32]:
    """The weight of each of the first ``n`` token positions (the build pools with the same)."""
    import numpy as np

    return (1.0 / (1.0 + np.arange(n, dtype=np.float32) / POSITION_DECAY)).astype(np.float32)


def model_available(folder: Path | None = None) -> bool:
    """Whether the table is in the installed package (or in ``folder``)."""
    return ((folder or PACKAGED) / "config.json").is_file()


def _read_table(folder: Path) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32], str]:
    """A model folder's rows, scales and vector name; refuse other formats."""
    import numpy as np

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
        raise ProviderError(
            f"static embedder in {str(folder)!r} is damaged: table {codes.shape} {codes.dtype}, scales {scales.shape}"
        )
    return codes, scales, model_name(codes.shape[1], str(config["checksum"]))


def load_static_model(folder: Path) -> StaticModel:
    """Read a model folder written by ``scripts/build_static_embedder.py``; refuse other formats."""
    from tokenizers import Tokenizer

    codes, scales, name = _read_table(folder)
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    return StaticModel(tokenizer, codes, scales, name)


def load_query_model(folder: Path, library: Callable[[], Any]) -> StaticModel | None:
    """The table with ``wordpiece.WordPiece`` as its tokenizer, which gives the same ids without
    ``tokenizers`` (``library()``, the model's own tokenizer, gets the texts it leaves); None when the
    folder's tokenizer is not the BERT WordPiece pipeline that module implements."""
    from repolens.embeddings.wordpiece import WordPiece, WordPieceError, load_vocab

    try:
        tokenizer = WordPiece(load_vocab(folder), max_length=MAX_TOKENS, library=library)
    except WordPieceError:
        return None
    return StaticModel(tokenizer, *_read_table(folder))


def embed_with(model: StaticModel, texts: Sequence[str]) -> npt.NDArray[np.float32]:
    """Position-weighted mean of the token rows of each text, L2-normalised; no tokens gives zeros.

    Code repeats its tokens (``self``, brackets, a variable's name): each text's distinct tokens are
    gathered first with their summed position weights, so each row is read and scaled once per text
    (about a third of the occurrences).
    """
    import numpy as np

    out = np.zeros((len(texts), model.dim), dtype=np.float32)
    vocab = model.codes.shape[0]
    weights = position_weights(MAX_TOKENS)
    for start in range(0, len(texts), BATCH_TEXTS):
        batch = _split_all([t[:MAX_CHARS] for t in texts[start : start + BATCH_TEXTS]])
        encoded = model.tokenizer.encode_batch_fast(batch, add_special_tokens=False)
        lengths = np.fromiter((len(e.ids) for e in encoded), dtype=np.int64, count=len(encoded))
        if not lengths.any():
            continue
        ids = np.fromiter((i for e in encoded for i in e.ids), dtype=np.int64, count=int(lengths.sum()))
        # each occurrence's position within its text: a running index restarted at every text
        ends = np.cumsum(lengths)
        positions = np.arange(len(ids)) - np.repeat(ends - lengths, lengths)
        keys, inverse = np.unique(np.repeat(np.arange(len(encoded)), lengths) * vocab + ids, return_inverse=True)
        summed = np.bincount(inverse, weights=weights[positions], minlength=len(keys)).astype(np.float32)
        docs, tokens = np.divmod(keys, vocab)
        rows = model.codes[tokens].astype(np.float32)
        rows *= (model.scales[tokens] * summed)[:, None]
        firsts = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1]])
        sums = np.add.reduceat(rows, firsts, axis=0)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        out[start + docs[firsts]] = sums / np.clip(norms, 1e-12, None)
    return out


class StaticEmbedder:
    """The packaged static code model (``REPOLENS_EMBEDDER=static``, the default).

    Queries and documents are pooled the same way; a query loses its function words first. The table
    loads on first use.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._model: StaticModel | None = None
        self._query_model: StaticModel | None = None
        config = self._config()
        self.dim = int(config["dim"])
        self.name = model_name(self.dim, str(config["checksum"]))

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads((self._folder or PACKAGED).joinpath("config.json").read_text())
        return config

    def _load(self) -> StaticModel:
        if self._model is None:
            self._model = load_static_model(self._folder or PACKAGED)
        return self._model

    def _load_query(self) -> StaticModel:
        # A query is tokenized without ``tokenizers`` (wordpiece.py): importing it and building the
        # model's tokenizer cost ~40 ms of a ~250 ms ``repolens search`` from a shell.
        if self._query_model is None:
            folder = self._folder or PACKAGED
            self._query_model = load_query_model(folder, lambda: self._load().tokenizer) or self._load()
        return self._query_model

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> npt.NDArray[np.float32]:
        """One unit vector per text; a query without its function words (``_QUERY_STOPWORD``)."""
        if input_type == "query":
            texts = [_QUERY_STOPWORD.sub(" ", t).strip() or t for t in texts]
            return embed_with(self._load_query(), texts)
        return embed_with(self._load(), texts)
