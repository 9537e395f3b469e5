"""Literal and regex search over file contents, plus file-name hits for literal patterns.

Patterns run on RE2 (``repolens.patterns``), and one search stops with an error once it has
run for ``GREP_DEADLINE_S``: no pattern and no corpus can pin a server thread for long.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from repolens.domain import IndexedFile, SearchFilters, Source
from repolens.patterns import Deadline, UserPattern, deadline_error
from repolens.storage.base import Store

MAX_MATCHES_PER_FILE = 20  # the count says how many more there are; the lines are the preview
MAX_LINE_CHARS = 300  # minified or data lines are cut in the preview
# Wall-clock budget of one search, checked between files and between matches. Measured over the
# sqlalchemy package (270 files, 18 MB on disk) on the 2-core dev VM: a literal 0.05-0.1 s,
# ``def\s+\w+_\w+\(`` 0.3 s, ``(\w+\s?)+$`` 0.6 s, and ``(?s).*a.{100}x`` (the DFA gives up, the
# NFA runs) 5.1 s. 10 s lets ordinary patterns cover corpora ~15x that; a client always gets an answer.
GREP_DEADLINE_S = 10.0


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

    source: Source
    file: IndexedFile
    match_count: int = 0
    matches: list[LineMatch] = field(default_factory=list)
    by_name: bool = False


def grep(
    store: Store,
    sources: list[Source],
    pattern: str,
    *,
    regex: bool = False,
    filters: SearchFilters | None = None,
    limit: int = 50,
    case_sensitive: bool | None = None,
    deadline_s: float = GREP_DEADLINE_S,
) -> list[GrepHit]:
    """Files whose content (or, for literal patterns, path) matches ``pattern``.

    Case is smart by default: sensitive only if the pattern has an upper-case letter. Raises
    ``InvalidInput`` for a malformed or unsupported pattern, and when the search outlasts
    ``deadline_s`` seconds.
    """
    compiled = UserPattern(pattern, regex=regex, case_sensitive=case_sensitive)
    deadline = Deadline.after(deadline_s)
    filters = filters or SearchFilters()
    by_id = {s.id: s for s in sources}
    hits: list[GrepHit] = []
    name_hits: list[GrepHit] = []
    needle = pattern if compiled.case_sensitive else pattern.lower()
    for row, text in store.iter_contents(list(by_id)):
        if deadline.expired():
            raise deadline_error(deadline)
        if not filters.accepts(row.path):
            continue
        hit = GrepHit(by_id[row.source_id], row)
        for start, end in compiled.line_spans(text, deadline=deadline):
            hit.match_count += 1
            if len(hit.matches) < MAX_MATCHES_PER_FILE:
                line_start = text.rfind("\n", 0, start) + 1
                line_end = text.find("\n", start)
                line_end = len(text) if line_end < 0 else line_end
                line_no = text.count("\n", 0, start) + 1
                hit.matches.append(
                    LineMatch(
                        line_no,
                        start - line_start + 1,
                        min(end, line_end) - line_start + 1,
                        text[line_start:line_end][:MAX_LINE_CHARS],
                    )
                )
        if hit.match_count:
            hits.append(hit)
        elif not regex and needle in (row.path if compiled.case_sensitive else row.path.lower()):
            name_hits.append(GrepHit(by_id[row.source_id], row, by_name=True))
        if len(hits) >= limit:
            break
    hits.sort(key=lambda h: -h.match_count)
    return (hits + name_hits)[:limit]
