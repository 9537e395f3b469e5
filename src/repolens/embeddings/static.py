"""The static embedder: a lookup-table code model distilled from the packaged MiniLM.

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
from itertools import chain, islice
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
# Tokenizing is most of the embedding time, and code says the same things over and over (``self.``,
# ``return``, a module's names): ``PieceTokenizer`` cuts a text at the whitespace the BERT pre-tokenizer
# splits on and looks each piece's ids up in a cache. Measured on 12,000 unit texts of the dev corpora,
# one core: 2.25 s to split and tokenize the whole texts, 0.3 s once the pieces are known.
_PIECE = re.compile(r"[^ \t\n\r]+")
# str.split() is ~6x faster than _PIECE and splits at the same places, and also at other whitespace,
# which the normaliser turns into spaces anyway, except at these control characters, which it deletes
# (so "a\x0bb" is one word to it): a text holding one is cut by _PIECE.
_DELETED_SPACE = re.compile("[\x0b\x0c\x1c-\x1f\x85]")
# A printable ASCII piece needs none of the normaliser's unicode work: split at its identifier boundaries
# and lower-cased, it is words and single punctuation characters (every printable ASCII character that
# is not a letter, digit or space is punctuation to the BERT pre-tokenizer), so new pieces are read as
# words, and only words never seen go to the tokenizer. Other pieces go to it whole. The words are read
# from the piece as it is, with their case: a run of capitals before a capitalised word (HTTP|Server),
# an optionally capitalised run of lower-case letters and digits (get|User|Name, x1|Y), or a run of
# capitals; underscores are skipped. These are exactly the words of ``split_identifiers`` and
# ``lower`` (tests/unit/test_static_embedder.py compares them), without the two passes over the text:
# the substitution's look-behinds were a sixth of all embedding time.
_WORD_OR_END = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]*[a-z0-9]+|[A-Z]+|[^A-Za-z0-9_\n]|\n")  # or a piece's end
# New words go to the tokenizer joined by this character, a token of its own that no ASCII word can
# contain or produce, in batches: each text handed to ``tokenizers`` costs ~13 us beside its characters.
_JOINER = "\u00a7"
WORDS_PER_CALL = 256
# Pieces kept per process, ~150 bytes each with their ids: at most ~45 MB; past it the cache starts
# over (a repository's pieces repeat within it; a long-lived server moves between repositories).
MAX_CACHED_PIECES = 300_000


def split_identifiers(text: str) -> str:
    """``text`` with camelCase and snake_case identifiers split into words (the build uses it too)."""
    return _IDENTIFIER_BOUNDARY.sub(" ", text)


def _pieces(text: str) -> list[str]:
    return _PIECE.findall(text) if _DELETED_SPACE.search(text) else text.split()


class PieceTokenizer:
    """The model's tokenizer with its answers remembered a whitespace-separated piece at a time.

    The ids are exactly the tokenizer's: its normaliser works a character at a time and its
    pre-tokenizer splits at the characters ``_PIECE`` splits at (and, for printable ASCII, at the
    ones ``_WORD_OR_END`` splits at), so a text's ids are its pieces' ids in order (the tests compare both
    on real code, prose and odd unicode).
    """

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer  # no truncation or padding: ids are cut here
        self._pieces: dict[str, tuple[int, ...]] = {}
        self._words: dict[str, tuple[int, ...]] = {}
        # Special tokens ("[CLS]") are matched in raw text before any splitting: pieces holding one
        # take the tokenizer's own path.
        special = [re.escape(t.content) for t in tokenizer.get_added_tokens_decoder().values()]
        self._special = re.compile("|".join(special)) if special else None
        # The Python tokenizer (wordpiece.WordPiece) takes the words one by one: joined, they would make a
        # text that is not ASCII, which it normalises and splits a character at a time (half of all
        # embedding time when it did). Only the ``tokenizers`` library gets them joined (``_JOINER``).
        self._word_ids: Callable[[Sequence[str]], list[tuple[int, ...]]] | None = getattr(tokenizer, "word_ids", None)
        self._joiner: int | None = None
        if self._word_ids is None:
            joiner = tokenizer.encode(_JOINER, add_special_tokens=False).ids
            self._joiner = joiner[0] if len(joiner) == 1 else None

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's first ``MAX_TOKENS`` token ids (of its first ``MAX_CHARS`` characters)."""
        cut = [t[:MAX_CHARS] for t in texts]
        # One search of the whole batch for the characters that str.split() would cut at wrongly, not one a text.
        split = list(map(_pieces, cut)) if _DELETED_SPACE.search("".join(cut)) else list(map(str.split, cut))
        cache = self._pieces
        new = set(chain.from_iterable(split)).difference(cache)
        if new:
            if len(cache) + len(new) > MAX_CACHED_PIECES:
                cache.clear()
            self._learn(new)
        get = cache.__getitem__
        return [list(islice(chain.from_iterable(map(get, pieces)), MAX_TOKENS)) for pieces in split]

    def _learn(self, pieces: set[str]) -> None:
        plain = [p for p in pieces if p.isascii() and p.isprintable()]
        if self._special is not None and self._special.search("\n".join(plain)):
            plain = [p for p in plain if not self._special.search(p)]
        other = list(pieces.difference(plain))
        if other:
            encoded = self._tokenizer.encode_batch_fast([split_identifiers(p) for p in other], add_special_tokens=False)
            self._pieces.update(zip(other, (tuple(e.ids) for e in encoded), strict=True))
        if plain:
            self._learn_plain(plain)

    def _learn_plain(self, plain: list[str]) -> None:
        # One regex pass over all the new pieces, a newline after each (never inside one), not one per piece.
        # Words are kept as they are written (``_WORD_OR_END``); each is tokenized lower-cased.
        tokens = _WORD_OR_END.findall("\n".join(plain) + "\n")
        words = self._words
        new = list(set(tokens).difference(words, "\n"))
        if new:
            if len(words) + len(new) > MAX_CACHED_PIECES:
                words.clear()
                new = list(set(tokens).difference("\n"))
            words.update(zip(new, self._encode_words([w.lower() for w in new]), strict=True))
        pieces = iter(plain)
        ids: list[int] = []
        for t in tokens:
            if t == "\n":
                self._pieces[next(pieces)] = tuple(ids)
                ids = []
            else:
                ids += words[t]

    def _encode_words(self, words: list[str]) -> list[tuple[int, ...]]:
        if self._word_ids is not None:
            return self._word_ids(words)
        if self._joiner is None:
            return [tuple(e.ids) for e in self._tokenizer.encode_batch_fast(words, add_special_tokens=False)]
        calls = [words[i : i + WORDS_PER_CALL] for i in range(0, len(words), WORDS_PER_CALL)]
        encoded = self._tokenizer.encode_batch_fast([f" {_JOINER} ".join(c) for c in calls], add_special_tokens=False)
        out: list[tuple[int, ...]] = []
        for call, e in zip(calls, encoded, strict=True):
            ids = e.ids
            cuts = [i for i, t in enumerate(ids) if t == self._joiner]
            starts = [0, *(c + 1 for c in cuts)]
            ends = [*cuts, len(ids)]
            if len(starts) != len(call):  # cannot happen for ASCII words; never guess
                return [tuple(e.ids) for e in self._tokenizer.encode_batch_fast(words, add_special_tokens=False)]
            out.extend(tuple(ids[a:b]) for a, b in zip(starts, ends, strict=True))
        return out


