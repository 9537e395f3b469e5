"""The web UI's three doors for untrusted text (fast tier): highlighted code, rendered answers,
and the sessions a browser signs in with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from repolens.access import keys, sessions
from repolens.errors import Unauthorized
from repolens.services import Services, build_services
from repolens.settings import Settings
from repolens.surfaces.web.render import highlight_lines, render_answer


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
