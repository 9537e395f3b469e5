"""Issue reports taken apart: messages, their constant fragments, trace frames and calls, from tables."""

from __future__ import annotations

import pytest

from repolens.retrieval.query import analyze
from repolens.retrieval.report import Frame, analyze_report, frame_file_matches, is_long, message_fragments

RICH = """MarkupError when printing a message that contains a bracketed path

My backup script prints progress lines and one of them blows up:

```python
from rich.console import Console
console = Console()
console.print(f"Copying [{src}/daily] to remote")
```

```
Traceback (most recent call last):
  File "backup.py", line 4, in <module>
  File ".../site-packages/rich/console.py", line 1705, in print
  File ".../site-packages/rich/console.py", line 1567, in _collect_renderables
rich.errors.MarkupError: closing tag '[/var/backups/daily]' at position 8 doesn't match any open tag
```
"""


def test_a_python_report_is_taken_apart() -> None:
    """Title, exception class, message fragments, frames and the user's API calls each land in their part."""
    parts = analyze_report(RICH)
    assert parts.title.startswith("MarkupError when printing")
    assert parts.exceptions == ("MarkupError",)
    assert "doesn't match any open tag" in parts.fragments
    assert [f.function for f in parts.frames] == ["", "print", "_collect_renderables"]
    assert parts.frames[1].path == ".../site-packages/rich/console.py"
    assert "console.print" in parts.calls and "Console" in parts.calls


@pytest.mark.parametrize(
    ("line", "frame"),
    [
        (
            '  File "/app/venv/lib/jinja2/loaders.py", line 204, in get_source',
            Frame("/app/venv/lib/jinja2/loaders.py", "get_source"),
        ),
        (
            "    at Sender.close (/app/node_modules/ws/lib/sender.js:128:13)",
            Frame("/app/node_modules/ws/lib/sender.js", "close"),
        ),
        ("/gems/grape-1.6.2/lib/grape/path.rb:12:in `suffix'", Frame("/gems/grape-1.6.2/lib/grape/path.rb", "suffix")),
        (
            "#0 /vendor/dbal/src/Connection.php(1234): Doctrine\\DBAL\\Connection->commit()",
            Frame("/vendor/dbal/src/Connection.php", "commit"),
        ),
        ("pl/utils.lua:123: in function 'pl.utils.split'", Frame("pl/utils.lua", "split")),
        ("\tat org.acme.Pool.borrow(Pool.java:42)", Frame("Pool.java", "borrow")),
        ("\t/go/src/raft/raft.go:123 +0x1f", Frame("/go/src/raft/raft.go", "")),
        (
            "   at /cargo/rayon-1.6.1/src/iter/collect/consumer.rs:67:9",
            Frame("/cargo/rayon-1.6.1/src/iter/collect/consumer.rs", ""),
        ),
    ],
)
def test_stack_trace_frames_of_eight_languages(line: str, frame: Frame) -> None:
    """Each runtime's frame format gives the file as written and the function when it names one."""
    assert analyze_report(f"title\n{line}\n").frames == (frame,)


@pytest.mark.parametrize(
    ("messages", "fragments"),
    [
        (["closing tag '[/x]' at position 8 doesn't match any open tag"], ("doesn't match any open tag",)),
        (
            ["unable to get the total number of bytes, please specify 'total'"],
            ("unable to get the total number of bytes, please specify",),
        ),
        (
            ["Invalid value for '--region': 'eu-wset' is not one of 'eu-west', 'us-east'."],
            ("invalid value for", "is not one of"),
        ),
        (["URI malformed"], ()),  # two words occur everywhere
    ],
)
def test_message_fragments_are_the_constant_words_between_values(messages: list[str], fragments: tuple[str, ...]) -> None:
    """Quoted values, paths and numbers split a message; runs of three words or more are kept."""
    assert message_fragments(messages) == fragments


@pytest.mark.parametrize(
    ("frame_path", "expected"),
    [
        (".../site-packages/rich/console.py", ["console.py"]),
        ("/app/node_modules/ws/lib/sender.js", ["lib/sender.js"]),
        ("C:/venv/Lib/site-packages/jinja2/environment.py", ["environment.py"]),
        ("backup.py", []),  # the user's own script is not in the repository
    ],
)
def test_a_trace_file_is_matched_by_its_longest_path_suffix(frame_path: str, expected: list[str]) -> None:
    """Installed paths map onto repository paths by their trailing segments."""
    paths = ["console.py", "lib/sender.js", "lib/receiver.js", "environment.py", "ext/environment_util.py"]
    assert frame_file_matches(frame_path, paths) == expected


def test_long_queries_are_reports_and_short_ones_are_not() -> None:
    """A sentence stays a question; a pasted report gets parts and a bounded term list."""
    assert not is_long("how are routes registered")
    assert analyze("how are routes registered").report is None
    analysis = analyze(RICH)
    assert analysis.report is not None
    assert "MarkupError" in analysis.identifiers
    assert analysis.terms[: len(analysis.focus_terms)] == analysis.focus_terms  # the telling parts first
    assert "would" not in analysis.terms and "blows" in analysis.terms
