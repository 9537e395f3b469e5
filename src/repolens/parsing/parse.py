"""Parse one file: tree-sitter for code, headings for documents, line windows otherwise."""

from __future__ import annotations

import logging

from repolens.domain import ParsedFile, SourceFile
from repolens.parsing import docs, treesitter

log = logging.getLogger(__name__)


def parse_file(file: SourceFile) -> ParsedFile:
    """Everything parsing can learn about ``file``; never raises for bad content."""
    language = file.language
    if language == "markdown":
        return ParsedFile((), (), tuple(docs.markdown_sections(file.text)), "markdown")
    if language == "rst":
        return ParsedFile((), (), tuple(docs.rst_sections(file.text)), "rst")
    n_lines = file.text.count("\n") + 1
    if treesitter.supported(language):
        assert language is not None
        try:
            return treesitter.parse_code(file.text, language, file.path)
        except Exception as exc:
            log.warning("parse failed for %s (%s), using line windows: %s", file.path, language, exc)
            log.debug("parse failure detail", exc_info=True)
            return ParsedFile((), (), tuple(docs.line_windows(1, n_lines)), "lines", error=str(exc))
    return ParsedFile((), (), tuple(docs.line_windows(1, n_lines)), "lines")
