"""The plain-Python query tokenizer gives exactly the ids of the static model's ``tokenizers`` pipeline,
and a query is embedded with it as before, without importing ``tokenizers``."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from repolens.embeddings import wordpiece
from repolens.embeddings.static import (
    _QUERY_STOPWORD,
    MAX_TOKENS,
    MODEL_DIR,
    PieceTokenizer,
    StaticEmbedder,
    embed_with,
    load_static_model,
    load_wordpiece_model,
    split_identifiers,
)
from repolens.embeddings.wordpiece import VOCAB_FILE, WordPiece, WordPieceError

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "src" / "repolens" / "embeddings" / MODEL_DIR
SHARED_QUERIES = REPO.parent / "shared" / "bench" / "queries"
# Code-search questions as users type them (the dev queries are added when ../shared is beside the repo).
QUERIES = [
    "how are connection pool events dispatched",
    "where is the HTTP request body parsed into form data?",
    "getUserName",
    "parse_cookie_header",
    "What does __init__ of Session do with the bind argument",
    "retry with exponential backoff on 503",
    "TypeError: 'NoneType' object is not subscriptable in render_template",
    "café naïve résumé Ångström Straße",
    "中文 查询 日本語のクエリ 한국어 검색",
    "Σύστημα ΣΟΦΙΑΣ ОБРАБОТКА запросов",
    "emoji 😀 🥰 and symbols € £ ™ → ∑ ½ ²",
    "zero\u200bwidth\u200djoiner\ufeffbom soft\u00adhyphen",
    "[CLS] special [SEP] tokens [MASK] in [PAD] text [UNK] [cls]",
    "x" * 99 + " " + "y" * 100 + " " + "z" * 101,
]


def _library() -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    return tokenizer


def _strings() -> list[str]:
    """Thousands of texts: queries, this repository's code and prose, random unicode mixes, long words."""
    texts = list(QUERIES)
    for path in sorted(SHARED_QUERIES.glob("*.json")):
        texts += [q["query"] for q in json.loads(path.read_text())]
    for path in sorted((REPO / "src" / "repolens" / "retrieval").glob("*.py")):
        texts += path.read_text().splitlines()
    texts += (REPO / "README.md").read_text().splitlines()[:1500]
    rng = random.Random(16)
    pool = [
        *"abcXYZ019 _-.()[]{}#@!?,;:'\"/\\|~^`$%&*+<=>",
        *"\t\n\r\x00\x01\x0b\x0c\x1c\x1f\x7f\x85\xa0\u2028\u3000\u200b\u00ad\ufeff\ufffd",
        *"éèçñüßøåÆŒĳǅİΣςﬁÅΩK\u03b1β\u03b3ΔЖжЯ中文日本語한국어豈𠀀😀🥰€£™→∑½²",
        "\u0301",  # combining acute: stripped
        "\u0308\u0323",  # marks of different classes: NFD reorders them
        "\u0890",  # a format character newer than the library's tables: the library tokenizes the text
        "\u2e43",  # punctuation newer than the library's tables: likewise
        *wordpiece.SPECIAL_TOKENS,
        "[cls]",
        "[CLS",
    ]
    for _ in range(4000):
        texts.append("".join(rng.choice(pool) for _ in range(rng.randint(0, 40))))
    for n in (99, 100, 101, 150):
        texts += ["a" * n, "é" * n, f"x {'ab' * (n // 2)} y", f"{'q' * n}[SEP]"]
    texts.append(" ".join(f"word{i}" for i in range(3 * MAX_TOKENS)))
    return texts + [split_identifiers(t) for t in texts]


def test_query_ids_are_exactly_the_library_tokenizers_on_thousands_of_strings() -> None:
    """Code, prose, queries, accents, CJK, control and format characters, special tokens, long words: every
    text gets the library's ids (and the fast path tokenizes all but the texts holding a library-only character)."""
    library = _library()
    handed: list[int] = []

    def counted() -> Tokenizer:
        handed.append(1)
        return library

    ours = WordPiece(wordpiece.read_vocab(MODEL / VOCAB_FILE), max_length=MAX_TOKENS, library=counted)
    texts = _strings()
    assert len(texts) > 10_000
    got = [e.ids for e in ours.encode_batch_fast(texts)]
    expected = [e.ids for e in library.encode_batch_fast(texts, add_special_tokens=False)]
    wrong = [(t, g, e) for t, g, e in zip(texts, got, expected, strict=True) if g != e]
    assert not wrong, f"{len(wrong)} texts differ, first: {wrong[0]!r:.400}"
    assert handed == [1], "the texts with a library-only character went to the library, in one batch"
    deferred = [t for t in texts if ours.ids(t) is None]
    assert deferred and all("\u0890" in t or "\u2e43" in t for t in deferred)
    assert max(len(e) for e in got) == MAX_TOKENS, "ids are cut where the library truncates"
    # and under the embedder's per-piece cache, as a query is tokenized (no truncation of their own)
    untruncated = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    plain = WordPiece(wordpiece.read_vocab(MODEL / VOCAB_FILE), library=lambda: untruncated)
    assert PieceTokenizer(plain).token_ids(texts) == PieceTokenizer(untruncated).token_ids(texts)


