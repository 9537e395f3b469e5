"""Local users and sign-in, called in process over a real SQLite file (not in tests/unit: every
sign-in is a real Argon2id hash, ~0.3 s on this machine kind): a token names its user,
disabling ends it at once, guessing is throttled, scopes work as a key's, and CodeMie's dev
header means nothing unless the operator enabled it. (Both backends and the HTTP surface:
tests/test_codemie.py.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from repolens import catalog
from repolens.access import users
from repolens.access.identity import MAX_FAILED_SIGN_INS, Authenticator
from repolens.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized
from repolens.services import Services, build_services
from repolens.settings import Settings


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Services]:
    services = build_services(Settings(home=tmp_path / "home", embedder="hash"))
    yield services
    services.close()


def test_a_sign_in_token_names_its_user_until_the_user_is_disabled(local: Services) -> None:
    db, auth = local.store, local.authenticator
    user = users.create_user(db, email="Eve@Example.com", password="eve password", role="member")
    session = auth.login(db, "eve@example.com", "eve password")
    principal = auth.principal(db, f"Bearer {session.token}", None)
    assert principal.person is not None and principal.person.subject == user.public_id
    assert principal.key.key_id == f"user-{user.public_id}" and not principal.is_admin
    found = db.get_user(user.public_id)
    assert found is not None and found.last_login_at is not None
    with pytest.raises(Unauthorized):  # a token whose signature does not match
        Authenticator(local.settings).principal(db, f"Bearer {session.token[:-4]}AAAA", None)
    users.set_disabled(db, user.email, disabled=True)
    with pytest.raises(Unauthorized):
        auth.principal(db, f"Bearer {session.token}", None)
    with pytest.raises(Forbidden):
        auth.login(db, user.email, "eve password")
    users.set_disabled(db, user.email, disabled=False)
    assert auth.principal(db, f"Bearer {session.token}", None).person is not None
    users.set_password(db, user.email, "a new password")
    with pytest.raises(Unauthorized):
        auth.login(db, user.email, "eve password")
    assert auth.login(db, user.email, "a new password").user.id == user.id


def test_bad_users_are_refused(local: Services) -> None:
    db = local.store
    users.create_user(db, email="eve@example.com", password="eve password")
    with pytest.raises(Conflict):
        users.create_user(db, email="EVE@example.com", password="eve password")
    with pytest.raises(InvalidInput, match="at least 8"):
        users.create_user(db, email="dan@example.com", password="short")
    with pytest.raises(InvalidInput, match="not an email"):
        users.create_user(db, email="not-an-email", password="long enough")
    with pytest.raises(NotFound, match="no such repository"):
        users.create_user(db, email="sam@example.com", password="long enough", scopes=("no-such-repo",))
    assert [u.email for u in db.list_users()] == ["eve@example.com"]  # nothing half-written


def test_guessing_is_throttled_per_email(local: Services) -> None:
    db, auth = local.store, local.authenticator
    user = users.create_user(db, email="eve@example.com", password="eve password")
    for _ in range(MAX_FAILED_SIGN_INS):
        with pytest.raises(Unauthorized):
            auth.login(db, "EVE@example.com", "a wrong guess")
    with pytest.raises(RateLimited):  # even the right password waits for the window to end
        auth.login(db, "eve@example.com", "eve password")
    users.create_user(db, email="other@example.com", password="other password")  # another email is not affected
    assert auth.login(db, "other@example.com", "other password").user.email == "other@example.com"
    assert Authenticator(local.settings).login(db, "eve@example.com", "eve password").user.id == user.id


def test_a_scoped_user_sees_what_its_scope_names(local: Services) -> None:
    db, auth = local.store, local.authenticator
    other = db.create_source(name="other", location="/srv/other", branch=None)
    mine = db.create_source(name="mine", location="/srv/mine", branch=None)
    scoped = users.create_user(db, email="sam@example.com", password="sam password", scopes=("mine",))
    sam = auth.principal(db, f"Bearer {auth.login(db, scoped.email, 'sam password').token}", None)
    visible = catalog.visible_ids(db, sam)
    assert visible == frozenset({mine.id}) and other.id not in visible


def test_the_dev_header_is_refused_unless_enabled(local: Services, tmp_path: Path) -> None:
    db = local.store
    with pytest.raises(Unauthorized):
        local.authenticator.principal(db, "dev-codemie-user", None)
    enabled = Authenticator(Settings(home=tmp_path / "home", embedder="hash", codemie_dev_auth=True))
    dev = enabled.principal(db, "dev-codemie-user", None)
    assert dev.is_admin and dev.person is not None and dev.person.via == "dev"
