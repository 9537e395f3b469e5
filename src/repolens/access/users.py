"""Local users: people who sign in with an email and a password (the web UI, CodeMie's
``local-auth`` login), in the same access vocabulary as keys.

A user belongs to the install's organization as a key does, has a role (``admin`` may manage
data sources, as an admin key may) and optional scopes (repositories or workspaces; none = all).
Passwords are hashed with Argon2id (``argon2-cffi``'s defaults: RFC 9106's low-memory profile,
t=3, m=64 MiB, p=4); a hash made with older parameters is upgraded at the next sign-in.
"""

from __future__ import annotations

import re
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from repolens import validation
from repolens.access.keys import scope_id
from repolens.domain import KeyRole, User
from repolens.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from repolens.storage.base import Database, UserStore

# Long enough that a guess per Argon2 hash (~50 ms here) cannot walk the space; NIST SP 800-63B's
# floor for a memorized secret chosen by the user.
MIN_PASSWORD_CHARS = 8
# A bound on what one sign-in makes the server hash; no passphrase needs more.
MAX_PASSWORD_CHARS = 1_024
MAX_EMAIL_CHARS = 254  # RFC 5321's limit on a forward path, less its angle brackets
MAX_USER_NAME_CHARS = 200
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+$")
BAD_CREDENTIALS = "Invalid email or password"

_hasher = PasswordHasher()
# Checked when the email is unknown, so that an unknown email takes as long to refuse as a
# wrong password (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash("repolens: no such user")


def check_email(email: str) -> str:
    """``email`` trimmed, or InvalidInput."""
    email = (email or "").strip()
    if not email or len(email) > MAX_EMAIL_CHARS or not EMAIL_PATTERN.match(email):
        raise InvalidInput(f"not an email address: {email[:80]!r}")
    return email


def check_password(password: str) -> str:
    """``password`` if its length is acceptable, else InvalidInput (it is never echoed)."""
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInput(f"a password has at most {MAX_PASSWORD_CHARS} characters")
    return password


def create_user(
    db: Database,
    *,
    email: str,
    password: str,
    name: str = "",
    role: KeyRole = "member",
    scopes: tuple[str, ...] = (),
) -> User:
    """A new user; ``scopes`` are data source names or ids (repositories or workspaces)."""
    email = check_email(email)
    name = validation.require_name(name, what="user name", max_chars=MAX_USER_NAME_CHARS) if name.strip() else ""
    scope_ids = tuple(scope_id(db, s) for s in scopes)
    digest = _hasher.hash(check_password(password))
    return db.create_user(email=email, name=name, password_hash=digest, role=role, scopes=scope_ids)


def get_user(db: UserStore, email_or_id: str) -> User:
    """A user by email or id, or NotFound."""
    user = db.get_user(email_or_id.strip())
    if user is None:
        raise NotFound(f"no user {email_or_id!r}")
    return user


def set_disabled(db: UserStore, email_or_id: str, *, disabled: bool) -> User:
    """Turn a user off (sign-in and every token of the user stop at once) or back on."""
    user = get_user(db, email_or_id)
    if disabled and user.disabled_at is None:
        db.update_user(user.id, disabled_at=time.time())
    elif not disabled and user.disabled_at is not None:
        db.update_user(user.id, disabled_at=None)
    return get_user(db, user.public_id)


def set_password(db: UserStore, email_or_id: str, password: str) -> User:
    """Replace a user's password."""
    user = get_user(db, email_or_id)
    db.update_user(user.id, password_hash=_hasher.hash(check_password(password)))
    return get_user(db, user.public_id)


def verify_credentials(db: UserStore, email: str, password: str) -> User:
    """The user whose email and password these are: Unauthorized for a wrong pair (the same
    answer for an unknown email), Forbidden for a disabled user."""
    user = db.get_user(email.strip()) if email and len(email) <= MAX_EMAIL_CHARS else None
    if len(password) > MAX_PASSWORD_CHARS:
        raise Unauthorized(BAD_CREDENTIALS)
    try:
        _hasher.verify(user.password_hash if user is not None else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        raise Unauthorized(BAD_CREDENTIALS) from None
    if user is None:
        raise Unauthorized(BAD_CREDENTIALS)
    if user.disabled_at is not None:
        raise Forbidden(f"user {user.email!r} is disabled")
    fields: dict[str, object] = {"last_login_at": time.time()}
    if _hasher.check_needs_rehash(user.password_hash):
        fields["password_hash"] = _hasher.hash(password)
    db.update_user(user.id, **fields)
    return user
