"""Input rules every surface shares, checked before anything is written.

Names are printable text (no NUL, no control or format characters that would corrupt logs,
terminals or identifiers); timestamps are finite and within what an ISO-8601 listing can show.
A value that breaks a rule is ``InvalidInput`` (HTTP 400, CLI exit 2) with what to send instead.
"""

from __future__ import annotations

import math
import time

from repolens.errors import InvalidInput

# 9999-12-31T23:59:59Z, the last second Python's datetime (and so every listing) can represent.
MAX_TIMESTAMP_S = 253_402_300_799.0
# Line breaks and tabs are ordinary in prose, so descriptions may have them; names may not.
_DESCRIPTION_WHITESPACE = str.maketrans("", "", "\n\r\t")


def is_printable_name(text: str) -> bool:
    """Whether ``text`` has only printable characters (``str.isprintable``: no C0/C1 controls,
    no format characters such as U+202E, no line or paragraph separators)."""
    return text.isprintable()


def require_name(name: str, *, what: str, max_chars: int) -> str:
    """``name`` stripped, or ``InvalidInput`` unless it is 1 to ``max_chars`` printable characters."""
    name = name.strip()
    if not name or len(name) > max_chars or not is_printable_name(name):
        raise InvalidInput(f"{what} must be 1 to {max_chars} printable characters (no control characters)")
    return name


def require_description(text: str, *, max_chars: int) -> str:
    """``text``, or ``InvalidInput`` if it is too long or has control characters other than
    line breaks and tabs."""
    if len(text) > max_chars:
        raise InvalidInput(f"description must be at most {max_chars} characters")
    if not text.translate(_DESCRIPTION_WHITESPACE).isprintable():
        raise InvalidInput("description must be printable text (line breaks and tabs are allowed)")
    return text


def require_future_timestamp(value: float, *, what: str, now: float | None = None) -> float:
    """``value`` (epoch seconds), or ``InvalidInput`` unless it is finite, after ``now`` and no
    later than ``MAX_TIMESTAMP_S``. NaN, infinities and 1e308 all fail here, before a row is saved."""
    current = time.time() if now is None else now
    if not (math.isfinite(value) and current < value <= MAX_TIMESTAMP_S):
        raise InvalidInput(
            f"{what} must be a future time in epoch seconds, no later than {MAX_TIMESTAMP_S:.0f} (9999-12-31T23:59:59Z)"
        )
    return value
