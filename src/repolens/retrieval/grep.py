"""Literal and regex search over file contents, plus file-name hits for literal patterns."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from repolens.domain import SearchFilters
from repolens.errors import InvalidInput
from repolens.storage.base import FileRow, SourceRow, Store

MAX_MATCHES_PER_FILE = 20  # the count says how many more there are; the lines are the preview
MAX_LINE_CHARS = 300  # minified or data lines are cut in the preview
MAX_PATTERN_CHARS = 1000


@dataclass(frozen=True, slots=True)
class LineMatch:
    """One match: 1-based line and 1-based columns (end exclusive)."""

    line: int
    start_column: int
    end_column: int
    text: str


@dataclass(slots=True)
class GrepHit:
    """A file with matches (or matched by its name only)."""

    source: SourceRow
    file: FileRow
    match_count: int = 0
    matches: list[LineMatch] = field(default_factory=list)
    by_name: bool = False


def grep(
    store: Store,
    sources: list[SourceRow],
    pattern: str,
    *,
    regex: bool = False,
    filters: SearchFilters | None = None,
    limit: int = 50,
    case_sensitive: bool | None = None,
) -> list[GrepHit]:
    """Files whose content (or, for literal patterns, path) matches ``pattern``.

    Case is smart by default: sensitive only if the pattern has an upper-case letter.
    """
    if not pattern or len(pattern) > MAX_PATTERN_CHARS:
        raise InvalidInput(f"pattern must be 1 to {MAX_PATTERN_CHARS} characters")
    if case_sensitive is None:
        case_sensitive = pattern != pattern.lower()
    flags = 0 if case_sensitive else re.IGNORECASE
    try:
        compiled = re.compile(pattern if regex else re.escape(pattern), flags | re.MULTILINE)
    except re.error as exc:
        raise InvalidInput(f"invalid regular expression: {exc}") from None
    filters = filters or SearchFilters()
    by_id = {s.id: s for s in sources}
    hits: list[GrepHit] = []
    name_hits: list[GrepHit] = []
    needle = pattern if case_sensitive else pattern.lower()
    for row, text in store.iter_contents(list(by_id)):
        if not filters.accepts(row.path):
            continue
        hit = GrepHit(by_id[row.source_id], row)
        for m in compiled.finditer(text):
            if m.start() == m.end():
                continue
            hit.match_count += 1
            if len(hit.matches) < MAX_MATCHES_PER_FILE:
                line_start = text.rfind("\n", 0, m.start()) + 1
                line_end = text.find("\n", m.start())
                line_end = len(text) if line_end < 0 else line_end
                line_no = text.count("\n", 0, m.start()) + 1
                hit.matches.append(
                    LineMatch(
                        line_no,
                        m.start() - line_start + 1,
                        min(m.end(), line_end) - line_start + 1,
                        text[line_start:line_end][:MAX_LINE_CHARS],
                    )
                )
        if hit.match_count:
            hits.append(hit)
        elif not regex and needle in (row.path if case_sensitive else row.path.lower()):
            name_hits.append(GrepHit(by_id[row.source_id], row, by_name=True))
        if len(hits) >= limit:
            break
    hits.sort(key=lambda h: -h.match_count)
    return (hits + name_hits)[:limit]