@dataclass(frozen=True, slots=True)
class StaticModel:
    """A loaded table: tokenizer, int8 rows with their scales, and the name vectors are keyed by."""

    tokenizer: Any  # tokenizers.Tokenizer (untyped library)
    codes: npt.NDArray[np.int8]
    scales: npt.NDArray[np.float32]
    name: str
    pieces: PieceTokenizer

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's first ``MAX_TOKENS`` token ids (of its first ``MAX_CHARS`` characters)."""
        return self.pieces.token_ids(texts)

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
    tokenizer.no_truncation()  # PieceTokenizer cuts at MAX_TOKENS itself
    return StaticModel(tokenizer, codes, scales, name, PieceTokenizer(tokenizer))


def load_wordpiece_model(folder: Path, library: Callable[[], Any]) -> StaticModel | None:
    """The table with ``wordpiece.WordPiece`` as its tokenizer, which gives the same ids without
    ``tokenizers`` (``library()``, the model's own tokenizer, gets the texts it leaves); None when the
    folder's tokenizer is not the BERT WordPiece pipeline that module implements."""
    from repolens.embeddings.wordpiece import WordPiece, WordPieceError, load_vocab

    try:
        tokenizer = WordPiece(load_vocab(folder), library=library)  # no truncation: PieceTokenizer cuts
    except WordPieceError:
        return None
    return StaticModel(tokenizer, *_read_table(folder), PieceTokenizer(tokenizer))


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
        encoded = model.token_ids(texts[start : start + BATCH_TEXTS])
        lengths = np.fromiter((len(e) for e in encoded), dtype=np.int64, count=len(encoded))
        if not lengths.any():
            continue
        ids = np.fromiter(chain.from_iterable(encoded), dtype=np.int64, count=int(lengths.sum()))
        # each occurrence's position within its text: a running index restarted at every text
        ends = np.cumsum(lengths)
        positions = np.arange(len(ids)) - np.repeat(ends - lengths, lengths)
        keys, inverse = np.unique(np.repeat(np.arange(len(encoded)), lengths) * vocab + ids, return_inverse=True)
        summed = np.bincount(inverse, weights=weights[positions], minlength=len(keys)).astype(np.float32)
        docs, tokens = np.divmod(keys, vocab)
        rows = model.codes[tokens].astype(np.float32)
        weighted = model.scales[tokens] * summed
        # One dot product per text over its own rows: np.add.reduceat over the rows' first axis was
        # ~15x slower (half of all embedding time) for the same sums.
        bounds = np.flatnonzero(np.r_[True, docs[1:] != docs[:-1], True]).tolist()
        sums = np.empty((len(bounds) - 1, model.dim), dtype=np.float32)
        for j in range(len(bounds) - 1):
            lo, hi = bounds[j], bounds[j + 1]
            np.dot(weighted[lo:hi], rows[lo:hi], out=sums[j])
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        out[start + docs[bounds[:-1]]] = sums / np.clip(norms, 1e-12, None)
    return out


