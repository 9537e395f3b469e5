"""A query-sized BERT WordPiece tokenizer in plain Python: the static model's ids, without ``tokenizers``.

``repolens search`` from a shell embeds one short query. Importing ``tokenizers`` and building its
tokenizer from the static model's ``tokenizer.json`` (32,252 words) took ~40 ms of a ~250 ms command;
this module reads the plain word list beside it (``vocab.txt``, one word a line, the line number its
id: ~5 ms) and tokenizes a query in well under a millisecond. The ids are exactly those of the model's
``tokenizers`` pipeline, which the build script assembles from MiniLM's (tests/unit/test_wordpiece.py
compares both on every code point and on thousands of strings):

1. Special tokens (``[CLS]`` and the others, matched in the raw text, case-sensitive) are cut out first
   and become their own ids; the text between them goes through the rest separately.
2. BERT normaliser: drop NUL, U+FFFD and control/format/private-use characters, turn white space into
   spaces, put spaces around CJK ideographs, decompose (NFD) and drop non-spacing marks (accents),
   lower-case one character at a time.
3. BERT pre-tokenizer: split at spaces, and cut every punctuation character out as its own word.
4. WordPiece: the longest vocabulary prefix of each word, then the longest ``##`` continuation, and so
   on; a word longer than ``MAX_WORD_CHARS`` or with a part in no entry is ``[UNK]``.
5. The first ``max_length`` ids are kept, if the caller asks for a cut.

Unicode tables differ between Python's ``unicodedata`` and the ones compiled into ``tokenizers`` for
characters assigned or recategorised in recent Unicode versions. A text holding one of them
(``_LIBRARY_ONLY``), or any non-ASCII text under another ``unicodedata`` version than the one those
ranges were measured with, is handed to the library tokenizer the caller provides: exact ids always,
the fast path for everything a query normally is.
"""

from __future__ import annotations

import bisect
import json
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

VOCAB_FILE = "vocab.txt"  # beside tokenizer.json: the WordPiece vocabulary, one word a line in id order
CONTINUATION = "##"  # prefix of a word piece that continues a word (BERT's ``continuing_subword_prefix``)
UNKNOWN = "[UNK]"
# Added tokens of every BERT vocabulary, matched before normalisation (``normalized: false``).
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_WORD_CHARS = 100  # BERT's ``max_input_chars_per_word``: a longer word is one [UNK]
# Words whose ids are kept per tokenizer: a server's queries repeat their words; ~200 bytes each.
MAX_CACHED_WORDS = 20_000

# The ``unicodedata`` version ``_LIBRARY_ONLY`` was measured with (Python 3.11), against tokenizers 0.23.3.
UNICODE_VERSION = "14.0.0"
# Code point ranges (first, last) where Python 3.11's Unicode 14 tables and the ones in tokenizers
# 0.23.3 disagree on what the normaliser or the pre-tokenizer does with the character (accent-like marks
# and format characters newer than the library's category tables; letters that the library's newer
# case tables lower-case and Unicode 14 had not assigned yet). Measured over every code point by
# ``scripts/wordpiece_unicode.py``, which prints this list (hexadecimal, ``FIRST-LAST`` or one code
# point); tests/unit/test_wordpiece.py checks every code point outside it. 559 code points: marks,
# punctuation and letters of historic and minority scripts, and a few rare Latin and Cyrillic letters.
_LIBRARY_ONLY_TEXT = """
061D 07FD 0890-0891 0898-089F 08CA-08E2 09FD-09FE 0A76 0AFA-0AFF 0B55 0C04 0C3C 0C77 0C84 0D00 0D3B-0D3C 0D81
0EBA 166D 1734 180F 1885-1886 1ABF-1ACE 1B7D-1B7E 1C89 1DF6-1DFB 2E43-2E4F 2E52-2E5D A7CB-A7CC A7CE A7D2 A7D4
A7DA A7DC A82C A8C5 A8FF A9BD 10D24-10D27 10D50-10D65 10EAB-10EAD 10F46-10F50 10F55-10F59 10F82-10F89 11070
11073-11074 110C2 110CD 111C9 111CF 1123E 1133B 11438-1143F 11442-11444 11446 1144B-1144F 1145A-1145B
1145D-1145E 11660-1166C 116B9 1182F-11837 11839-1183B 11938 1193B-1193C 1193E 11943-11946 119D4-119D7
119DA-119DB 119E0 119E2 11A01-11A0A 11A33-11A38 11A3B-11A47 11A51-11A56 11A59-11A5B 11A8A-11A96 11A98-11A9C
11A9E-11AA2 11C30-11C36 11C38-11C3D 11C3F 11C41-11C45 11C70-11C71 11C92-11CA7 11CAA-11CB0 11CB2-11CB3
11CB5-11CB6 11D31-11D36 11D3A 11D3C-11D3D 11D3F-11D45 11D47 11D90-11D91 11D95 11D97 11EF3-11EF4 11EF7-11EF8
11FFF 12FF1-12FF2 13430-13438 16E97-16E9A 16EA0-16EB8 16F4F 16FE2 16FE4 1CF00-1CF2D 1CF30-1CF46 1E000-1E006
1E008-1E018 1E01B-1E021 1E023-1E024 1E026-1E02A 1E130-1E136 1E2AE 1E2EC-1E2EF 1E944-1E94A 1E95E-1E95F
"""
_LIBRARY_ONLY = tuple(
    (int(first, 16), int(last or first, 16))
    for first, _, last in (item.partition("-") for item in _LIBRARY_ONLY_TEXT.split())
)
_LIBRARY_ONLY_FIRSTS = [first for first, _ in _LIBRARY_ONLY]

