"""User patterns (RE2): grep's line matching."""

from __future__ import annotations

import pytest

from repolens.errors import InvalidInput
from repolens.patterns import Deadline, UserPattern


def spans(pattern: str, text: str, *, regex: bool = True) -> list[tuple[int, int]]:
    return list(UserPattern(pattern, regex=regex).line_spans(text))


def test_one_span_per_matching_line_at_the_first_match() -> None:
    text = "ab1\n22\ncd\n"
    assert spans("[a-z]", text) == [(0, 1), (7, 8)]
    assert spans(r"(\d+)*[a-z]", text) == [(0, 1), (7, 8)], "the soak's slow pattern: one step per line"
    assert spans("foo", "xx foo foo\nfoo", regex=False) == [(3, 6), (11, 14)]


def test_a_match_that_crosses_lines_starts_where_it_starts() -> None:
    assert spans(r"foo\nbar", "x foo\nbar\n") == [(2, 9)]


def test_a_pattern_that_matches_the_empty_string_reports_its_non_empty_matches() -> None:
    assert spans("a*", "xa\nb\naa") == [(1, 2), (5, 7)]
    assert spans("^$", "a\n\nb") == []  # empty matches were never reportable


def test_every_line_of_a_large_text_costs_one_step() -> None:
    """A pattern matching every character over 20,000 lines yields 20,000 spans, not 600,000."""
    text = "abcdefghijklmnopqrstuvwxyz0123\n" * 20_000
    found = list(UserPattern("[a-z]", regex=True).line_spans(text, deadline=Deadline.after(60)))
    assert len(found) == 20_000 and found[1] == (31, 32)


def test_an_expired_deadline_stops_the_walk() -> None:
    with pytest.raises(InvalidInput, match="stopped after"):
        list(UserPattern("[a-z]", regex=True).line_spans("a\n" * 10, deadline=Deadline.after(-1)))
