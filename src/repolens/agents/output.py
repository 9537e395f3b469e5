"""Structured answers: a turn asked for JSON shaped by a JSON Schema (CodeMie's ``output_schema``).

The model is told to answer with one JSON value valid against the schema; its answer is then
parsed (a Markdown code fence around it is tolerated, models add one by habit) and validated.
A schema that is not itself a valid JSON Schema is refused before the turn starts; an answer
that is not valid JSON or does not match is reported as such, with the model's text kept, so a
caller never receives an object the schema does not describe.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jsonschema
from jsonschema import exceptions as schema_errors

from repolens.errors import InvalidInput

MAX_SCHEMA_CHARS = 20_000  # a schema is part of the prompt: a bigger one crowds out the question
MAX_ERRORS_SHOWN = 3  # the first few mismatches say enough to fix a prompt
_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n(?P<body>.*?)\n\s*```\s*$", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Structured:
    """The parsed answer (``value``), or why there is none (``error``)."""

    value: Any = None
    error: str = ""


def check_schema(schema: Mapping[str, Any]) -> str:
    """The schema as the prompt shows it; InvalidInput when it is not a JSON Schema."""
    text = json.dumps(schema, ensure_ascii=False, sort_keys=True)
    if len(text) > MAX_SCHEMA_CHARS:
        raise InvalidInput(f"output_schema is over {MAX_SCHEMA_CHARS} characters of JSON; send a smaller schema")
    try:
        jsonschema.validators.validator_for(schema).check_schema(dict(schema))
    except schema_errors.SchemaError as exc:
        raise InvalidInput(f"output_schema is not a valid JSON Schema: {exc.message}") from None
    return text


def instructions(schema_text: str) -> str:
    """What the model is told about the shape of its answer."""
    return (
        "Answer with one JSON value and nothing else (no prose, no Markdown), valid against this JSON Schema:\n"
        f"{schema_text}"
    )


def parse(answer: str, schema: Mapping[str, Any]) -> Structured:
    """The answer as a JSON value valid against ``schema``, or the reason it is not."""
    text = answer.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group("body").strip()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Structured(error=f"the answer is not JSON ({exc.msg} at character {exc.pos})")
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if problems:
        shown = "; ".join(
            f"{'/'.join(map(str, p.absolute_path)) or '(root)'}: {p.message}" for p in problems[:MAX_ERRORS_SHOWN]
        )
        more = len(problems) - MAX_ERRORS_SHOWN
        extra = f" (+{more} more)" if more > 0 else ""
        return Structured(error=f"the answer does not match output_schema: {shown[:1000]}{extra}")
    return Structured(value=value)