# Rust's ``char::is_whitespace`` (Unicode White_Space) less the control characters among them
# (U+000B, U+000C, U+0085), which the normaliser drops before it maps white space.
_WHITESPACE = frozenset("\t\n\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(map(chr, range(0x2000, 0x200B)))
_REMOVED_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs"})  # "other" less unassigned, as the library counts them
# The BERT normaliser's CJK ideograph blocks (``handle_chinese_chars``), first and last code points.
_CJK = (
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B920, 0x2CEAF),
    (0x2F800, 0x2FA1F),
)
_ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
# ASCII text: controls dropped, tab / newline / carriage return to spaces (the normaliser's first step).
_ASCII_CLEAN = dict.fromkeys([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]) | {9: 32, 10: 32, 13: 32}
_ASCII_WORD = re.compile(r"[^\s!-/:-@\[-`{-~]+|[!-/:-@\[-`{-~]")
_SPECIAL = re.compile("|".join(re.escape(t) for t in SPECIAL_TOKENS))


class LibraryTokenizer(Protocol):
    """What this module needs of a ``tokenizers.Tokenizer`` to hand it the texts it does not tokenize."""

    def encode_batch_fast(self, texts: list[str], add_special_tokens: bool = ...) -> list[Any]:
        """Encodings with an ``ids`` attribute."""
        ...


@dataclass(frozen=True, slots=True)
class Encoding:
    """A tokenized text: what callers of ``tokenizers`` read (``ids``)."""

    ids: list[int]


class WordPieceError(ValueError):
    """A vocabulary or tokenizer file this module cannot stand in for."""


def read_vocab(path: Path) -> dict[str, int]:
    """``vocab.txt``: a word a line, in id order."""
    words = path.read_text(encoding="utf-8").split("\n")
    if words and words[-1] == "":
        words.pop()
    vocab = dict(zip(words, range(len(words)), strict=True))
    if len(vocab) != len(words):
        raise WordPieceError(f"{str(path)!r} lists a word twice")
    return vocab


def write_vocab(path: Path, vocab: dict[str, int]) -> None:
    """Write ``vocab`` (ids 0..n-1) as ``read_vocab`` reads it."""
    words = sorted(vocab, key=vocab.__getitem__)
    if [vocab[w] for w in words] != list(range(len(words))) or any("\n" in w or "\r" in w for w in words):
        raise WordPieceError("a vocabulary file needs ids 0..n-1 and words without line breaks")
    path.write_text("".join(f"{w}\n" for w in words), encoding="utf-8", newline="\n")


