"""Metadata conditions (Dify's filters) from a table: operators on text and numbers, checks before use."""

from __future__ import annotations

from typing import Any

import pytest

from repolens.errors import InvalidInput
from repolens.retrieval.conditions import Condition, holds

META: dict[str, Any] = {
    "path": "src/App/Pool.py",
    "file_extension": ".py",
    "artifact_kind": "symbol",
    "language": "python",
    "start_line": 40,
    "end_line": 60,
    "title": "Pool.py",
}


@pytest.mark.parametrize(
    ("names", "operator", "value", "expected"),
    [
        (("path",), "contains", "app/pool", True),  # case-insensitive
        (("path",), "not contains", "tests/", True),
        (("path",), "start with", "src/", True),
        (("title",), "end with", ".py", True),
        (("file_extension",), "is", "py", True),  # the dot is optional
        (("file_extension",), "is not", ".py", False),
        (("start_line",), ">", 39, True),
        (("start_line",), "≤", "40", True),  # numbers compare as numbers, whichever type they come in
        (("end_line",), "<", "100", True),
        (("end_line",), "=", 60.0, True),
        (("language",), "empty", None, False),
        (("language",), "not null", None, True),
        (("path", "title"), "contains", "pool", True),  # every named field must hold
        (("path", "language"), "contains", "pool", False),
        (("start_line",), ">", "many", False),  # a value that is not a number never compares
    ],
)
def test_a_condition_holds_on_a_hits_metadata(names: tuple[str, ...], operator: str, value: Any, expected: bool) -> None:
    """Each operator on text or numbers, over one or several fields."""
    assert holds(META, Condition(names, operator, value)) is expected


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (Condition(("path",), "matches", "x"), "unknown comparison_operator 'matches'"),
        (Condition(("owner",), "is", "x"), "unknown metadata field 'owner'"),
        (Condition(("path",), "contains", None), "needs a value"),
    ],
)
def test_a_bad_condition_is_refused_before_it_runs(condition: Condition, message: str) -> None:
    """Unknown operators and fields, and missing values, are bad input."""
    with pytest.raises(InvalidInput, match=message):
        condition.check()
