"""API keys: minted once, stored as a digest, resolved into the ``Principal`` a request runs as.

A key looks like CodeAlive's own (``ca_<10-16 digits>_<43 url-safe characters>``), so its
clients recognise it as an API key and not as an OAuth token. The digits are the key's
public id (listed, revoked by); only a SHA-256 digest of the 256-bit secret is stored, which
is enough for a random secret of that size (no slow hash needed: nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from repolens import validation
from repolens.domain import ApiKey, KeyRole, Source, Usage
from repolens.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from repolens.storage.base import IndexDatabase, KeyStore, Registry

if TYPE_CHECKING:
    from repolens.storage.base import Database

KEY_PREFIX = "ca_"
KEY_PATTERN = re.compile(r"^ca_(?P<id>[0-9]{10,16})_(?P<secret>[A-Za-z0-9_-]{43})$")
_KEY_ID_DIGITS = 13
_SECRET_BYTES = 32  # 256 bits -> 43 url-safe characters
MAX_KEY_NAME_CHARS = 200

Role = KeyRole


@dataclass(frozen=True, slots=True)
class Plan:
    """Requests per hour and requests in flight allowed for a key."""

    name: str
    requests_per_hour: int
    concurrency: int


# CodeAlive's published plans (specs/codealive.md §1.3); "custom" takes explicit numbers.
PLANS: dict[str, Plan] = {
    "free": Plan("free", 100, 5),
    "pro": Plan("pro", 1_000, 20),
    "team": Plan("team", 5_000, 50),
}
ADMIN_PLAN = Plan("custom", 100_000, 100)  # the bootstrap key: the operator's own, not a tenant's


def plan_for(name: str, *, requests_per_hour: int | None = None, concurrency: int | None = None) -> Plan:
    """A named plan, or a custom one from explicit numbers."""
    key = name.lower()
    if key == "custom":
        if not requests_per_hour or not concurrency or requests_per_hour < 1 or concurrency < 1:
            raise InvalidInput("a custom plan needs positive requests per hour and concurrency")
        return Plan("custom", requests_per_hour, concurrency)
    if key not in PLANS:
        raise InvalidInput(f"unknown plan {name!r}; use one of {', '.join([*PLANS, 'custom'])}")
    base = PLANS[key]
    return Plan(base.name, requests_per_hour or base.requests_per_hour, concurrency or base.concurrency)


def digest(secret: str) -> str:
    """The stored form of a key's secret part."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class MintedKey:
    """A new key: ``token`` is shown once and never stored."""

    token: str
    row: ApiKey


def create_key(
    db: Database,
    *,
    name: str,
    plan: Plan,
    role: Role = "member",
    scopes: tuple[str, ...] = (),
    expires_at: float | None = None,
) -> MintedKey:
    """Mint a key; ``scopes`` are data source names or ids (repositories or workspaces)."""
    name = validation.require_name(name, what="key name", max_chars=MAX_KEY_NAME_CHARS)
    if expires_at is not None:
        validation.require_future_timestamp(expires_at, what="expiresAt")
    scope_ids = tuple(scope_id(db, s) for s in scopes)
    key_id = str(secrets.randbelow(9 * 10 ** (_KEY_ID_DIGITS - 1)) + 10 ** (_KEY_ID_DIGITS - 1))
    secret = secrets.token_urlsafe(_SECRET_BYTES)
    row = db.create_key(
        key_id=key_id,
        digest=digest(secret),
        name=name,
        role=role,
        plan=plan.name,
        requests_per_hour=plan.requests_per_hour,
        concurrency=plan.concurrency,
        scopes=scope_ids,
        expires_at=expires_at,
    )
    return MintedKey(f"{KEY_PREFIX}{key_id}_{secret}", row)