def test_every_code_point_outside_the_library_only_ranges_is_normalised_and_split_as_the_library_does() -> None:
    """Each code point (between two letters, so the pre-tokenizer's cuts show) through the library's
    normaliser and pre-tokenizer and through ours; ``_LIBRARY_ONLY`` must list every one that differs."""
    assert unicodedata.unidata_version == wordpiece.UNICODE_VERSION, (
        "run scripts/wordpiece_unicode.py on this Python and update _LIBRARY_ONLY_TEXT and UNICODE_VERSION"
    )
    library = _library()
    skip = {cp for first, last in wordpiece._LIBRARY_ONLY for cp in range(first, last + 1)}
    points = [cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and cp not in skip]
    for start in range(0, len(points), 100_000):  # one library call per slice of code points
        text = "a" + "a".join(chr(cp) for cp in points[start : start + 100_000]) + "a"
        theirs = library.normalizer.normalize_str(text)
        ours = wordpiece.normalize(text)
        if theirs != ours:
            at = next(i for i, (x, y) in enumerate(zip(theirs, ours, strict=False)) if x != y)
            pytest.fail(
                f"normalised text differs near {theirs[max(0, at - 3) : at + 3]!r} vs {ours[max(0, at - 3) : at + 3]!r}"
            )
        assert [w for w, _ in library.pre_tokenizer.pre_tokenize_str(theirs)] == wordpiece.pre_tokenize(ours)


def test_the_shipped_word_list_is_the_tokenizer_json_vocabulary_and_is_in_the_provenance() -> None:
    """vocab.txt is tokenizer.json's vocabulary in id order, and tokenizer.json is the pipeline wordpiece.py implements."""
    spec = json.loads((MODEL / "tokenizer.json").read_text())
    assert wordpiece.read_vocab(MODEL / VOCAB_FILE) == wordpiece.vocab_of_tokenizer_json(spec) == spec["model"]["vocab"]
    size = (MODEL / VOCAB_FILE).stat().st_size
    assert f"| `{VOCAB_FILE}` | {size:,} |" in (MODEL / "PROVENANCE.md").read_text()


def test_a_query_embeds_as_through_the_library_without_importing_it(tmp_path: Path) -> None:
    """The query branch's vectors are bit for bit those of the library's ids, and a fresh process that
    embeds queries imports no ``tokenizers``."""
    queries = [*QUERIES, "How does the parser handle is_empty?", "how is it"]
    reference = embed_with(load_static_model(MODEL), [_QUERY_STOPWORD.sub(" ", q).strip() or q for q in queries])
    vectors = tmp_path / "vectors.npy"
    script = (
        "import json, sys, numpy as np\n"
        "from repolens.embeddings.static import StaticEmbedder\n"
        "v = StaticEmbedder().embed(json.loads(sys.argv[1]), input_type='query')\n"
        "np.save(sys.argv[2], v)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'tokenizers')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(queries), str(vectors)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout) == [], "tokenizers was imported to embed a query"
    assert np.array_equal(np.load(vectors), reference)
    # and in this process, where the library is loaded too
    assert np.array_equal(StaticEmbedder().embed(queries, input_type="query"), reference)


def test_a_folder_without_a_word_list_reads_tokenizer_json_and_another_pipeline_keeps_the_library(tmp_path: Path) -> None:
    """An older model folder (no vocab.txt) still gets the fast path; a tokenizer of another kind is left to
    the library, and a broken word list is refused with a clear message."""
    old = tmp_path / "old"
    old.mkdir()
    for name in ("tokenizer.json", "embeddings.npy", "scales.npy", "config.json"):
        (old / name).write_bytes((MODEL / name).read_bytes())
    model = load_wordpiece_model(old, _library)
    assert model is not None and isinstance(model.tokenizer, WordPiece)
    assert model.tokenizer.encode("parse_cookie_header").ids == _library().encode("parse_cookie_header").ids

    other = json.loads((MODEL / "tokenizer.json").read_text())
    other["normalizer"]["lowercase"] = False
    (old / "tokenizer.json").write_text(json.dumps(other))
    assert load_wordpiece_model(old, _library) is None
    with pytest.raises(WordPieceError, match="normaliser differ"):
        wordpiece.vocab_of_tokenizer_json(other)
    # an embedder over such a folder embeds queries with the library's tokenizer
    embedder = StaticEmbedder(old)
    assert embedder.embed(["parse cookie header"], input_type="query").shape == (1, embedder.dim)
    assert not isinstance(embedder._load_wordpiece().tokenizer, WordPiece)

    (old / VOCAB_FILE).write_text("[PAD]\nsame\nsame\n")
    with pytest.raises(WordPieceError, match="twice"):
        wordpiece.read_vocab(old / VOCAB_FILE)
    with pytest.raises(WordPieceError, match="special tokens"):
        WordPiece({"[PAD]": 0, "a": 1}, library=_library)