class StaticEmbedder:
    """The packaged static code model (``REPOLENS_EMBEDDER=static``).

    Queries and documents are tokenized and pooled the same way; a query loses its function words
    first. The table loads on first use.
    """

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._model: StaticModel | None = None
        self._wordpiece_model: StaticModel | None = None
        config = self._config()
        self.dim = int(config["dim"])
        self.name = model_name(self.dim, str(config["checksum"]))

    def _config(self) -> dict[str, Any]:
        config: dict[str, Any] = json.loads((self._folder or PACKAGED).joinpath("config.json").read_text())
        return config

    def _load(self) -> StaticModel:
        """The table with the ``tokenizers`` library's tokenizer (the fallback of ``_load_wordpiece``)."""
        if self._model is None:
            self._model = load_static_model(self._folder or PACKAGED)
        return self._model

    def _load_wordpiece(self) -> StaticModel:
        # Queries and documents are tokenized without ``tokenizers`` (wordpiece.py; the library is loaded
        # only for a text holding a character whose tables it may read differently): importing it and
        # building the model's tokenizer cost ~40 ms of a ~250 ms ``repolens search`` from a shell, and
        # ~25-90 ms of every ``repolens index`` (0.35 s over the 16 dev corpora), with the same ids and
        # the same speed once the pieces are cached (12,000 unit texts: 0.93 s cold either way).
        if self._wordpiece_model is None:
            folder = self._folder or PACKAGED
            self._wordpiece_model = load_wordpiece_model(folder, lambda: self._load().tokenizer) or self._load()
        return self._wordpiece_model

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> npt.NDArray[np.float32]:
        """One unit vector per text; a query without its function words (``_QUERY_STOPWORD``)."""
        if input_type == "query":
            texts = [_QUERY_STOPWORD.sub(" ", t).strip() or t for t in texts]
        return embed_with(self._load_wordpiece(), texts)