def vocab_of_tokenizer_json(spec: dict[str, Any]) -> dict[str, int]:
    """The vocabulary of a ``tokenizers`` JSON spec, if its pipeline is the one this module implements.

    Raises ``WordPieceError`` otherwise (another normaliser, pre-tokenizer, model, added tokens or
    post-processing), so a caller keeps the library for such a model.
    """
    normalizer = spec.get("normalizer") or {}
    model = spec.get("model") or {}
    added = spec.get("added_tokens") or []
    vocab: dict[str, int] = model.get("vocab") or {}
    flags = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    expected_added = [{"id": vocab.get(t), "content": t, **flags} for t in SPECIAL_TOKENS]
    checks = {
        "normaliser": normalizer.get("type") == "BertNormalizer"
        and normalizer.get("clean_text") is True
        and normalizer.get("handle_chinese_chars") is True
        and normalizer.get("lowercase") is True
        and normalizer.get("strip_accents") in (None, True),
        "pre-tokenizer": spec.get("pre_tokenizer") == {"type": "BertPreTokenizer"},
        "model": model.get("type") == "WordPiece"
        and model.get("unk_token") == UNKNOWN
        and model.get("continuing_subword_prefix") == CONTINUATION
        and model.get("max_input_chars_per_word") == MAX_WORD_CHARS
        and sorted(vocab.values()) == list(range(len(vocab))),
        "added tokens": sorted(added, key=lambda t: t.get("id", -1)) == expected_added,
        "post-processing": spec.get("post_processor") is None and spec.get("padding") is None,
    }
    wrong = [what for what, ok in checks.items() if not ok]
    if wrong:
        raise WordPieceError(f"not a BERT WordPiece tokenizer as this module implements it: {', '.join(wrong)} differ")
    return vocab


def _library_only(text: str) -> bool:
    """Whether ``text`` (not ASCII) holds a character whose tables may differ from the library's."""
    if unicodedata.unidata_version != UNICODE_VERSION:
        return True
    for c in text:
        o = ord(c)
        if o >= 0x80:
            at = bisect.bisect_right(_LIBRARY_ONLY_FIRSTS, o) - 1
            if at >= 0 and o <= _LIBRARY_ONLY[at][1]:
                return True
    return False


def normalize(text: str) -> str:
    """The BERT normaliser (clean text, CJK spacing, strip accents, lower-case) of ``text``."""
    if text.isascii():
        return text.translate(_ASCII_CLEAN).lower()
    category = unicodedata.category
    kept: list[str] = []
    for c in text:
        if c in _WHITESPACE:
            kept.append(" ")
            continue
        o = ord(c)
        if o == 0 or o == 0xFFFD or category(c) in _REMOVED_CATEGORIES:
            continue
        if o >= 0x3400 and any(first <= o <= last for first, last in _CJK):
            kept.append(f" {c} ")
        else:
            kept.append(c)
    decomposed = unicodedata.normalize("NFD", "".join(kept))
    stripped = "".join(c for c in decomposed if category(c) != "Mn")
    # One character at a time, as the library does: ``str.lower`` alone would give a capital sigma at
    # the end of a word its final form.
    return stripped.lower() if "\u03a3" not in stripped else "".join(c.lower() for c in stripped)


def pre_tokenize(normalized: str) -> list[str]:
    """The BERT pre-tokenizer's words of a normalised text: split at spaces, punctuation on its own."""
    if normalized.isascii():
        return _ASCII_WORD.findall(normalized)
    category = unicodedata.category
    words: list[str] = []
    for chunk in normalized.split():
        start = 0
        for i, c in enumerate(chunk):
            if c in _ASCII_PUNCTUATION or (c >= "\x80" and category(c).startswith("P")):
                if i > start:
                    words.append(chunk[start:i])
                words.append(c)
                start = i + 1
        if start < len(chunk):
            words.append(chunk[start:])
    return words


@dataclass(frozen=True, slots=True)
class AddedToken:
    """A special token as ``tokenizers.Tokenizer.get_added_tokens_decoder`` describes it (``content``)."""

    content: str


