"""Re-indexing touches only what changed, never shows stale content, and survives concurrency."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MakeRepo, git
from repolens.indexing.pipeline import index_source
from repolens.services import Services

pytestmark = pytest.mark.backends

FILES = {
    "pkg/alpha.py": "def alpha_handler():\n    '''Alpha doc.'''\n    return 'alpha'\n",
    "pkg/beta.py": "class BetaService:\n    def run(self):\n        return alpha_handler()\n",
    "pkg/gamma.py": "GAMMA_LIMIT = 10\n\ndef gamma_limit():\n    return GAMMA_LIMIT\n",
    "README.md": "# Demo\n\nSome words about the demo project.\n",
}


def _names(services: Services, query: str) -> list[str]:
    return [h.artifact.qualified_name for h in services.searcher.search(query, limit=20).hits]


def test_change_add_delete_and_rename_reprocess_only_those_files(make_repo: MakeRepo, services: Services) -> None:
    """Each kind of change is picked up; unchanged files are not parsed again."""
    root = make_repo(FILES)
    source, first = index_source(services.store, services.settings, str(root))
    assert first.files_changed == 4 and first.files_unchanged == 0
    assert first.commit == git(root, "rev-parse", "HEAD").strip()

    _, again = index_source(services.store, services.settings, str(root))
    assert (again.files_changed, again.files_deleted, again.files_unchanged) == (0, 0, 4)

    (root / "pkg/alpha.py").write_text("def omega_handler():\n    return 'omega'\n")
    (root / "pkg/delta.py").write_text("def delta_step():\n    return 4\n")
    (root / "pkg/gamma.py").unlink()
    git(root, "mv", "pkg/beta.py", "pkg/beta_service.py")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "changes")
    _, third = index_source(services.store, services.settings, str(root))
    assert third.files_changed == 3  # alpha (edited), delta (new), beta_service (renamed)
    assert third.files_deleted == 2  # gamma, and beta.py under its old name
    assert third.files_unchanged == 1  # README.md
    assert third.commit == git(root, "rev-parse", "HEAD").strip()

    paths = {f.path for f in services.store.files([source.id])}
    assert paths == {"pkg/alpha.py", "pkg/delta.py", "pkg/beta_service.py", "README.md"}
    assert "alpha_handler" not in _names(services, "alpha_handler")
    assert _names(services, "omega_handler")[0] == "omega_handler"
    assert _names(services, "gamma_limit") == [] or "gamma_limit" not in _names(services, "gamma_limit")
    hit = services.searcher.search("BetaService").hits[0]
    assert hit.artifact.path == "pkg/beta_service.py"


def test_lexical_index_has_no_ghost_postings_after_many_edits(make_repo: MakeRepo, services: Services) -> None:
    """After repeated edits, the lexical index holds exactly the current units (deletes matched inserts)."""
    root = make_repo(FILES)
    _source, _ = index_source(services.store, services.settings, str(root))
    for i in range(5):
        (root / "pkg/alpha.py").write_text(f"def alpha_v{i}():\n    '''Version {i}.'''\n    return {i}\n")
        index_source(services.store, services.settings, str(root))
    conn = services.store._conn  # test-only peek at the raw tables
    units = conn.execute("SELECT count(*) FROM artifacts WHERE kind != 'File'").fetchone()[0]
    if services.settings.uses_postgres:
        # Every posting belongs to a current unit (file), and every current unit has postings.
        ghosts = conn.execute(
            "SELECT count(*) FROM unit_terms t LEFT JOIN artifacts a ON a.id = t.unit_id WHERE a.id IS NULL"
        ).fetchone()[0]
        assert ghosts == 0
        assert conn.execute("SELECT count(DISTINCT unit_id) FROM unit_terms").fetchone()[0] == units
        assert (
            conn.execute(
                "SELECT count(*) FROM file_terms t LEFT JOIN files f ON f.id = t.file_id WHERE f.id IS NULL"
            ).fetchone()[0]
            == 0
        )
        assert conn.execute("SELECT sum(unit_docs) FROM files").fetchone()[0] == units
    else:
        fts_rows = conn.execute("SELECT count(*) FROM units_fts_docsize").fetchone()[0]
        assert fts_rows == units
        conn.execute("INSERT INTO units_fts(units_fts) VALUES('integrity-check')")
        conn.execute("INSERT INTO files_fts(files_fts) VALUES('integrity-check')")
    assert _names(services, "alpha_v4")[0] == "alpha_v4"
    assert "alpha_v3" not in _names(services, "alpha_v3")


def test_vectors_are_reused_for_unchanged_units(make_repo: MakeRepo, services: Services) -> None:
    """Editing one function re-embeds that function only."""
    from repolens.indexing.vectors import backfill

    root = make_repo(FILES)
    source, _ = index_source(services.store, services.settings, str(root))
    embedder = services.embedder
    assert embedder is not None
    total = backfill(services.store, source.id, embedder)
    assert total > 3
    (root / "pkg/alpha.py").write_text(FILES["pkg/alpha.py"].replace("return 'alpha'", "return 'ALPHA'"))
    index_source(services.store, services.settings, str(root))
    assert backfill(services.store, source.id, embedder) == 1  # the edited function, nothing else
    ready, units = services.store.vector_counts(source.id, embedder.name)
    assert ready == units


def test_two_concurrent_index_runs_leave_a_consistent_index(make_repo: MakeRepo, tmp_path: Path) -> None:
    """Two processes indexing the same source at once: both succeed, the index is whole."""
    files = {f"mod{i}/file{j}.py": f"def func_{i}_{j}(x):\n    return x + {j}\n" for i in range(10) for j in range(10)}
    root = make_repo(files)
    home = tmp_path / "shared-home"
    code = (
        "import sys; from repolens.settings import Settings; from repolens.services import build_services;"
        "from repolens.indexing.pipeline import index_source;"
        f"s = build_services(Settings(home=__import__('pathlib').Path({str(home)!r}), embedder='none'));"
        f"index_source(s.store, s.settings, {str(root)!r}, name='shared')"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    from repolens.services import build_services
    from repolens.settings import Settings

    svc = build_services(Settings(home=home, embedder="none"))
    source = svc.store.get_source("shared")
    assert source is not None and source.state == "Ready"
    assert len(svc.store.files([source.id])) == 100
    conn = svc.store._conn
    assert (
        conn.execute("SELECT count(*) FROM units_fts_docsize").fetchone()[0]
        == conn.execute("SELECT count(*) FROM artifacts WHERE kind != 'File'").fetchone()[0]
    )
    assert svc.searcher.search("func_7_3").hits[0].artifact.name == "func_7_3"
    svc.close()


def test_a_new_index_format_forgets_old_rows_but_keeps_vectors(make_repo: MakeRepo, services: Services) -> None:
    """When queries or the tokenizer change, files are re-read on the next run; vectors survive."""
    from repolens.indexing.vectors import backfill

    root = make_repo(FILES)
    source, _ = index_source(services.store, services.settings, str(root))
    assert services.embedder is not None
    embedded = backfill(services.store, source.id, services.embedder)
    assert services.store.ensure_index_version("some-future-format") is True
    stale = services.store.get_source(source.name)
    assert stale is not None and stale.state == "New" and "re-index" in stale.state_reason
    assert services.searcher.search("alpha_handler").hits == []
    _, report = index_source(services.store, services.settings, str(root))
    assert report.files_changed == 4
    assert backfill(services.store, source.id, services.embedder) == 0 < embedded
    assert services.searcher.search("alpha_handler").hits[0].artifact.name == "alpha_handler"


def test_read_caches_never_serve_content_another_writer_replaced(make_repo: MakeRepo, services: Services) -> None:
    """A server's store caches file text and artifact rows; an index run in another store (as a CLI
    or worker process would) changes them, and the next read sees the new content."""
    from repolens.services import build_services

    root = make_repo(FILES)
    index_source(services.store, services.settings, str(root))
    reader = build_services(services.settings)  # a second store on the same file: another process's view
    try:
        hit = reader.searcher.search("alpha_handler", limit=1).hits[0]
        assert "return 'alpha'" in reader.store.file_content(hit.artifact.file_id)  # now cached
        (root / "pkg/alpha.py").write_text("def alpha_handler():\n    '''Alpha doc.'''\n    return 'omega'\n")
        index_source(services.store, services.settings, str(root))
        hit = reader.searcher.search("alpha_handler", limit=1).hits[0]
        assert "return 'omega'" in reader.store.file_content(hit.artifact.file_id)
        assert reader.store.artifacts_by_id([hit.artifact.id])[hit.artifact.id] == hit.artifact
    finally:
        reader.close()


def test_generation_cache_bounds_its_size_and_refuses_stale_values() -> None:
    from repolens.storage.cache import GenerationCache

    cache: GenerationCache[int, str] = GenerationCache(10, weigh=len)
    cache.sync(1)
    cache.put(1, "abcd", 1)
    cache.put(2, "efgh", 1)
    assert cache.get(1) == "abcd"  # 1 is now the most recently used
    cache.put(3, "ijkl", 1)  # 12 chars > 10: the least recently used (2) goes
    assert (cache.get(1), cache.get(2), cache.get(3)) == ("abcd", None, "ijkl")
    cache.put(4, "x" * 11, 1)  # larger than the whole cache: not kept, nothing evicted
    assert cache.get(4) is None and len(cache) == 2
    cache.sync(2)  # the content moved: everything goes
    assert cache.get(1) is None
    cache.put(5, "read before the move", 1)  # read under generation 1, arriving after the move
    assert cache.get(5) is None


def test_a_snapshot_keeps_reading_the_state_a_search_started_from(make_repo: MakeRepo, services: Services) -> None:
    """A re-index that commits in the middle of a search cannot pull a hit's file out from under it."""
    from repolens.services import build_services

    root = make_repo(FILES)
    index_source(services.store, services.settings, str(root))
    reader = build_services(services.settings)  # the server's connection; ``services`` plays the indexer
    try:
        with reader.store.snapshot():
            hit = reader.searcher.search("alpha_handler", limit=1).hits[0]
            (root / "pkg/alpha.py").unlink()
            git(root, "add", "-A")
            git(root, "commit", "-q", "-m", "drop alpha")
            index_source(services.store, services.settings, str(root))  # commits while the search is open
            assert "return 'alpha'" in reader.store.file_content(hit.artifact.file_id)
        assert not any(h.artifact.path == "pkg/alpha.py" for h in reader.searcher.search("alpha_handler").hits)
    finally:
        reader.close()
