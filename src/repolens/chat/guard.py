"""An output filter that keeps the system prompt from leaking through a streamed answer.

The prompt tells the model never to reveal its instructions, but an injected instruction in a
repository may still talk a model into it. So the answer stream passes through this filter:
every line of the system prompt long enough to be distinctive (cut into pieces of at most ~60
characters) is replaced by ``[redacted]`` wherever it appears. To catch a piece that arrives
split across deltas, the filter holds back the last ``longest - 1`` characters until more text
(or the end) arrives; any occurrence that starts in the released part is then complete in the
buffer and gets replaced before release.
"""

from __future__ import annotations

MIN_PROTECTED_CHARS = 24  # shorter lines ("Rules:") are common words, not a leak
# Long lines are protected as pieces of this size: a verbatim leak of the line contains every
# piece, and the filter then only holds back a piece's length of the stream, not a paragraph's.
PIECE_CHARS = 40
REDACTED = "[redacted]"


class LeakGuard:
    """Streams text through, redacting protected strings."""

    def __init__(self, secret_text: str) -> None:
        pieces: set[str] = set()
        for raw in secret_text.splitlines():
            line = raw.strip()
            if len(line) < MIN_PROTECTED_CHARS:
                continue
            parts = [line[i : i + PIECE_CHARS] for i in range(0, len(line), PIECE_CHARS)]
            if len(parts) > 1 and len(parts[-1]) < MIN_PROTECTED_CHARS:
                parts[-2:] = [parts[-2] + parts[-1]]
            pieces.update(parts)
        self._protected = sorted(pieces, key=len, reverse=True)
        self._hold = max((len(p) for p in self._protected), default=1) - 1
        self._buffer = ""
        self.redactions = 0

    def _scrub(self) -> None:
        for secret in self._protected:
            if secret in self._buffer:
                self.redactions += self._buffer.count(secret)
                self._buffer = self._buffer.replace(secret, REDACTED)

    def feed(self, text: str) -> str:
        """The part of the answer so far that is safe to release now."""
        self._buffer += text
        self._scrub()
        if len(self._buffer) <= self._hold:
            return ""
        cut = len(self._buffer) - self._hold
        out, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return out

    def finish(self) -> str:
        """Whatever is still held back, once the answer has ended."""
        self._scrub()
        out, self._buffer = self._buffer, ""
        return out
