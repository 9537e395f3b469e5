"""The built-in static embedder: the shipped table loads offline, the build script's output is what the
loader reads, and switching embedders re-embeds while search keeps answering."""

from __future__ import annotations

import importlib.util
import json
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
import pytest

from conftest import GEO_CODE, commit_tree
from repolens import operations
from repolens.embeddings.factory import load_embedder
from repolens.embeddings.fake import HashEmbedder
from repolens.embeddings.static import MAX_TOKENS, MODEL_DIR, POSITION_DECAY, StaticEmbedder, model_available
from repolens.errors import InvalidInput
from repolens.indexing.pipeline import index_source
from repolens.indexing.vectors import backfill
from repolens.retrieval.search import SearchOutcome
from repolens.services import build_services
from repolens.settings import Settings

REPO = Path(__file__).resolve().parents[2]
MINILM_TOKENIZER = REPO / "src" / "repolens" / "embeddings" / "models" / "minilm-l6-v2" / "tokenizer.json"


def _build_script() -> ModuleType:
    """scripts/build_static_embedder.py, imported as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("build_static_embedder", REPO / "scripts" / "build_static_embedder.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_the_shipped_static_model_loads_offline_and_ranks_code_by_meaning() -> None:
    """REPOLENS_EMBEDDER=static loads the packaged table: no network, unit vectors, the right document nearest."""
    assert model_available()
    embedder = load_embedder(Settings(home=Path("/nonexistent-home"), embedder="static"))
    assert isinstance(embedder, StaticEmbedder)
    assert embedder.name.startswith(f"static-minilm-code-{embedder.dim}-")
    docs = embedder.embed(
        [
            "def hash_password(password, salt):\n    return pbkdf2_hmac('sha256', password, salt)",
            "def parse_cookie_header(header):\n    # split the Cookie header into a dict of name=value",
            "class ThreadPool:\n    run tasks on a fixed number of worker threads",
        ],
        input_type="document",
    )
    query = embedder.embed(["hash and verify user passwords"], input_type="query")[0]
    assert docs.shape == (3, embedder.dim)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    assert int(np.argmax(docs @ query)) == 0
    assert embedder.embed(["getUserName", "get_user_name"], input_type="query").tolist()[0] == pytest.approx(
        embedder.embed(["get user name", "x"], input_type="query").tolist()[0], abs=1e-6
    ), "camelCase and snake_case identifiers are split into the words they are made of"
    empty = embedder.embed(["", "   "], input_type="document")
    assert not empty.any(), "a text without tokens gets a zero vector (it matches nothing), not NaN"
    question = "How does the parser handle is_empty?"
    asked = embedder.embed([question], input_type="query")[0].tolist()
    as_doc = embedder.embed([question], input_type="document")[0].tolist()
    assert asked == pytest.approx(embedder.embed(["parser handle is_empty?"], input_type="query")[0].tolist(), abs=1e-6), (
        "a question's function words are dropped, not the parts of an identifier"
    )
    assert as_doc != pytest.approx(asked, abs=1e-3), "a document keeps every word"
    only = embedder.embed(["how is it"], input_type="query")
    assert only.any(), "a query made only of function words keeps them rather than matching nothing"


# Texts the piece cache must tokenize exactly as the tokenizer does: code, prose, and what its normaliser
# and pre-tokenizer treat specially (accents, CJK, control and zero-width characters, special tokens,
# words past the WordPiece length limit, the joiner character itself, other whitespace).
ODD_TEXTS = [
    "def getUserName(self, user_id: int) -> str:\n    return self._users[user_id].name  # HTTPServer",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u00c5ngstr\u00f6m \u0130stanbul \u00df \u03a3\u03c3\u03c2",
    "combining e\u0301 \u0301x",
    "\u4e2d\u6587\u5b57\u7b26 mixed\u4e2dtext \u3053\u3093\u306b\u3061\u306f \ud55c\uad6d\uc5b4 emoji\U0001f600here",
    "tab\tsep\x0bvertical\x0cfeed\x1funit\x7fdel\x00nul\u200bzero\u200dwidth\ufeffbom\ufffdrepl",
    "nbsp\u00a0between\u2003em\u3000ideographic\u2028line\u2029para\x85next",
    "[CLS] x[SEP]y [MASK]ed [PAD] [UNK] [cls] [ CLS ]",
    "a" * 150 + " " + "Ab" * 60 + "_tail" + " " + "x1" * 70,
    "\u00a7 section\u00a7sign a\u00a7b \u00b6 pilcrow",
    "snake__case___triple_ __dunder__ CamelCaseHTTPRequest getHTTPResponseCode ABCdef aB1c",
    "punctuation!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ end",
    "",
    "   \n\r\t  ",
]


def test_the_piece_cache_gives_the_tokenizers_own_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    """StaticModel.token_ids (whitespace pieces, ASCII words, a cache) equals tokenizing the whole text."""
    from repolens.embeddings import static

    model = StaticEmbedder()._load()
    sources = sorted((REPO / "src" / "repolens").rglob("*.py"))[:60]
    texts = [*ODD_TEXTS, *(p.read_text()[i : i + 900] for p in sources for i in (0, 700))]

    def reference(text: str) -> list[int]:
        ids = model.tokenizer.encode(static.split_identifiers(text[: static.MAX_CHARS]), add_special_tokens=False).ids
        return list(ids[: static.MAX_TOKENS])

    expected = [reference(t) for t in texts]
    assert model.token_ids(texts) == expected, "first pass: every piece new"
    assert model.token_ids(texts) == expected, "second pass: every piece from the cache"
    assert model.token_ids(texts[::-1]) == expected[::-1]
    monkeypatch.setattr(static, "MAX_CACHED_PIECES", 50)  # the cache starts over, answers stay the same
    fresh = static.PieceTokenizer(model.tokenizer)
    assert fresh.token_ids(texts) == expected
    assert fresh.token_ids(texts[5:]) == expected[5:]


def test_a_plain_pieces_words_are_those_of_splitting_its_identifiers_and_lower_casing() -> None:
    """``_WORD_OR_END`` reads the words of printable ASCII pieces as written; lower-cased, they are exactly
    the words of ``split_identifiers`` and ``lower`` (what the tokenizer is given), on identifiers of every
    shape and on random strings of letters, digits, underscores and punctuation."""
    import random
    import re
    import string

    from repolens.embeddings import static

    words = re.compile(r"[a-z0-9]+|[^a-z0-9 \n]|\n")  # of the split, lower-cased text

    def reference(text: str) -> list[str]:
        return words.findall(static.split_identifiers(text).lower() + "\n")

    def ours(text: str) -> list[str]:
        return [w.lower() for w in static._WORD_OR_END.findall(text + "\n")]

    shapes = "getUserName HTTPServer getHTTPResponseCode ABCdef aB1c x1Y A1bC AB1Cd HTTP2Server __dunder__ a_B_c"
    texts = [*shapes.split(), "\n".join(shapes.split())]
    rng = random.Random(16)
    for alphabet in ("aAbBzZ09_", string.ascii_letters + string.digits + string.punctuation):
        texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(20_000)]
    assert [ours(t) for t in texts] == [reference(t) for t in texts]


def test_the_shipped_model_files_are_what_its_provenance_lists() -> None:
    """PROVENANCE.md names every model file with its size, and the table stays under the size budget."""
    folder = REPO / "src" / "repolens" / "embeddings" / MODEL_DIR
    provenance = (folder / "PROVENANCE.md").read_text()
    total = 0
    for name in ("tokenizer.json", "embeddings.npy", "scales.npy", "config.json", "LICENSE"):
        size = (folder / name).stat().st_size
        total += size
        assert f"| `{name}` | {size:,} |" in provenance
    assert total <= 40_000_000, "the issue's budget for the shipped weights"
    assert "Fidelity check" in provenance


class HashTeacher:
    """A stand-in teacher for the build's core: hashed tokens instead of MiniLM (no model, no torch)."""

    dim = 32

    def __init__(self, vocab: dict[str, int]) -> None:
        self._by_id = {i: t for t, i in vocab.items()}
        self._hash = HashEmbedder(self.dim)

    def embed_ids(self, sequences: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        texts = [" ".join(self._by_id[i].removeprefix("##") for i in seq) for seq in sequences]
        return self._hash.embed(texts, input_type="document")

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return self._hash.embed(texts, input_type="document")


def test_a_model_built_by_the_script_from_a_tiny_corpus_is_what_the_loader_reads(tmp_path: Path) -> None:
    """The build's core (vocabulary, distillation, fit, quantisation, writing) yields a folder the runtime
    loads by setting, with the corpus's shared code words in its vocabulary and a name keyed by its content."""
    script = _build_script()
    packages = ["alpha", "beta", "gamma", "delta", "epsilon"]
    texts, groups = [], []
    for n, package in enumerate(packages):
        for i in range(12):
            texts.append(f"{package}/mod{i}.py: def getKwargs{i}(ctx, kwargs):\n    return fetchKwargs(ctx, kwargs, {n})")
            groups.append(package)
    base = MINILM_TOKENIZER.read_text()
    teacher = HashTeacher(json.loads(base)["model"]["vocab"])
    built = script.distill(
        texts, groups, base_tokenizer_json=base, teacher=teacher, dims=16, fit_texts=40, seed=1, min_count=2, min_groups=3
    )
    assert "kwargs" in built.report["code_words_sample"], "a word every package uses joins the vocabulary"
    assert built.report["fit"]["fit_cos_after"] >= built.report["fit"]["fit_cos_before"]
    config = script.write_model(tmp_path / "tiny", built)

    embedder = load_embedder(Settings(home=tmp_path / "home", embedder=f"static:{tmp_path / 'tiny'}"))
    assert isinstance(embedder, StaticEmbedder)
    assert embedder.dim == config["dim"] == 16
    assert embedder.name == f"static-minilm-code-16-{config['checksum'][:8]}-t{MAX_TOKENS}d{POSITION_DECAY}"
    vectors = embedder.embed(["def getKwargs(ctx): return kwargs", "unrelated prose"], input_type="document")
    assert vectors.shape == (2, 16)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)

    # The runtime pools a text exactly as the fit did (position-weighted, repeats summed), so what the fit
    # optimised is what search reads.
    text = "getKwargs(ctx, kwargs) fetchKwargs ctx ctx kwargs " + " ".join(f"word{i}" for i in range(3 * MAX_TOKENS))
    from tokenizers import Tokenizer

    ids = script._encode_ids(Tokenizer.from_str(built.tokenizer_json), [text])
    assert len(ids[0]) == MAX_TOKENS, "the build cuts texts where the runtime does"
    table = built.codes.astype(np.float32) * built.scales[:, None]
    assert np.allclose(embedder.embed([text], input_type="query")[0], script._pool(table, ids)[0], atol=1e-5)
    design = script._Design.from_ids(ids, table.shape[0])
    fitted = design.apply(table)[0]
    assert np.allclose(fitted / np.linalg.norm(fitted), script._pool(table, ids)[0], atol=1e-5)

    again = script.distill(
        texts, groups, base_tokenizer_json=base, teacher=teacher, dims=16, fit_texts=40, seed=1, min_count=2, min_groups=3
    )
    assert again.codes.tobytes() == built.codes.tobytes(), "same inputs and seed, same bytes"
    with pytest.raises(InvalidInput, match="no static embedder"):
        load_embedder(Settings(home=tmp_path / "home", embedder=f"static:{tmp_path / 'missing'}"))


