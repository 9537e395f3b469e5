"""The one-pass tokenization of a file gives every unit the tokens the straightforward one did."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import pytest

from golden import FIXTURES, parse_sample, sample_path
from repolens.domain import CONTAINER_KINDS, SourceFile
from repolens.indexing.units import UnitLike, build_file, file_tokens
from repolens.parsing.tokens import identifier_tokens, path_tokens, tokens_by_line
from repolens.sources.filters import content_hash
from repolens.storage.base import FileTokens

LANGS = sorted(p.name for p in FIXTURES.iterdir() if (p / "expected.json").exists())
TEXT = "class HTTPServer:\n\n    def handle_request(self, req_id=42):\n        x=fooBar(req_id)  # 12345\n\t\n"


def test_a_slice_of_the_line_tokens_is_the_tokens_of_those_lines() -> None:
    """For every span of lines, blank and last ones included, the slice equals tokenizing the span."""
    lines = TEXT.split("\n")
    tokens, starts = tokens_by_line(TEXT)
    assert tokens == identifier_tokens(TEXT)
    assert len(starts) == len(lines) + 1
    for a in range(len(lines) + 1):
        for b in range(a, len(lines) + 1):
            assert tokens[starts[a] : starts[b]] == identifier_tokens("\n".join(lines[a:b])), (a, b)


@pytest.mark.parametrize(
    "text",
    [
        "2x 0x1F 3.14e10 12345678 x1 _ __init__ a-b a\r\nb\n",  # numbers run into names; CRLF
        "café naïveÉtat 日本Foo_bar\u2028next\x0bv\x85w\x00z\udcff!",  # non-ASCII and control characters
        "",
        "\n\n",
    ],
)
def test_line_tokens_read_odd_characters_as_the_regex_does(text: str) -> None:
    """``tokens_by_line`` reads runs of ASCII word characters; ``identifier_tokens`` its regex."""
    tokens, starts = tokens_by_line(text)
    lines = text.split("\n")
    assert tokens == identifier_tokens(text)
    assert [tokens[starts[i] : starts[i + 1]] for i in range(len(lines))] == [identifier_tokens(line) for line in lines]


def _reference_tokens(path: str, lines: list[str], artifacts: Sequence[UnitLike]) -> FileTokens:
    """``file_tokens`` as it was before the one-pass tokenization: every unit tokenizes its own text."""
    members: dict[str, list[UnitLike]] = {}
    for art in artifacts:
        if art.kind == "Symbol" and art.parent:
            members.setdefault(art.parent, []).append(art)
    for group in members.values():
        group.sort(key=lambda a: (a.start_line, a.name))
    units: list[tuple[str, str]] = []
    names: list[str] = []
    for art in artifacts:
        if art.kind == "File":
            units.append(("", ""))
            continue
        if art.kind == "Symbol":
            own = members.get(art.qualified_name, [])
            start, end = art.start_line, art.end_line
            if art.symbol_kind in CONTAINER_KINDS and own:
                unit_end = max(start, min(own[0].start_line - 1, start + 60 - 1))
            else:
                unit_end = min(end, start + 400 - 1)
            body = "\n".join(lines[start - 1 : unit_end])
            name_tokens = identifier_tokens(art.qualified_name.replace(".", " ") + " " + art.name)
            text = f"{art.signature}\n{art.doc}\n{body}\n{' '.join(m.name for m in own)}"
            unit = (" ".join(dict.fromkeys(name_tokens)), " ".join(identifier_tokens(text)))
            names.append(unit[0])
        else:
            body = "\n".join(lines[art.start_line - 1 : art.end_line])
            unit = (" ".join(identifier_tokens(art.name)), " ".join(identifier_tokens(body)))
        units.append(unit)
    return FileTokens(
        path=" ".join(path_tokens(path)),
        symbols=" ".join(names),
        body=" ".join(dict.fromkeys(identifier_tokens("\n".join(lines)))),
        units=units,
    )


@pytest.mark.parametrize("lang", LANGS)
def test_every_unit_of_a_golden_sample_gets_the_tokens_of_its_own_text(lang: str) -> None:
    """Symbols (containers and leaves), chunks and the file: the same tokens as tokenizing each text."""
    language, parsed = parse_sample(FIXTURES / lang)
    path = sample_path(FIXTURES / lang)
    data = path.read_bytes()
    file = SourceFile(f"src/{path.name}", data.decode("utf-8"), len(data), content_hash(data), language)
    new = build_file(file, parsed)
    lines = file.text.split("\n")
    assert new.tokens == _reference_tokens(file.path, lines, new.artifacts)
    assert file_tokens(file.path, lines, new.artifacts) == new.tokens  # what the store recomputes to delete


def test_a_parsed_file_crosses_a_process_boundary_unchanged() -> None:
    """The parse workers' results pickle as plain tuples and come back equal, field by field."""
    language, parsed = parse_sample(FIXTURES / "python")
    path = sample_path(FIXTURES / "python")
    data = path.read_bytes()
    new = build_file(SourceFile("a.py", data.decode("utf-8"), len(data), content_hash(data), language), parsed)
    back = pickle.loads(pickle.dumps(new))
    assert back.relations and back.artifacts
    assert back == new