def scope_id(db: IndexDatabase, name_or_id: str) -> str:
    """The public id of the repository or workspace a key or user may be scoped to."""
    source = db.get_source(name_or_id)
    if source is not None:
        return source.public_id
    workspace = db.get_workspace(name_or_id)
    if workspace is not None:
        return workspace.public_id
    raise NotFound(f"cannot scope to {name_or_id!r}: no such repository or workspace")


SignIn = Literal["password", "oidc", "dev"]


@dataclass(frozen=True, slots=True)
class Person:
    """Who signed in, when a request runs as a person rather than as an API key."""

    subject: str  # the user's public id (local users) or the issuer's ``sub`` (OIDC)
    email: str
    name: str
    via: SignIn
    projects: tuple[str, ...]  # the organization's projects this person belongs to
    admin_projects: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Principal:
    """The key a request runs as, and what it may see.

    A signed-in person runs under a key-shaped account (``access.identity.account_for``): its
    ``key_id`` is ``user-...``/``oidc-...``, so quotas, conversation ownership and usage work
    the same for a person as for a key; ``person`` says who it is.
    """

    key: ApiKey
    person: Person | None = None

    @property
    def is_admin(self) -> bool:
        """Whether the key may manage keys and data sources."""
        return self.key.role == "admin"

    def visible_source_ids(self, db: IndexDatabase) -> frozenset[int] | None:
        """Source row ids the key may see; None means every source."""
        if not self.key.scopes:
            return None
        ids: set[int] = set()
        for public_id in self.key.scopes:
            source = db.get_source(public_id)
            if source is not None:
                ids.add(source.id)
                continue
            workspace = db.get_workspace(public_id)
            if workspace is not None:
                ids.update(workspace.source_ids)
        return frozenset(ids)

    def can_see(self, db: IndexDatabase, source: Source) -> bool:
        """Whether ``source`` is within the key's scope."""
        visible = self.visible_source_ids(db)
        return visible is None or source.id in visible

    def require_admin(self) -> None:
        """Refuse unless the key is an admin key."""
        if not self.is_admin:
            raise Forbidden("this needs an admin API key")


def authenticate(db: KeyStore, token: str | None, *, now: float | None = None) -> Principal:
    """The principal for a presented key, or ``Unauthorized``."""
    if not token:
        raise Unauthorized("Invalid or missing API key")
    match = KEY_PATTERN.match(token.strip())
    if match is None:
        raise Unauthorized("Invalid or missing API key")
    row = db.get_key(match.group("id"))
    if row is None or not hmac.compare_digest(row.digest, digest(match.group("secret"))):
        raise Unauthorized("Invalid or missing API key")
    return _usable(row, now)


def principal_for_key(db: KeyStore, key_id: str, *, now: float | None = None) -> Principal:
    """The principal of a key already proven once (a web session signed in with it): still
    ``Unauthorized`` if it has since been revoked, has expired or is gone."""
    row = db.get_key(key_id)
    if row is None:
        raise Unauthorized("API key no longer exists")
    return _usable(row, now)


def _usable(row: ApiKey, now: float | None) -> Principal:
    if row.revoked_at is not None:
        raise Unauthorized("API key has been revoked")
    # Written as "not later than now" so that a NaN stored before expiries were validated counts
    # as expired (every comparison with NaN is false) instead of never expiring.
    if row.expires_at is not None and not row.expires_at > (now or time.time()):
        raise Unauthorized("API key has expired")
    return Principal(row)


def bearer_token(authorization: str | None, api_key_header: str | None) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    if api_key_header and api_key_header.strip():
        return api_key_header.strip()
    return None


def bootstrap_admin(db: Database) -> MintedKey | None:
    """On an install with no keys at all, mint the first admin key (to be printed once)."""
    db.organization("default")
    if db.list_keys():
        return None
    return create_key(db, name="admin", plan=ADMIN_PLAN, role="admin")


def keys_with_usage(db: Registry) -> list[tuple[ApiKey, Usage]]:
    """Every key (metadata only) with its chat use so far."""
    return [(key, db.usage(key.key_id)) for key in db.list_keys()]
