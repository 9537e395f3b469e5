"""Whole issue reports as queries: the parts of a pasted bug report that point at code.

An agent or a developer pastes a report (title, prose, a code snippet, a traceback, error
output) and asks where to look. Read as one bag of words it drowns the few telling terms in
prose; read by parts, each part is evidence of its own kind:

* the **title**, a short summary in the reporter's words;
* **messages**: the exception or error line and quoted output. A message that occurs verbatim
  in a file is the strongest lexical evidence a report holds (the raising or formatting code);
* **frames** of a stack trace (Python, JavaScript, Go, Rust, Ruby, PHP, Lua, Java): the files
  and functions on the way to the failure, usually callers of the code to fix;
* **code**: the user's snippet, whose API calls name the public entry points;
* the remaining **prose**, symptoms in everyday words.

``analyze_report`` is pure and cheap (regular expressions over the text); the search decides
what each part is worth (``retrieval/search.py``, ``retrieval/rerank.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A question is a sentence or two; beyond this many words a query is a report to take apart.
LONG_QUERY_WORDS = 30
# A message fragment shorter than this many words ("closing tag") occurs all over a code
# base; three words in a row ("doesn't match any open") rarely do unless they are the message.
MIN_FRAGMENT_WORDS = 3
MIN_FRAGMENT_CHARS = 12  # ...and a fragment of short words ("is not a") says nothing either
MAX_FRAGMENTS = 12  # enough for a report with several messages; each costs a substring scan
# BM25 over a whole report costs time in proportion to its terms' postings, and most of its
# words are prose. The telling parts' terms come first, then the prose's by how often the
# report repeats them; past this many terms the rest add time and little else.
MAX_REPORT_TERMS = 64
# Words of bug-report prose that say nothing about where the code is (on top of the query
# stop-words): common English verbs, adverbs and pronouns, and a report's own boilerplate.
_REPORT_STOPWORD_TEXT = """
about above actual actually after again against all almost also although always am any anyone anything
anyway appears around back because been before being below between both bug but could did didn doesn
don done during each either else even ever every example expect expected expecting fails fine first
found get gets getting go goes going got had has hasn have having help here hi how however i i'd i'm
ideally if instead into issue it its itself just know least less let like likely look looks lot made
make makes many maybe me might mine more most much must my need needs never new no nor nothing now
obviously of off ok okay once one only or other others otherwise our out over own per perhaps please
pretty probably quite rather really reason right said same saw say says see seem seems seen should
similar simply since so some something sometimes still such sure than thank thanks that the their them
then there these they thing things think this those though through thus to too tried try trying two
under unless until up upon us use used uses using very version via want wanted wants was way we well
went were what whatever when whenever where whether which while who whole why will wish with within
without won work worked working works would wouldn yes yet you your
"""
REPORT_STOPWORDS = frozenset(_REPORT_STOPWORD_TEXT.split())

_FENCE = re.compile(r"^\s*(```|~~~)")
_FRAME_PATTERNS = (
    # Python: File "…/rich/console.py", line 1705, in print
    re.compile(r'File "(?P<path>[^"]+)", line \d+, in (?P<func>[\w<>.]+)'),
    # JavaScript: at Sender.close (/app/node_modules/ws/lib/sender.js:128:13)
    re.compile(r"\bat (?:(?:async |new )?(?P<func>[\w.$<>\[\] ]+?) \()?(?P<path>[^\s()]+\.[cm]?[jt]sx?):\d+(?::\d+)?\)?"),
    # Ruby: /gems/grape/lib/grape/path.rb:12:in `suffix'
    re.compile(r"(?P<path>[\w.@/\\-]+\.rb):\d+:in [`'](?:[\w:]+[#.])?(?P<func>[^'`]+)'"),
    # PHP: #0 /vendor/doctrine/dbal/src/Connection.php(1234): Doctrine\DBAL\Connection->executeQuery()
    re.compile(r"#\d+ (?P<path>[^\s(]+\.php)\(\d+\): (?:[\w\\]+(?:->|::))?(?P<func>\w+)"),
    # Lua: pl/utils.lua:123: in function 'split' / in upvalue 'x' / in method 'y'
    re.compile(r"(?P<path>[\w./\\-]+\.lua):\d+: in (?:\w+ )?[<'`](?:[\w.:]+[.:])?(?P<func>\w+)"),
    # Java and Kotlin: at org.pkg.Class.method(Class.java:42)
    re.compile(r"\bat (?:[\w$]+\.)*(?P<func>[\w$<>]+)\((?P<path>\w+\.(?:java|kt|scala)):\d+\)"),
    # Go: github.com/hashicorp/raft.(*Raft).runFollower(...) then /src/raft/raft.go:123 +0x1f
    re.compile(r"(?P<path>[\w.@/\\-]+\.go):\d+(?: \+0x[0-9a-f]+)?"),
    # Rust: at /cargo/registry/src/…/rayon-1.6.1/src/iter/collect/consumer.rs:67:9
    re.compile(r"(?P<path>[\w.@/\\-]+\.rs):\d+:\d+"),
)
_GO_FUNC = re.compile(r"^\s*[\w./-]+\.(?:\(\*?\w+\)\.)?(?P<func>\w+)\(")
_RUST_FUNC = re.compile(r"^\s*\d+: (?:[\w<>]+::)+(?P<func>\w+)")
# An error line: a qualified exception name and its message (Python, Ruby, JS, Java, PHP),
# or a conventional error prefix (Go `panic:`, Rust `panicked at`, CLI `Error:`).
_EXCEPTION_LINE = re.compile(
    r"^\s*(?:Uncaught |Fatal error: |PHP Fatal error: +)?"
    r"(?P<cls>(?:[\w$]+[.:\\]{1,2})*[\w$]*(?:Error|Exception|Warning|Exit|Panic|Failure|Fault))"
    r"(?: \[[\w_]+\])?: (?P<msg>.+)$"
)
_ERROR_PREFIX = re.compile(
    r"^\s*(?:error|Error|ERROR|panic|fatal|FATAL|thread '[^']*' panicked at)(?:\[\w+\])?[: ]\s*(?P<msg>.+)$"
)
# Quoted output inside prose: "does not have a valid value", `1,000.0 kB`, 'eu-wset'.
_QUOTED = re.compile(r"\"([^\"\n]{8,200})\"|“([^”\n]{8,200})”")
# Pieces of a message that vary between runs: quoted values, bracketed values, paths and numbers.
_VARIABLE = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"|`[^`\n]*`|\[[^\]\n]*\]|\([^)\n]*\)|\S*[/\\]\S*|\b\d[\w.,:+-]*|[<>{}]")
_WORDS = re.compile(r"[A-Za-z][\w'-]*")
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)*")
_CALL = re.compile(r"([A-Za-z_$][\w$]*(?:(?:\.|::|->)[A-Za-z_$][\w$]*)*)\s*\(")
_CODE_KEYWORDS = frozenset(
    {
        "if",
        "for",
        "while",
        "return",
        "print",
        "def",
        "class",
        "function",
        "new",
        "import",
        "from",
        "with",
        "as",
        "not",
        "and",
        "or",
        "in",
        "is",
        "lambda",
        "await",
        "async",
        "let",
        "const",
        "var",
        "fn",
        "func",
        "end",
        "do",
        "then",
        "local",
        "self",
        "this",
        "super",
        "true",
        "false",
        "null",
        "nil",
        "None",
        "True",
        "False",
        "repr",
        "len",
        "str",
        "int",
        "list",
        "dict",
        "require",
        "puts",
        "echo",
        "println",
        "assert",
        "type",
        "Traceback",
    }
)


@dataclass(frozen=True, slots=True)
class Frame:
    """One stack-trace frame: the file as written in the trace and the function, if named."""

    path: str
    function: str


@dataclass(frozen=True, slots=True)
class ReportParts:
    """A long query taken apart (each part is text; empty when the report has none)."""

    title: str
    messages: tuple[str, ...]  # error lines and quoted output, without exception class names
    exceptions: tuple[str, ...]  # exception or error class names (`MarkupError`)
    fragments: tuple[str, ...]  # the constant pieces of the messages, to look for verbatim
    frames: tuple[Frame, ...]
    calls: tuple[str, ...]  # names called in the code snippets (`console.print`, `wrap_file`)
    code: str
    prose: str


def is_long(text: str) -> bool:
    """Whether ``text`` reads as a report rather than a question."""
    return len(text.split()) >= LONG_QUERY_WORDS


def analyze_report(text: str) -> ReportParts:
    """Split a pasted report into its parts (see the module docstring)."""
    lines = text.strip().splitlines()
    title = lines[0].strip() if lines else ""
    code_lines: list[str] = []
    prose_lines: list[str] = []
    in_fence = False
    for line in lines[1:]:
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        # Indented blocks and shell prompts are code too (Markdown's four spaces, `$ cmd`).
        if in_fence or line.startswith(("    ", "\t", "$ ", ">>> ")):
            code_lines.append(line)
        else:
            prose_lines.append(line)
    messages: list[str] = []
    exceptions: list[str] = []
    frames: list[Frame] = []
    pending_func = ""
    for line in lines:
        frame = _frame(line, pending_func)
        if frame is not None:
            frames.append(frame)
            pending_func = ""
            continue
        go_or_rust = _GO_FUNC.match(line) or _RUST_FUNC.match(line)
        pending_func = go_or_rust.group("func") if go_or_rust else ""
        exc = _EXCEPTION_LINE.match(line)
        if exc:
            cls = re.split(r"[.:\\]+", exc.group("cls"))[-1]
            if cls:
                exceptions.append(cls)
            messages.append(exc.group("msg").strip())
            continue
        err = _ERROR_PREFIX.match(line)
        if err:
            messages.append(err.group("msg").strip())
    messages.extend((m.group(1) or m.group(2)).strip() for m in _QUOTED.finditer("\n".join([title, *prose_lines])))
    code = "\n".join(code_lines)
    calls = [
        name
        for name in dict.fromkeys(_CALL.findall(code + "\n" + title + "\n" + "\n".join(prose_lines)))
        if name not in _CODE_KEYWORDS
    ]
    return ReportParts(
        title=title,
        messages=tuple(dict.fromkeys(messages)),
        exceptions=tuple(dict.fromkeys(exceptions)),
        fragments=message_fragments(messages),
        frames=tuple(frames),
        calls=tuple(calls),
        code=code,
        prose="\n".join(prose_lines),
    )


def _frame(line: str, pending_func: str) -> Frame | None:
    for pattern in _FRAME_PATTERNS:
        match = pattern.search(line)
        if match:
            func = match.groupdict().get("func") or pending_func or ""
            func = func.strip().rsplit(".", 1)[-1]
            return Frame(path=match.group("path").replace("\\", "/"), function=func if func.isidentifier() else "")
    return None


def message_fragments(messages: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The constant pieces of error messages: what a format string in the code holds verbatim.

    Values that vary between runs (quoted or bracketed values, paths, numbers) split a message;
    the pieces left with at least ``MIN_FRAGMENT_WORDS`` words are kept, lower-cased.
    """
    out: dict[str, None] = {}
    for message in messages:
        for piece in _VARIABLE.split(message):
            words = _WORDS.findall(piece)
            if len(words) < MIN_FRAGMENT_WORDS:
                continue
            # from the first word to the last: punctuation around a fragment is not in the code
            start = piece.find(words[0])
            end = piece.rfind(words[-1]) + len(words[-1])
            fragment = piece[start:end].strip().lower()
            if len(fragment) >= MIN_FRAGMENT_CHARS:
                out.setdefault(fragment, None)
    return tuple(out)[:MAX_FRAGMENTS]


def frame_file_matches(frame_path: str, paths: list[str]) -> list[str]:
    """The repository paths a trace's file names: the longest matching run of trailing segments.

    A trace shows installed paths (``…/site-packages/rich/console.py``); the repository holds
    ``rich/console.py`` or, for a package root, ``console.py``. Only the best suffix length counts.
    """
    segments = [s for s in frame_path.split("/") if s and s != "..." and s != "…"]
    if not segments:
        return []
    best: list[str] = []
    best_len = 0
    for path in paths:
        parts = path.split("/")
        n = 0
        while n < min(len(parts), len(segments)) and parts[-1 - n] == segments[-1 - n]:
            n += 1
        if n > best_len:
            best, best_len = [path], n
        elif n == best_len and n > 0:
            best.append(path)
    return best
