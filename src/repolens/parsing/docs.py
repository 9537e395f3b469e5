"""Documents split by headings (Markdown, reStructuredText), and plain line windows."""

from __future__ import annotations

import re

from repolens.domain import Section

WINDOW_LINES = 40  # a screenful: long enough for context, short enough to rank precisely
WINDOW_OVERLAP = 5  # a few lines of overlap so a match on a boundary keeps its context
_SECTION_MAX_LINES = 120  # longer sections are cut into windows so one hit is not a whole manual

_MD_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_MD_FENCE = re.compile(r"^\s*(```|~~~)")
_RST_UNDERLINE = re.compile(r"^([=\-`:'\"~^_*+#<>])\1{2,}\s*$")


def line_windows(start: int, end: int, *, title: str = "") -> list[Section]:
    """Cover lines ``start..end`` (inclusive) with overlapping windows."""
    if end < start:
        return []
    out: list[Section] = []
    line = start
    while True:
        last = min(end, line + WINDOW_LINES - 1)
        out.append(Section(line, last, title))
        if last >= end:
            return out
        line = last + 1 - WINDOW_OVERLAP


def _cap(sections: list[Section]) -> list[Section]:
    out: list[Section] = []
    for s in sections:
        if s.end_line - s.start_line + 1 > _SECTION_MAX_LINES:
            out.extend(line_windows(s.start_line, s.end_line, title=s.title))
        else:
            out.append(s)
    return out


def markdown_sections(text: str) -> list[Section]:
    """One section per heading (with its parents' titles as a breadcrumb)."""
    lines = text.split("\n")
    heads: list[tuple[int, int, str]] = []  # (line, level, title)
    in_fence = False
    for i, line in enumerate(lines, start=1):
        if _MD_FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        m = _MD_HEADING.match(line)
        if m:
            heads.append((i, len(m.group(1)), m.group(2).strip()))
    return _cap(_sections_from_heads(heads, len(lines)))


def rst_sections(text: str) -> list[Section]:
    """One section per underlined (or over-and-underlined) title."""
    lines = text.split("\n")
    heads: list[tuple[int, int, str]] = []
    levels: list[str] = []
    for i in range(1, len(lines)):
        under = lines[i]
        title = lines[i - 1].strip()
        if title and _RST_UNDERLINE.match(under) and len(under.strip()) >= len(title) and not _RST_UNDERLINE.match(title):
            char = under.strip()[0]
            if char not in levels:
                levels.append(char)
            start = i  # 1-based line of the title is i (0-based i-1)
            if i >= 2 and lines[i - 2].strip() == under.strip():
                start = i - 1
            heads.append((start, levels.index(char) + 1, title))
    return _cap(_sections_from_heads(heads, len(lines)))


def _sections_from_heads(heads: list[tuple[int, int, str]], n_lines: int) -> list[Section]:
    if not heads:
        return line_windows(1, n_lines)
    out: list[Section] = []
    if heads[0][0] > 1:
        out.append(Section(1, heads[0][0] - 1, ""))
    trail: list[tuple[int, str]] = []
    for index, (line, level, title) in enumerate(heads):
        end = heads[index + 1][0] - 1 if index + 1 < len(heads) else n_lines
        while trail and trail[-1][0] >= level:
            trail.pop()
        trail.append((level, title))
        out.append(Section(line, max(line, end), " > ".join(t for _, t in trail)))
    return out
