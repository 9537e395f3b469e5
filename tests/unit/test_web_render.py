"""The web UI's three doors for untrusted text (fast tier): highlighted code, rendered answers,
and the sessions a browser signs in with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from repolens.access import keys, sessions, users
from repolens.errors import Forbidden, Unauthorized
from repolens.services import Services, build_services
from repolens.settings import Settings
from repolens.surfaces.web.pages import FIRST_SCREEN_RESULTS, Snippet
from repolens.surfaces.web.render import FLUSH, highlight_lines, render_answer, stream


def test_highlighting_keeps_every_line_in_place_and_escapes_it() -> None:
    text = "\n\n# <script>alert(1)</script>\ndef f():\n    return '<img onerror=x>'\n\n"
    lines = highlight_lines(text, "evil.py")
    assert len(lines) == text.count("\n") + 1  # leading and trailing blank lines kept: numbers stay right
    assert lines[0] == lines[1] == ""
    assert "<script>" not in lines[2] and "&lt;script&gt;" in lines[2]
    assert "<img" not in lines[4] and "&lt;img onerror=x&gt;" in lines[4]
    assert 'class="k"' in lines[3]  # highlighted: `def` is a keyword token
    # A language Pygments does not know is plain escaped text, still one entry per line.
    plain = highlight_lines("a <b>\nc", "notes.unknownext")
    assert [str(x) for x in plain] == ["a &lt;b&gt;", "c"]


def test_only_tokens_coloured_unlike_plain_text_get_a_span() -> None:
    line = highlight_lines("value = compute(a, b)  # why", "calc.py")[0]
    # names, punctuation and blanks look like the text around them in both themes: no span
    assert 'class="n"' not in line and 'class="p"' not in line and 'class="w"' not in line
    assert line.startswith("value ") and "compute(a, b)" in line
    assert '<span class="o">' in line and '<span class="c1"># why</span>' in line  # operator, comment coloured
    # a run of one class is one span, a blank between two keywords joins the first
    assert highlight_lines("from x import y", "m.py")[0].count('<span class="kn">') == 2
    assert highlight_lines("not None", "m.py")[0] == '<span class="ow">not </span><span class="kc">None</span>'


def test_a_streamed_page_is_cut_after_its_first_screen_and_highlights_a_result_only_when_sent() -> None:
    highlighted: list[int] = []

    class Counted(Snippet):
        def __iter__(self):  # type: ignore[no-untyped-def]  # the parent's, noted
            highlighted.append(self.start)
            return super().__iter__()

    results = [
        {
            "kind": "Symbol",
            "identifier": f"geo::geo/a.py::f{n}",
            "path": "geo/a.py",
            "start": n,
            "end": n,
            "description": "",
            "lines": Counted(f"f{n} = '<b>'", "geo/a.py", n, frozenset({n})),
            "target": (n, n),
        }
        for n in range(1, FIRST_SCREEN_RESULTS + 3)
    ]
    form = {"q": "f", "source": "", "path": "", "lang": "", "mode": "auto", "regex": False}
    context = {"principal": None, "csrf": "", "csrf_field": "csrf", "form": form, "choices": [], "languages": []}
    pieces, seen = [], []
    for piece in stream("search.html", **context, results=results, index=None, error="", first_screen=FIRST_SCREEN_RESULTS):
        pieces.append(piece)
        seen.append(len(highlighted))  # what had been highlighted when this piece went out
    assert len(pieces) == 3  # the top of the page, the first screen's results, the rest
    assert '<ol class="results" id="results">' in pieces[0] and 'class="result"' not in pieces[0]
    assert pieces[1].count('<li class="result"') == FIRST_SCREEN_RESULTS and pieces[2].count('<li class="result"') == 2
    assert seen == [0, FIRST_SCREEN_RESULTS, FIRST_SCREEN_RESULTS + 2]  # the rest highlighted after the first screen left
    assert "</html>" in pieces[-1] and FLUSH not in "".join(pieces)
    assert '<span class="line hit" data-n="2">' in pieces[1] and "&lt;b&gt;" in pieces[1]


def test_an_answer_renders_as_markdown_with_no_way_to_run_anything() -> None:
    cite = {"n": 1, "identifier": "geo::geo/shapes.py::total_area", "path": "geo/shapes.py", "startLine": 21, "endLine": 23}
    html = render_answer(
        "It is `total_area` [1], not [7].\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) "
        "<img src=x onerror=alert(1)>\n\n```python\nprint('<b>')\n```",
        [cite],
    )
    assert "<code>total_area</code>" in html
    assert 'class="cite"' in html and "lines=21-23#L21" in html and "[7]" in html  # unknown numbers stay text
    assert html.count('class="cite"') == 1
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<img" not in html and 'href="javascript' not in html
    assert '<pre class="code">' in html and "&lt;b&gt;" in html


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(Settings(home=tmp_path / "home", embedder="hash"))
    yield built
    built.close()


def test_a_session_lives_until_sign_out_expiry_or_revocation(services: Services) -> None:
    db = services.store
    minted = keys.create_key(db, name="ui", plan=keys.PLANS["free"])
    secret, session = sessions.sign_in_with_key(db, minted.token)
    assert sessions.resume(db, secret).principal.key.key_id == minted.row.key_id
    assert minted.token not in repr(db.get_session(session.row.digest))  # only a digest of the cookie is stored
    assert sessions.csrf_matches(session.csrf, session.csrf) and not sessions.csrf_matches(session.csrf, "x")
    with pytest.raises(Unauthorized):
        sessions.resume(db, secret, now=time.time() + sessions.SESSION_TTL_S + 1)  # expired
    sessions.sign_out(db, secret)
    with pytest.raises(Unauthorized):
        sessions.resume(db, secret)  # signed out
    secret, _ = sessions.sign_in_with_key(db, minted.token)
    assert db.revoke_key(minted.row.key_id)
    with pytest.raises(Unauthorized, match="revoked"):
        sessions.resume(db, secret)  # the key's revocation ends its sessions
    with pytest.raises(Unauthorized):
        sessions.sign_in_with_key(db, minted.token)
    with pytest.raises(Unauthorized):
        sessions.resume(db, "not-a-session")


def test_a_users_session_ends_when_the_user_is_disabled(services: Services) -> None:
    db = services.store
    people = services.authenticator
    users.create_user(db, email="ada@example.com", password="ada's password")
    with pytest.raises(Unauthorized):
        sessions.sign_in_with_user(db, people, "ada@example.com", "wrong password")
    secret, session = sessions.sign_in_with_user(db, people, "ADA@example.com ", "ada's password")
    assert session.row.principal == f"user:{users.get_user(db, 'ada@example.com').public_id}"
    for resumed in (sessions.resume(db, secret, people), sessions.resume(db, secret)):
        assert resumed.principal.person is not None and resumed.principal.person.email == "ada@example.com"
        assert resumed.principal.key.key_id == session.principal.key.key_id and not resumed.principal.is_admin
    users.set_disabled(db, "ada@example.com", disabled=True)
    with pytest.raises(Unauthorized, match="disabled"):
        sessions.resume(db, secret, people)  # at once: the user row is read on every request
    with pytest.raises(Forbidden, match="disabled"):
        sessions.sign_in_with_user(db, people, "ada@example.com", "ada's password")
    users.set_disabled(db, "ada@example.com", disabled=False)
    assert sessions.resume(db, secret, people).principal.person is not None  # the session itself was not lost