def test_switching_embedders_re_embeds_in_the_background_while_search_keeps_answering(tmp_path: Path) -> None:
    """Vectors are keyed by model: after a switch, search answers at once (lexically, then hybrid as the
    backfill proceeds), the new model's vectors are built alongside, and the old ones stay for a switch back."""
    root = commit_tree(tmp_path / "geo", GEO_CODE)
    old = build_services(Settings(home=tmp_path / "home", embedder="hash"))
    source, _ = index_source(old.store, old.settings, str(root), name="geo")
    assert old.embedder is not None
    backfill(old.store, source.id, old.embedder)
    old_ready = old.store.vector_counts(source.id, old.embedder.name)
    old.close()

    new = build_services(Settings(home=tmp_path / "home", embedder="static"))
    assert new.embedder is not None and new.embedder.name != "hash-64"
    request = operations.SearchRequest("sum the areas of many shapes", names=("geo",))
    before = operations.run_search(new, None, request)
    assert before.hits and before.vectors_ready == 0 and before.mode == "lexical"

    during: list[SearchOutcome] = []

    def search_while_embedding(done: int, total: int) -> None:
        # Called between backfill batches: a search from another thread must answer now.
        result: list[SearchOutcome] = []
        worker = threading.Thread(target=lambda: result.append(operations.run_search(new, None, request)))
        worker.start()
        worker.join(timeout=30)
        during.extend(result)

    embedder = new.embedder
    filler = threading.Thread(
        target=backfill, args=(new.store, source.id, embedder), kwargs={"on_progress": search_while_embedding}
    )
    filler.start()
    filler.join(timeout=60)
    assert not filler.is_alive()
    assert during and all(o.hits for o in during), "search answered while the new vectors were being built"
    after = operations.run_search(new, None, request)
    assert after.vectors_ready == after.vectors_total > 0 and after.mode == "hybrid"
    assert after.hits[0].artifact.path == "geo/shapes.py"
    assert new.store.vector_counts(source.id, "hash-64") == old_ready, "the old model's vectors are kept"
    new.close()


def test_documents_are_embedded_without_the_library_tokenizer_and_as_it_would() -> None:
    """Document vectors come from the plain-Python tokenizer (``tokenizers`` is not loaded for code)
    and equal the vectors the library tokenizer gives."""
    from repolens.embeddings import static

    sources = sorted((REPO / "src" / "repolens").rglob("*.py"))[:40]
    code = [p.read_text()[:1500] for p in sources]
    embedder = StaticEmbedder()
    vectors = embedder.embed(code, input_type="document")
    assert embedder._model is None, "the library tokenizer was loaded for plain code"
    reference = static.embed_with(static.load_static_model(static.PACKAGED), [*code, *ODD_TEXTS])
    assert np.allclose(vectors, reference[: len(code)], atol=1e-6)
    assert np.allclose(embedder.embed(ODD_TEXTS, input_type="document"), reference[len(code) :], atol=1e-6)
