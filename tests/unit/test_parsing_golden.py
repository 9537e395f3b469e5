"""Every language's parse of its golden sample matches the reviewed expectation."""

from __future__ import annotations

import json

import pytest

from golden import FIXTURES, parse_sample, render

LANGS = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.json").exists())
REQUIRED = {
    "python",
    "javascript",
    "typescript",
    "tsx",
    "go",
    "java",
    "kotlin",
    "scala",
    "c",
    "cpp",
    "csharp",
    "rust",
    "ruby",
    "php",
    "swift",
    "elixir",
    "haskell",
    "lua",
    "zig",
    "bash",
}


def test_every_required_language_has_a_golden_file() -> None:
    """Issue 2 names twenty languages; each one has a reviewed golden sample."""
    assert set(LANGS) >= REQUIRED, sorted(REQUIRED - set(LANGS))


@pytest.mark.parametrize("lang", LANGS)
def test_symbols_match_the_golden_file(lang: str) -> None:
    """Kinds, qualified names, 1-based spans, parents and first doc lines are as reviewed."""
    directory = FIXTURES / lang
    expected = json.loads((directory / "expected.json").read_text())
    _language, parsed = parse_sample(directory)
    assert parsed.parser == "tree-sitter", parsed.error
    actual = render(parsed, with_relations="relations" in expected)
    assert actual["symbols"] == expected["symbols"]
    assert actual["docs"] == expected["docs"]
    if "relations" in expected:
        assert actual["relations"] == expected["relations"]
