"""Web sign-in sessions: a browser proves a credential once and then carries a session cookie.

The cookie holds a 256-bit random secret; the database holds only its SHA-256 digest (as for
API keys: a random secret of that size needs no slow hash), the principal it signed in as and
the session's CSRF token. The principal is stored as a reference, ``key:<key id>``, and resolved
again on every request, so revoking the key (or its expiry) ends its sessions at once. A sign-in
with a local user (email and password) is another kind of reference, ``user:<id>``, resolved the
same way; only ``key:`` exists so far.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from repolens.access.keys import Principal, authenticate, principal_for_key
from repolens.domain import WebSession
from repolens.errors import Unauthorized
from repolens.storage.base import Registry

SESSION_TTL_S = 12 * 3600  # one working day: a browser left open overnight signs in again
_SECRET_BYTES = 32  # 256 bits, like an API key's secret
KEY_PRINCIPAL = "key:"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: who it acts as and the token its forms must carry."""

    principal: Principal
    csrf: str
    row: WebSession


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def sign_in_with_key(db: Registry, token: str, *, ttl_s: float = SESSION_TTL_S) -> tuple[str, Session]:
    """Check an API key and open a session for it: (the cookie secret, shown to the browser once;
    the session)."""
    principal = authenticate(db, token.strip())
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    row = db.create_session(
        digest=_digest(secret),
        principal=KEY_PRINCIPAL + principal.key.key_id,
        csrf=secrets.token_urlsafe(_SECRET_BYTES),
        expires_at=time.time() + ttl_s,
    )
    return secret, Session(principal, row.csrf, row)


def resume(db: Registry, secret: str | None, *, now: float | None = None) -> Session:
    """The session a cookie secret belongs to, or ``Unauthorized`` (unknown, expired, or its
    principal no longer valid)."""
    if not secret or len(secret) > 200:
        raise Unauthorized("not signed in")
    row = db.get_session(_digest(secret))
    moment = now or time.time()
    if row is None or not row.expires_at > moment:
        raise Unauthorized("the session has expired; sign in again")
    if row.principal.startswith(KEY_PRINCIPAL):
        principal = principal_for_key(db, row.principal.removeprefix(KEY_PRINCIPAL), now=moment)
    else:
        raise Unauthorized("the session's sign-in method is not available")
    return Session(principal, row.csrf, row)


def sign_out(db: Registry, secret: str | None) -> None:
    """End the session of a cookie secret (nothing if there is none)."""
    if secret and len(secret) <= 200:
        db.delete_session(_digest(secret))


def csrf_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's."""
    return bool(presented) and hmac.compare_digest(expected.encode(), (presented or "").encode())
