"""What makes a query fast must not change what it returns: the vector scan split between two threads
ranks as one exact scan does, every path through ``Searcher.search`` answers the same, and a shell
search imports neither ``tokenizers`` nor anything a search does not need."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import GEO_CODE, commit_tree
from repolens.indexing.pipeline import index_source
from repolens.indexing.vectors import backfill
from repolens.retrieval.search import SEARCHER_SCAN_SHARE, Searcher, nearest, similarities
from repolens.services import build_services
from repolens.settings import Settings

QUERIES = ["sum the areas of many shapes", "Circle", "radius of a circle", "print a report", "area"]


@pytest.mark.parametrize("rows", [1, 2, 7, 150, 1000, 4097])
def test_a_scan_split_anywhere_gives_the_same_similarities_and_ranking(rows: int) -> None:
    """vecdot is one dot product per row: any split of the rows gives bit-identical similarities, and the
    top k are those of an exact scan (checked against float64 arithmetic, ties ordered alike)."""
    rng = np.random.default_rng(rows)
    matrix = rng.standard_normal((rows, 64)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ids = np.arange(1000, 1000 + rows, dtype=np.int64)
    qvec = matrix[rows // 2] * 0.5 + rng.standard_normal(64).astype(np.float32) * 0.1
    whole = similarities(matrix, qvec)
    for split in {0, 1, rows // 3, rows - int(rows * SEARCHER_SCAN_SHARE), rows}:
        parts = np.concatenate([similarities(matrix[:split], qvec), similarities(matrix[split:], qvec)])
        assert np.array_equal(parts, whole), f"split at {split} of {rows}"
    exact = matrix.astype(np.float64) @ qvec.astype(np.float64)
    assert np.allclose(whole, exact, atol=1e-6)
    top = nearest(ids, whole, 150)
    assert len(top) == min(150, rows)
    assert [i for i, _ in top] == [int(ids[j]) for j in np.argsort(-exact, kind="stable")[: len(top)]]
    assert all(isinstance(i, int) and isinstance(s, float) for i, s in top)
    assert nearest(ids[:0], whole[:0], 150) == []


def test_every_path_through_search_returns_the_same_hits(tmp_path: Path) -> None:
    """The first query of a searcher embeds and scans on its thread (the embedding's cost is not known
    yet); later ones embed inline and split the scan. Same hits and scores either way, and the same as a
    searcher that has never run that path."""
    root = commit_tree(tmp_path / "geo", GEO_CODE)
    services = build_services(Settings(home=tmp_path / "home", embedder="static"))
    try:
        source, _ = index_source(services.store, services.settings, str(root), name="geo")
        assert services.embedder is not None
        backfill(services.store, source.id, services.embedder)
        ready, total = services.store.vector_counts(source.id, services.embedder.name)
        assert ready == total > 0

        def answers(searcher: Searcher, query: str) -> list[tuple[str, int, float]]:
            out = searcher.search(query, limit=20)
            assert out.mode == "hybrid"
            return [(h.artifact.path, h.artifact.start_line, h.score) for h in out.hits]

        warm = Searcher(services.store, services.embedder)
        for query in QUERIES:
            cold = Searcher(services.store, services.embedder)
            assert cold._embed_ms is None  # not measured yet: embedding and scan go to the thread
            threaded = answers(cold, query)
            warm._embed_ms = 0.0  # known to be fast (as it is after a first query): the split scan
            assert answers(warm, query) == threaded, query
    finally:
        services.close()


def test_a_shell_search_loads_no_tokenizer_library(tmp_path: Path) -> None:
    """`repolens search` in the default hybrid mode answers without importing ``tokenizers`` (the query
    is tokenized by embeddings/wordpiece.py), and with the same hits as in process."""
    root = commit_tree(tmp_path / "geo", GEO_CODE)
    home = tmp_path / "home"
    services = build_services(Settings(home=home, embedder="static"))
    try:
        source, _ = index_source(services.store, services.settings, str(root), name="geo")
        assert services.embedder is not None
        backfill(services.store, source.id, services.embedder)
        expected = [h.artifact.path for h in services.searcher.search("sum the areas of many shapes").hits]
    finally:
        services.close()
    probe = (
        "import atexit, json, sys\n"
        "atexit.register(lambda: sys.stderr.write('MODULES ' + json.dumps(sorted(sys.modules)) + '\\n'))\n"
        "from repolens.surfaces.cli.main import main\n"
        "main()\n"
    )
    env = {**os.environ, "REPOLENS_HOME": str(home), "REPOLENS_EMBEDDER": "static"}
    done = subprocess.run(
        [sys.executable, "-c", probe, "search", "sum the areas of many shapes", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    modules = set(json.loads(done.stderr.split("MODULES ", 1)[1]))
    assert "numpy" in modules and "repolens.embeddings.wordpiece" in modules, "a hybrid search embeds the query"
    assert not {m for m in modules if m.split(".")[0] in ("tokenizers", "onnxruntime")}
    paths = [r["location"]["path"] for r in json.loads(done.stdout)["results"]]
    assert paths == expected
