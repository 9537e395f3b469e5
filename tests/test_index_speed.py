"""The fast ways of building an index build the same index as the plain one.

Parsed in worker processes or in this one, written while parsing (a first index) or in one transaction
at the end, embedded beside the parser or by the backfill afterwards: the same files, artifacts,
relations, full-text postings (read back token by token through ``fts5vocab``) and vectors.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from conftest import MakeRepo
from repolens.embeddings.factory import embeds_beside_parser, load_embedder
from repolens.embeddings.remote import OpenAIEmbedder
from repolens.indexing import pipeline
from repolens.indexing.vectors import backfill
from repolens.settings import Settings
from repolens.storage.sqlite.store import SqliteStore

N_MODULES = 80  # more than pipeline._PARALLEL_MIN_FILES (the tests ask for two workers: workers parse)


def _files() -> dict[str, str]:
    files = {
        f"pkg/mod{i}.py": (
            f'"""Module {i}."""\nfrom pkg.mod{(i + 1) % N_MODULES} import Handler{(i + 1) % N_MODULES}\n\n\n'
            f"class Handler{i}(Handler{(i + 1) % N_MODULES}):\n"
            f'    """Handles request kind {i}."""\n\n'
            f"    def handle_{i}(self, request):\n"
            f"        value = self.parse_request(request)\n"
            f"        return helper_{i}(value) + {i}\n\n\n"
            f"def helper_{i}(value):\n    return str(value).upper() * {i % 3 + 1}\n"
        )
        for i in range(N_MODULES)
    }
    files["web/app.js"] = "import { render } from './view';\nexport function start(el) {\n  return render(el, 1);\n}\n"
    files["web/view.js"] = "export function render(el, n) {\n  el.textContent = String(n);\n  return el;\n}\n"
    files["README.md"] = "# Demo\n\nHandlers for every kind of request.\n\n## Usage\n\nCall `start`.\n"
    return files


def _contents(db: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    conn.execute("CREATE VIRTUAL TABLE temp.uv USING fts5vocab(main, units_fts, instance)")
    conn.execute("CREATE VIRTUAL TABLE temp.fv USING fts5vocab(main, files_fts, instance)")
    paths = dict(conn.execute("SELECT id, path FROM files"))
    arts = {
        r[0]: (paths[r[1]], r[2], r[3])
        for r in conn.execute("SELECT id, file_id, kind, coalesce(ident, qualified_name) FROM artifacts")
    }
    out = {
        "files": sorted(conn.execute("SELECT path, language, sha, size, n_lines, parser, content FROM files")),
        "artifacts": sorted(
            (arts[r[0]], *r[1:])
            for r in conn.execute(
                "SELECT id, name, qualified_name, symbol_kind, parent, start_line, end_line, signature, doc, "
                "embed_key FROM artifacts"
            )
        ),
        # the order of a file's artifacts (ids ascend in it) is part of what the store relies on
        "order": sorted(
            (paths[f], [arts[a] for (a,) in conn.execute("SELECT id FROM artifacts WHERE file_id = ? ORDER BY id", (f,))])
            for f in paths
        ),
        "relations": sorted(
            (arts[r[0]], *r[1:]) for r in conn.execute("SELECT from_id, kind, target, line, hint FROM relations")
        ),
        "units_fts": sorted((arts[r[1]], r[0], r[2], r[3]) for r in conn.execute("SELECT term, doc, col, offset FROM uv")),
        "files_fts": sorted((paths[r[1]], r[0], r[2], r[3]) for r in conn.execute("SELECT term, doc, col, offset FROM fv")),
        "vectors": sorted(conn.execute("SELECT embed_key, vec FROM vectors")),
    }
    conn.close()
    return out


def test_workers_streamed_writes_and_inline_vectors_build_the_plain_index(
    make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first index parsed by the workers, written in many small transactions while they parse and
    embedded beside the parser holds exactly what a parse in this process, one write and a backfill do."""
    root = make_repo(_files())

    plain = Settings(home=tmp_path / "plain", embedder="static")
    store = SqliteStore(plain.db_path)
    embedder = load_embedder(plain)
    assert embedder is not None
    source, report = pipeline.index_source(store, replace(plain, parse_workers=1), str(root), name="demo")
    assert report.vectors_embedded == 0
    assert backfill(store, source.id, embedder) > N_MODULES
    store.close()

    fast = Settings(home=tmp_path / "fast", embedder="static", parse_workers=2)  # even with the cores busy
    store = SqliteStore(fast.db_path)
    writes: list[int] = []
    replace_files = store.replace_files

    def counting(source_id: int, **kwargs: object) -> int:
        writes.append(source_id)
        return replace_files(source_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "replace_files", counting)
    monkeypatch.setattr(pipeline, "_STREAM_BYTES", 4_000)  # a transaction every few files
    source, report = pipeline.index_source(store, fast, str(root), name="demo", embedder=load_embedder(fast))
    assert len(writes) > 5, "the first index was not written while parsing"
    assert report.vectors_embedded > N_MODULES
    assert backfill(store, source.id, embedder) == 0, "vectors were left for the backfill"
    assert store.vector_counts(source.id, embedder.name)[0] == store.vector_counts(source.id, embedder.name)[1]
    store.close()

    assert _contents(fast.db_path) == _contents(plain.db_path)


def test_a_re_index_after_a_first_index_written_while_parsing_finds_nothing_to_do(
    make_repo: MakeRepo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streamed first index is whole: the next run reads every file as unchanged."""
    root = make_repo(_files())
    settings = Settings(home=tmp_path / "home", embedder="static", parse_workers=2)
    store = SqliteStore(settings.db_path)
    monkeypatch.setattr(pipeline, "_STREAM_BYTES", 4_000)
    _, first = pipeline.index_source(store, settings, str(root), name="demo", embedder=load_embedder(settings))
    _, second = pipeline.index_source(store, settings, str(root), name="demo", embedder=load_embedder(settings))
    assert first.files_changed == len(_files()) and second.files_changed == 0
    assert second.files_unchanged == len(_files())
    store.close()


def test_only_lookup_table_embedders_run_beside_the_parser(tmp_path: Path) -> None:
    """The static table and the test fake embed in the parse workers; a remote model is left to the backfill."""
    for spec in ("static", "hash"):
        embedder = load_embedder(Settings(home=tmp_path, embedder=spec))
        assert embedder is not None and embeds_beside_parser(embedder)
    assert not embeds_beside_parser(OpenAIEmbedder(base_url="http://127.0.0.1:9/v1", model="m", api_key=""))
