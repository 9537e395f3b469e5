"""Metadata conditions over search hits: the filters Dify's external knowledge API sends
(``metadata_condition``), evaluated in the core so that any surface can offer them.

A hit's metadata is a flat dict (``metadata``); a ``Condition`` names fields, an operator and a
value; ``holds`` says whether a hit's metadata meets it. Text compares case-insensitively, numbers
as numbers; a multi-field condition holds when it holds for every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from repolens.errors import InvalidInput
from repolens.retrieval.search import ScoredArtifact

FIELDS = (
    "file_extension",
    "path",
    "artifact_kind",
    "data_source_name",
    "data_source_id",
    "language",
    "start_line",
    "end_line",
    "title",
)
OPERATORS = frozenset(
    {
        "contains",
        "not contains",
        "start with",
        "end with",
        "is",
        "is not",
        "empty",
        "not empty",
        "=",
        "≠",
        "!=",
        ">",
        "<",
        "≥",
        ">=",
        "≤",
        "<=",
        "before",
        "after",
        "null",
        "not null",
    }
)
_NO_VALUE = frozenset({"empty", "not empty", "null", "not null"})


@dataclass(frozen=True, slots=True)
class Condition:
    """``names`` (metadata fields) compared with ``value`` by ``operator``."""

    names: tuple[str, ...]
    operator: str
    value: Any = None

    def check(self) -> None:
        """Refuse an unknown operator or field, or a missing value, before anything runs."""
        if self.operator not in OPERATORS:
            raise InvalidInput(f"unknown comparison_operator {self.operator!r}")
        unknown = [n for n in self.names if n not in FIELDS]
        if unknown:
            raise InvalidInput(f"unknown metadata field {unknown[0]!r}; use one of {', '.join(FIELDS)}")
        if self.operator not in _NO_VALUE and self.value is None:
            raise InvalidInput(f"comparison_operator {self.operator!r} needs a value")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def holds(meta: dict[str, Any], condition: Condition) -> bool:
    """Whether the metadata meets the condition on every field it names."""
    op = condition.operator
    want = condition.value
    results = []
    for name in condition.names:
        have = meta.get(name)
        text = "" if have is None else str(have).lower()
        value = "" if want is None else str(want).lower()
        if name == "file_extension" and value and not value.startswith("."):
            value = "." + value
        if op == "contains":
            ok = value in text
        elif op == "not contains":
            ok = value not in text
        elif op == "start with":
            ok = text.startswith(value)
        elif op == "end with":
            ok = text.endswith(value)
        elif op in ("is", "="):
            ok = text == value if _number(have) is None or _number(want) is None else _number(have) == _number(want)
        elif op in ("is not", "≠", "!="):
            ok = text != value if _number(have) is None or _number(want) is None else _number(have) != _number(want)
        elif op in ("empty", "null"):
            ok = text == ""
        elif op in ("not empty", "not null"):
            ok = text != ""
        else:
            a, b = _number(have), _number(want)
            if a is None or b is None:
                ok = False
            elif op in (">", "after"):
                ok = a > b
            elif op in ("<", "before"):
                ok = a < b
            elif op in ("≥", ">="):
                ok = a >= b
            else:
                ok = a <= b
        results.append(ok)
    return all(results)


def metadata(hit: ScoredArtifact) -> dict[str, Any]:
    """The fields a condition can name, and the rest of what a knowledge record shows."""
    row = hit.artifact
    name = row.path.rsplit("/", 1)[-1]
    ext = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {
        "path": row.path,
        "description": f"{row.kind.lower()} in {name} from {hit.source.name}",
        "file_extension": ext,
        "data_source_id": hit.source.public_id,
        "data_source_name": hit.source.name,
        "data_source_type": "repository",
        "artifact_kind": row.kind.lower(),
        "identifier": row.identifier(hit.source.name),
        "language": row.language or "",
        "start_line": row.start_line,
        "start_character": 0,
        "end_line": row.end_line,
        "end_character": 0,
        "commit": hit.source.commit,
        "title": name,
    }
