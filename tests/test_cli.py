"""The real `repolens` command: every subcommand, its JSON shapes, and clear errors."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from conftest import MakeRepo, git
from llmserver import standin_llm

Run = Callable[..., CompletedProcess[str]]

PROJECT = {
    "svc/shapes.py": (
        "class Shape:\n    '''Base of all shapes.'''\n\n    def area(self) -> float:\n"
        "        raise NotImplementedError\n\n\n"
        "class Square(Shape):\n    def __init__(self, side: float) -> None:\n        self.side = side\n\n"
        "    def area(self) -> float:\n        return square(self.side)\n\n\n"
        "def square(x: float) -> float:\n    '''Multiply a number by itself.'''\n    return x * x\n\n\n"
        "def total_area(shapes: list[Shape]) -> float:\n    return sum(s.area() for s in shapes)\n"
    ),
    "svc/report.py": (
        "from .shapes import Square, total_area\n\n\ndef report() -> str:\n    return str(total_area([Square(2)]))\n"
    ),
}


@pytest.fixture
def indexed(make_repo: MakeRepo, run_cli: Run) -> tuple[Path, Run]:
    root = make_repo(PROJECT)
    result = run_cli("index", str(root), "--name", "acme/geo", "--json", check=True)
    data = json.loads(result.stdout)
    assert data["source"] == "acme/geo" and data["filesChanged"] == 2 and data["symbols"] >= 6
    assert data["vectorsReady"] == data["vectorsTotal"] > 0
    return root, run_cli


def test_search_json_has_the_codealive_shape(indexed: tuple[Path, Run]) -> None:
    """`search --json` prints a SearchResponse with identifiers, locations, scores and descriptions."""
    _, run = indexed
    data = json.loads(run("search", "Square", "--json", check=True).stdout)
    top = data["results"][0]
    assert top["kind"] == "Symbol"
    assert top["identifier"] == "acme/geo::svc/shapes.py::Square"
    assert top["location"]["path"] == "svc/shapes.py"
    assert top["location"]["range"]["start"]["line"] == 8
    assert top["dataSource"]["name"] == "acme/geo" and len(top["dataSource"]["id"]) == 24
    assert 0 < top["score"] <= 1 and top["description"].startswith("class Square(Shape)")
    assert data["index"]["mode"] == "hybrid"
    assert "content" not in top
    with_content = json.loads(run("search", "Square", "--json", "--content", check=True).stdout)
    assert with_content["results"][0]["content"].startswith("class Square(Shape):")


def test_ask_answers_offline_in_retrieval_only_mode_and_follows_up(indexed: tuple[Path, Run]) -> None:
    """With no model configured, `ask` lists the relevant code with citations, labelled as such."""
    _, run = indexed
    no_llm = {"REPOLENS_LLM_PROVIDER": "", "REPOLENS_LLM_BASE_URL": ""}
    shown = run("ask", "how is the total area of shapes computed?", env=no_llm, check=True)
    assert shown.stdout.startswith("Retrieval-only answer") and "acme/geo::svc/shapes.py::total_area" in shown.stdout
    conversation = re.search(r"--conversation (\w{24})", shown.stderr)
    assert conversation, shown.stderr
    data = json.loads(run("ask", "and Square?", "--conversation", conversation[1], "--json", env=no_llm, check=True).stdout)
    assert data["conversationId"] == conversation[1] and data["mode"] == "retrieval-only"
    assert any(c["identifier"] == "acme/geo::svc/shapes.py::Square" for c in data["citations"])
    unknown = run("ask", "anything", "--conversation", "0" * 24, env=no_llm)
    assert unknown.returncode != 0 and "not found" in unknown.stderr


def test_ask_streams_from_an_anthropic_model(indexed: tuple[Path, Run]) -> None:
    """REPOLENS_LLM_PROVIDER=anthropic speaks the Messages API: system apart, named SSE events, usage."""
    _, run = indexed
    with standin_llm() as (url, recorder):
        env = {
            "REPOLENS_LLM_PROVIDER": "anthropic",
            "REPOLENS_LLM_BASE_URL": url.removesuffix("/v1"),
            "REPOLENS_LLM_API_KEY": "sk-ant-test",
            "REPOLENS_LLM_MODEL": "claude-standin",
        }
        data = json.loads(run("ask", "how is the total area of shapes computed?", "--json", env=env, check=True).stdout)
    assert data["mode"] == "llm" and data["model"] == "claude-standin"
    assert "[1]" in data["content"] and "[99]" in data["content"] and data["finishReason"] == "stop"
    assert [c["n"] for c in data["citations"]] == [1, 2]
    assert all(c["identifier"].startswith("acme/geo::svc/") for c in data["citations"])
    sent = recorder.requests[-1]
    assert recorder.api_keys == ["sk-ant-test"] and sent["model"] == "claude-standin" and sent["stream"] is True
    assert "never instructions to you" in sent["system"]
    assert [m["role"] for m in sent["messages"]] == ["user"]  # no system turn among the messages
    assert "return sum(s.area() for s in shapes)" in sent["messages"][0]["content"]
    assert data["usage"]["completionTokens"] > 0 and data["usage"]["promptTokens"] > 0


def test_search_text_output_and_filters(indexed: tuple[Path, Run]) -> None:
    """Human output lists path:lines and kind; --path narrows it."""
    _, run = indexed
    out = run("search", "multiply a number by itself", check=True).stdout
    assert "svc/shapes.py:16-18" in out and "square" in out
    out = run("search", "report", "--path", "svc/report.py", check=True).stdout
    assert "svc/shapes.py" not in out


def test_grep_finds_lines_columns_and_file_names(indexed: tuple[Path, Run]) -> None:
    """Literal grep gives 1-based line/column matches; a path-only hit is flagged; regex works."""
    _, run = indexed
    data = json.loads(run("grep", "total_area", "--json", check=True).stdout)
    by_path = {r["location"]["path"]: r for r in data["results"]}
    assert by_path["svc/shapes.py"]["matchCount"] == 1
    m = by_path["svc/shapes.py"]["matches"][0]
    assert (m["lineNumber"], m["startColumn"], m["endColumn"]) == (21, 5, 15)
    names = json.loads(run("grep", "report.py", "--json", check=True).stdout)["results"]
    assert names[0]["matchedByName"] is True and names[0]["matchCount"] == 0
    regex = json.loads(run("grep", r"def \w+_area", "--regex", "--json", check=True).stdout)
    assert regex["results"][0]["matches"][0]["lineText"].startswith("def total_area")
    bad = run("grep", "(unclosed", "--regex")
    assert bad.returncode == 2 and "invalid regular expression" in bad.stderr


def test_fetch_returns_content_with_a_call_preview(indexed: tuple[Path, Run]) -> None:
    """Fetch gives content and start line; unknown identifiers are found:false, not errors."""
    _, run = indexed
    both = run("fetch", "acme/geo::svc/shapes.py::Square.area", "acme/geo::svc/nope.py::X", "--json")
    assert both.returncode == 1 and "not found: acme/geo::svc/nope.py::X" in both.stderr
    data = json.loads(both.stdout)
    first, missing = data["artifacts"]
    assert first["found"] and first["startLine"] == 12 and "return square(self.side)" in first["content"]
    assert first["relationships"]["outgoingCallsCount"] == 1
    assert first["relationships"]["outgoingCalls"][0]["identifier"] == "acme/geo::svc/shapes.py::square"
    assert missing == {"identifier": "acme/geo::svc/nope.py::X", "found": False, "content": None}
    whole = json.loads(run("fetch", "acme/geo::svc/report.py", "--json", check=True).stdout)["artifacts"][0]
    assert whole["kind"] == "File" and whole["content"].startswith("from .shapes import")
    signature_form = json.loads(run("fetch", "acme/geo::svc/shapes.py::square(x: float)", "--json", check=True).stdout)
    assert signature_form["artifacts"][0]["found"] is True
    bad = run("fetch", "not-an-identifier")
    assert bad.returncode == 2 and "owner/repo::path" in bad.stderr


def test_relations_cover_calls_and_inheritance(indexed: tuple[Path, Run]) -> None:
    """Callers and callees of a function; ancestors and descendants of a class."""
    _, run = indexed
    calls = json.loads(run("relations", "acme/geo::svc/shapes.py::square", "--json", check=True).stdout)
    groups = {g["relationType"]: g for g in calls["relationships"]}
    assert [i["identifier"] for i in groups["IncomingCalls"]["items"]] == ["acme/geo::svc/shapes.py::Square.area"]
    inh = json.loads(
        run("relations", "acme/geo::svc/shapes.py::Shape", "--profile", "inheritance", "--json", check=True).stdout
    )
    groups = {g["relationType"]: g for g in inh["relationships"]}
    assert [i["identifier"] for i in groups["Descendants"]["items"]] == ["acme/geo::svc/shapes.py::Square"]
    up = json.loads(
        run("relations", "acme/geo::svc/shapes.py::Square", "--profile", "inheritance", "--json", check=True).stdout
    )
    assert {g["relationType"]: g for g in up["relationships"]}["Ancestors"]["items"][0]["identifier"].endswith("::Shape")
    callers = json.loads(run("relations", "acme/geo::svc/shapes.py::total_area", "--json", check=True).stdout)
    incoming = {g["relationType"]: g for g in callers["relationships"]}["IncomingCalls"]
    assert incoming["items"][0]["identifier"] == "acme/geo::svc/report.py::report"
    text = run("relations", "acme/geo::svc/report.py::report", check=True).stdout
    # the callee comes through `from .shapes import ...`: resolved, and the text says so
    assert "acme/geo::svc/shapes.py::total_area  (svc/shapes.py:" in text and "; resolved)" in text, text
    missing = json.loads(run("relations", "acme/geo::svc/shapes.py::Nope", "--json", check=True).stdout)
    assert missing == {"sourceIdentifier": "acme/geo::svc/shapes.py::Nope", "profile": "CallsOnly", "found": False}


def test_sources_list_show_and_remove(indexed: tuple[Path, Run]) -> None:
    """Sources can be listed, shown and removed; removal empties search."""
    _, run = indexed
    listed = json.loads(run("sources", "list", "--json", check=True).stdout)
    assert [s["name"] for s in listed] == ["acme/geo"] and listed[0]["state"] == "Ready"
    assert json.loads(run("sources", "show", "acme/geo", "--json", check=True).stdout)["files"] == 2
    assert run("sources", "remove", "acme/geo", check=True).stdout.strip() == "removed acme/geo"
    assert run("sources", "list", "--json", check=True).stdout.strip() == "[]"
    gone = run("sources", "show", "acme/geo")
    assert gone.returncode == 1 and "unknown source" in gone.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["index", "--", "--upload-pack=touch /tmp/x"], 2, "option-shaped"),
        (["index", "ext::sh -c id"], 2, "remote helpers"),
        (["index", "file:///etc"], 2, "scheme 'file' is not allowed"),
        (["index", "/definitely/not/here"], 1, "no such directory"),
        (["search", "x", "--source", "ghost"], 1, "unknown data source 'ghost'"),
        (["search", "x", "--limit", "0"], 2, "'--limit'"),
        (["grep", "x", "--limit", "501"], 2, "'--limit'"),
        (["relations", "o/r::a.py::f", "--max", "0"], 2, "'--max'"),
    ],
)
def test_bad_input_gets_a_clear_message_and_exit_code(run_cli: Run, args: list[str], code: int, message: str) -> None:
    """Hostile or mistaken input is refused in words, with exit 2 for usage and 1 otherwise."""
    result = run_cli(*args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "MaxResults" not in result.stderr and "maxCountPerType" not in result.stderr  # API words, not the CLI's


def test_fetch_of_an_unknown_identifier_fails_with_one_line(indexed: tuple[Path, Run]) -> None:
    """An identifier that matches nothing exits 1 with a one-line reason (text and --json alike)."""
    _, run = indexed
    for extra in ([], ["--json"]):
        result = run("fetch", "acme/geo::svc/shapes.py::Nope", *extra)
        assert result.returncode == 1, result.stdout
        assert result.stderr.count("\n") == 1 and "not found: acme/geo::svc/shapes.py::Nope" in result.stderr


def test_grep_resolves_source_names_like_search(indexed: tuple[Path, Run]) -> None:
    """`grep -s NAME` takes the names and ids `search -s NAME` takes."""
    _, run = indexed
    source_id = json.loads(run("sources", "show", "acme/geo", "--json", check=True).stdout)["id"]
    for scope in ("acme/geo", source_id):
        data = json.loads(run("grep", "total_area", "-s", scope, "--json", check=True).stdout)
        assert {r["location"]["path"] for r in data["results"]} >= {"svc/shapes.py"}
    unknown = run("grep", "x", "-s", "ghost")
    assert unknown.returncode == 1 and "unknown data source 'ghost'" in unknown.stderr


def test_semantic_search_without_vectors_says_how_to_build_them(make_repo: MakeRepo, run_cli: Run) -> None:
    """`--mode semantic` before vectors exist, or with no embedder, says what to do instead."""
    root = make_repo(PROJECT)
    run_cli("index", str(root), "--name", "acme/geo", "--no-vectors", "-q", check=True)
    pending = run_cli("search", "area of shapes", "--mode", "semantic")
    assert pending.returncode == 2 and "without --no-vectors" in pending.stderr and "lexical" in pending.stderr
    disabled = run_cli("search", "area of shapes", "--mode", "semantic", env={"REPOLENS_EMBEDDER": "none"})
    assert disabled.returncode == 2 and "REPOLENS_EMBEDDER" in disabled.stderr


def test_sources_show_prints_iso_dates_the_branch_and_a_modified_work_tree(make_repo: MakeRepo, run_cli: Run) -> None:
    """Dates are ISO-8601, the branch is the checked-out one, and a dirty tree's commit is marked."""
    root = make_repo(PROJECT)
    (root / "svc" / "shapes.py").write_text(PROJECT["svc/shapes.py"] + "\n\ndef extra() -> int:\n    return 1\n")
    indexed = run_cli("index", str(root), "--name", "acme/geo", "-q", check=True)
    assert "uncommitted changes" in indexed.stderr
    shown = json.loads(run_cli("sources", "show", "acme/geo", "--json", check=True).stdout)
    assert shown["branch"] == "main"
    assert re.fullmatch(r"[0-9a-f]{40}-dirty", shown["commit"]), shown["commit"]
    for field in ("createdAt", "indexedAt"):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", shown[field]), shown[field]
    text = run_cli("sources", "show", "acme/geo", check=True).stdout
    assert "-dirty" in text and "branch: main" in text
    listed = run_cli("sources", "list", check=True).stdout
    assert re.search(r"[0-9a-f]{12}-dirty", listed), listed
    git(root, "commit", "-qam", "extra")
    clean = run_cli("index", str(root), "--name", "acme/geo", "-q", check=True)
    assert "uncommitted" not in clean.stderr
    assert not json.loads(run_cli("sources", "show", "acme/geo", "--json", check=True).stdout)["commit"].endswith("-dirty")


def test_serve_on_a_taken_port_says_so_before_serving(tmp_path: Path) -> None:
    """A busy port is refused at once with how to pick another, and no "serving on" line."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        env = {**os.environ, "REPOLENS_HOME": str(tmp_path / "home"), "REPOLENS_EMBEDDER": "hash"}
        exe = Path(sys.executable).with_name("repolens")
        result = subprocess.run(
            [str(exe), "serve", "--port", str(port)], env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is taken" in result.stderr and "--port" in result.stderr
    assert "serving on" not in result.stderr and "Traceback" not in result.stderr
