"""The core's use cases, called in process: scope, search, grep, fetch, relations, remove.

The fast tier: a real SQLite file and the deterministic hash embedder, no server, no subprocess.
Every surface (CLI, REST, MCP) calls these same functions, so what holds here holds there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import GEO_CODE, commit_tree
from repolens import catalog, operations
from repolens.access.keys import Principal, create_key, plan_for
from repolens.errors import InvalidInput, NotFound
from repolens.indexing.pipeline import index_source
from repolens.indexing.units import file_tokens
from repolens.indexing.vectors import backfill
from repolens.services import Services, build_services
from repolens.settings import Settings

OTHER_CODE: dict[str, str | bytes] = {
    "billing/invoice.py": "def total_area_of_invoice(lines: list[int]) -> int:\n    return sum(lines)\n",
}


@pytest.fixture
def indexed(tmp_path: Path) -> Iterator[Services]:
    """Two repositories, ``geo`` and ``billing``, indexed with vectors."""
    services = build_services(Settings(home=tmp_path / "home", embedder="hash"))
    for name, files in (("geo", GEO_CODE), ("billing", OTHER_CODE)):
        root = commit_tree(tmp_path / name, files)
        source, _ = index_source(services.store, services.settings, str(root), name=name)
        assert services.embedder is not None
        backfill(services.store, source.id, services.embedder)
    yield services
    services.close()


def scoped_to(services: Services, name: str) -> Principal:
    minted = create_key(services.store, name="scoped", plan=plan_for("free"), scopes=(name,))
    return Principal(minted.row)


def test_search_finds_a_definition_by_name_and_by_description(indexed: Services) -> None:
    """A symbol query and a question both put the right function first."""
    by_name = operations.run_search(indexed, None, operations.SearchRequest("total_area", names=("geo",)))
    assert by_name.hits[0].artifact.qualified_name == "total_area"
    question = operations.run_search(indexed, None, operations.SearchRequest("sum the areas of many shapes"))
    assert question.hits[0].artifact.path == "geo/shapes.py"


def test_a_scoped_key_sees_only_its_sources_and_others_read_as_unknown(indexed: Services) -> None:
    """Search, grep, fetch and relations agree: a hidden source is unknown, never partly visible."""
    geo_only = scoped_to(indexed, "geo")
    hits = operations.run_search(indexed, geo_only, operations.SearchRequest("total area")).hits
    assert hits and {h.source.name for h in hits} == {"geo"}
    with pytest.raises(NotFound, match="unknown data source 'billing'"):
        operations.run_search(indexed, geo_only, operations.SearchRequest("total", names=("billing",)))
    grep = operations.grep(indexed, geo_only, "total_area")
    assert {r["dataSource"]["name"] for r in grep["results"]} == {"geo"}
    fetched = operations.fetch_items(
        indexed, geo_only, ["billing::billing/invoice.py::total_area_of_invoice", "geo::geo/shapes.py::total_area"]
    )
    assert [item.found for item in fetched] == [False, True]
    hidden = operations.relationships(indexed, geo_only, "billing::billing/invoice.py::total_area_of_invoice")
    assert hidden["found"] is False


def test_names_and_ids_resolve_the_same_scope(indexed: Services) -> None:
    """A source is addressed by its name or its public id, everywhere."""
    source = indexed.store.get_source("geo")
    assert source is not None
    by_name = catalog.resolve_scope(indexed.store, None, ["geo"])
    by_id = catalog.resolve_scope(indexed.store, None, [source.public_id])
    assert [s.id for s in by_name] == [s.id for s in by_id] == [source.id]
    with pytest.raises(NotFound):
        catalog.resolve_scope(indexed.store, None, ["ghost"])


def test_relations_follow_calls_and_inheritance(indexed: Services) -> None:
    """Callers of a function and descendants of a class come from the graph."""
    calls = operations.relationships(indexed, None, "geo::geo/shapes.py::total_area")
    incoming = {g["relationType"]: g for g in calls["relationships"]}["IncomingCalls"]
    assert [i["identifier"] for i in incoming["items"]] == ["geo::geo/report.py::report"]
    tree = operations.relationships(indexed, None, "geo::geo/shapes.py::Shape", profile="InheritanceOnly")
    descendants = {g["relationType"]: g for g in tree["relationships"]}["Descendants"]
    assert [i["identifier"] for i in descendants["items"]] == ["geo::geo/shapes.py::Circle"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: operations.run_search(s, None, operations.SearchRequest("  ")), "Query is required"),
        (lambda s: operations.grep(s, None, "(unclosed", regex=True), "invalid regular expression"),
        (lambda s: operations.fetch_items(s, None, []), "Identifiers"),
        (lambda s: operations.parse_profile("sideways"), "profile must be one of"),
    ],
)
def test_bad_input_is_invalid_input_with_a_reason(indexed: Services, call: object, message: str) -> None:
    """Mistakes raise InvalidInput (400 / exit 2 / tool error at the edges) that says what is wrong."""
    assert callable(call)
    with pytest.raises(InvalidInput, match=message):
        call(indexed)


def test_removing_a_source_forgets_it_everywhere(indexed: Services) -> None:
    """After removal the source is unknown to scope resolution and gone from search."""
    source = indexed.store.get_source("billing")
    assert source is not None
    indexed.store.delete_source(source.id, tokenize=file_tokens)
    with pytest.raises(NotFound):
        catalog.resolve_scope(indexed.store, None, ["billing"])
    hits = operations.run_search(indexed, None, operations.SearchRequest("total area of invoice")).hits
    assert all(h.source.name != "billing" for h in hits)


def test_settings_travel_whole_to_a_child_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """settings_env writes every field and load_settings reads every one back, unchanged."""
    from dataclasses import fields

    from repolens.settings import load_settings, settings_env

    original = Settings(
        home=tmp_path,
        embedder="none",
        allowed_git_schemes=("https", "ssh"),
        git_token="t0k",
        allowed_roots=(tmp_path,),
        git_allow_hosts=("git.internal",),
        llm_provider="anthropic",
        llm_model="m",
        chat_system_prompt="be brief",
        index_workers=0,
        parse_workers=3,
        job_lease_s=7,
    )
    env = settings_env(original)
    assert len(env) == len(fields(Settings))
    for name in [k for k in __import__("os").environ if k.startswith("REPOLENS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load_settings() == original


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("REPOLENS_GIT_SCHEMES", "https,ftp", "REPOLENS_GIT_SCHEMES must be 'https' or 'ssh' or 'http'"),
        ("REPOLENS_LLM_PROVIDER", "cohere", "REPOLENS_LLM_PROVIDER must be 'openai' or 'anthropic'"),
        ("REPOLENS_INDEX_WORKERS", "-1", "REPOLENS_INDEX_WORKERS must be at least 0"),
        ("REPOLENS_JOB_LEASE", "soon", "REPOLENS_JOB_LEASE must be an integer"),
        ("REPOLENS_DATABASE_URL", "mysql://x", "must be a postgresql:// URL"),
        ("REPOLENS_ALLOWED_ROOTS", "relative/dir", "must be absolute paths"),
    ],
)
def test_a_bad_setting_is_refused_at_start_by_name(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    """Each setting is validated when loaded, and the error names its variable."""
    from repolens.settings import load_settings

    monkeypatch.setenv(variable, value)
    with pytest.raises(InvalidInput, match=message):
        load_settings()


def test_parse_workers_are_as_configured_or_chosen_by_size_and_free_cores() -> None:
    """REPOLENS_PARSE_WORKERS: 1 never forks, N forks N for a few files or more; 0 (automatic) forks two only
    for enough source and only with two cores free of other work (read from the running machine)."""
    from repolens.domain import SourceFile
    from repolens.indexing import pipeline

    def files(n: int, size: int) -> list[SourceFile]:
        return [SourceFile(f"m{i}.py", "x = 1\n", size, f"{i:040x}", "python") for i in range(n)]

    enough = pipeline._PARALLEL_MIN_BYTES // pipeline._PARALLEL_MIN_FILES + 1
    many = files(pipeline._PARALLEL_MIN_FILES, enough)
    few = files(pipeline._PARALLEL_MIN_FILES - 1, 2 * enough)
    assert pipeline._in_workers(files(100, 6), 3) == 3, "the operator's number, however little source"
    assert pipeline._in_workers(files(100, 6), 0) == 0, "many files, too little source to pay for workers"
    assert pipeline._in_workers(many, 1) == 0
    assert pipeline._in_workers(many, 3) == 3
    assert pipeline._in_workers(few, 3) == 0
    assert pipeline._in_workers(few, 0) == 0
    free = pipeline._free_cores()
    assert 0 <= free <= (os.cpu_count() or 1)
    assert pipeline._in_workers(many, 0) in (0, 2)