class WordPiece:
    """The static model's tokenizer in plain Python, with the ``tokenizers.Tokenizer`` methods the
    embedder calls (``encode``, ``encode_batch_fast``, ``get_added_tokens_decoder``).

    ``library`` gives the ``tokenizers`` tokenizer (built on first need) for the texts this one leaves to
    it; ``max_length`` cuts the ids as the library's truncation does (None: no truncation).
    """

    def __init__(
        self, vocab: dict[str, int], *, library: Callable[[], LibraryTokenizer], max_length: int | None = None
    ) -> None:
        if UNKNOWN not in vocab or any(t not in vocab for t in SPECIAL_TOKENS):
            raise WordPieceError(f"the vocabulary lacks BERT's special tokens ({', '.join(SPECIAL_TOKENS)})")
        self._vocab = vocab
        self._unknown = vocab[UNKNOWN]
        self._max_length = max_length
        self._library = library
        self._words: dict[str, tuple[int, ...]] = {}

    def ids(self, text: str) -> list[int] | None:
        """The ids of ``text`` (the first ``max_length``); None when only the library can tokenize it."""
        if not text.isascii() and _library_only(text):
            return None
        ids: list[int] = []
        at = 0
        for special in _SPECIAL.finditer(text):
            self._encode_plain(text[at : special.start()], ids)
            ids.append(self._vocab[special.group()])
            at = special.end()
        self._encode_plain(text[at:], ids)
        return ids if self._max_length is None else ids[: self._max_length]

    def encode(self, text: str, add_special_tokens: bool = False) -> Encoding:
        """``tokenizers.Tokenizer.encode`` for this pipeline."""
        return self.encode_batch_fast([text], add_special_tokens=add_special_tokens)[0]

    def encode_batch_fast(self, texts: Sequence[str], add_special_tokens: bool = False) -> list[Encoding]:
        """``tokenizers.Tokenizer.encode_batch_fast`` for this pipeline (no post-processor: the flag adds
        nothing there and is passed on to the library for the texts it gets)."""
        out: list[Encoding | None] = []
        deferred: list[int] = []
        for i, text in enumerate(texts):
            ids = self.ids(text)
            if ids is None:
                deferred.append(i)
            out.append(None if ids is None else Encoding(ids))
        if deferred:
            encoded = self._library().encode_batch_fast([texts[i] for i in deferred], add_special_tokens=add_special_tokens)
            for i, e in zip(deferred, encoded, strict=True):
                out[i] = Encoding(list(e.ids))
        return [e for e in out if e is not None]

    def word_ids(self, words: Sequence[str]) -> list[tuple[int, ...]]:
        """The ids of words that normalising and pre-tokenizing leave as they are (lower-case ASCII runs of
        letters and digits, single ASCII punctuation characters), a tuple a word: what ``encode`` gives
        each of them, without its passes over the text."""
        return list(map(self._word_ids, words))

    def get_added_tokens_decoder(self) -> dict[int, AddedToken]:
        """The special tokens by id, as ``tokenizers`` lists them."""
        return {self._vocab[t]: AddedToken(t) for t in SPECIAL_TOKENS}

    def _encode_plain(self, text: str, ids: list[int]) -> None:
        if not text or (self._max_length is not None and len(ids) >= self._max_length):
            return
        for word in pre_tokenize(normalize(text)):
            pieces = self._words.get(word)
            if pieces is None:
                pieces = self._word_ids(word)
                if len(self._words) >= MAX_CACHED_WORDS:
                    self._words.clear()
                self._words[word] = pieces
            ids.extend(pieces)
            if self._max_length is not None and len(ids) >= self._max_length:
                return

    def _word_ids(self, word: str) -> tuple[int, ...]:
        """Greedy longest-match-first WordPiece of one pre-tokenized word."""
        if len(word) > MAX_WORD_CHARS:
            return (self._unknown,)
        vocab = self._vocab
        pieces: list[int] = []
        start, n = 0, len(word)
        while start < n:
            end = n
            found = None
            while start < end:
                found = vocab.get(word[start:end] if start == 0 else CONTINUATION + word[start:end])
                if found is not None:
                    break
                end -= 1
            if found is None:
                return (self._unknown,)
            pieces.append(found)
            start = end
        return tuple(pieces)


def load_vocab(folder: Path) -> dict[str, int]:
    """A model folder's vocabulary: ``vocab.txt`` when the build wrote one, else from ``tokenizer.json``
    (~12 ms more to parse), checked to be the pipeline this module implements."""
    plain = folder / VOCAB_FILE
    if plain.is_file():
        return read_vocab(plain)
    spec: dict[str, Any] = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    return vocab_of_tokenizer_json(spec)
