"""Who a request runs as: the one place that turns credentials into a ``Principal``.

Every surface (the REST dialects, MCP over HTTP, the web UI) gets its principal from here,
through the access middleware, so a credential means the same thing everywhere:

* an API key (``ca_...``) as a Bearer token or ``x-api-key`` (``access.keys``);
* a sign-in token of a local user: an HS256 JWT that ``login`` issues, signed with a secret of
  the install (``meta``), naming the user; the user row is read on every request, so disabling
  a user ends every token at once;
* an OIDC access token (Keycloak, as CodeMie deploys it) when ``REPOLENS_OIDC_ISSUER`` is set:
  an RS256/ES256 JWT checked against the issuer's JWKS, its issuer, expiry and (if set) audience;
  its project claim (``applications``) must name this install's organization;
* CodeMie SDK's bare ``Authorization: dev-codemie-user`` (no Bearer), only with
  ``REPOLENS_CODEMIE_DEV_AUTH=1``: an admin, for local development.

A signed-in person runs under a key-shaped account (``account_for``) so that quotas, the
ownership of conversations and usage are counted per person exactly as per key.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from repolens.access.keys import KEY_PATTERN, PLANS, Person, Principal, authenticate, bearer_token
from repolens.access.users import MAX_EMAIL_CHARS, verify_credentials
from repolens.domain import ApiKey, KeyRole, User
from repolens.errors import Forbidden, NotFound, ProviderError, RateLimited, Unauthorized
from repolens.settings import Settings
from repolens.storage.base import Database, UserStore

if TYPE_CHECKING:
    from jwt import PyJWKClient

SESSION_ISSUER = "repolens"
SESSION_AUDIENCE = "repolens-session"
SESSION_ALGORITHM = "HS256"
SESSION_SECRET = "session-signing"  # the install secret's name in ``meta``
DEV_HEADER = "dev-codemie-user"  # what CodeMie's SDK sends on localhost without credentials
DEV_SUBJECT = "dev-codemie-user"
# Algorithms an identity provider may sign with; never "none" or an HMAC one (a public JWKS
# key must not be usable as an HMAC secret).
OIDC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
CLOCK_LEEWAY_S = 30  # clock skew tolerated between the identity provider and this host
JWKS_CACHE_S = 300  # keys are re-read this often (and at once for an unknown ``kid``: key rotation)
DISCOVERY_TIMEOUT_S = 10
# Failed sign-ins tolerated per email and window before the email is refused until the window
# ends: ten guesses a quarter hour leave a password of MIN_PASSWORD_CHARS out of reach, and a
# person mistyping is not locked out for long. Counted per server process. Successful sign-ins
# are not counted: CodeMie's MCP servers sign in again before every tool call.
MAX_FAILED_SIGN_INS = 10
SIGN_IN_WINDOW_S = 15 * 60
# A person's quota: a pro plan's 1,000 requests an hour is ~17 a minute sustained, more than a
# person at a client makes; each person has their own.
PERSON_PLAN = PLANS["pro"]


@dataclass(frozen=True, slots=True)
class SessionToken:
    """A sign-in token and how long it lasts."""

    token: str
    expires_in: int
    user: User


def account_for(subject: str, *, name: str, role: KeyRole, scopes: tuple[str, ...], created_at: float) -> ApiKey:
    """The key-shaped account a person's requests are metered and owned under."""
    return ApiKey(
        id=0,
        key_id=subject,
        digest="",
        name=name,
        role=role,
        plan="person",
        requests_per_hour=PERSON_PLAN.requests_per_hour,
        concurrency=PERSON_PLAN.concurrency,
        scopes=scopes,
        created_at=created_at,
        expires_at=None,
        revoked_at=None,
        last_used_at=None,
    )


def user_principal(user: User, projects: tuple[str, ...]) -> Principal:
    """The principal of a local user."""
    account = account_for(
        f"user-{user.public_id}", name=user.email, role=user.role, scopes=user.scopes, created_at=user.created_at
    )
    admin = projects if user.role == "admin" else ()
    person = Person(user.public_id, user.email, user.name or user.email, "password", projects, admin)
    return Principal(account, person)


def principal_for_user(db: UserStore, user_id: str, projects: tuple[str, ...]) -> Principal:
    """The principal of the user ``user_id`` as the database has it now: Unauthorized if the user
    no longer exists or is disabled."""
    user = db.get_user(user_id)
    if user is None:
        raise Unauthorized("the user of this sign-in no longer exists")
    if user.disabled_at is not None:
        raise Unauthorized(f"user {user.email!r} is disabled")
    return user_principal(user, projects)


class Authenticator:
    """Resolves a request's credentials into its ``Principal`` (one per server)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._jwks: PyJWKClient | None = None
        self._secret = ""
        self._org_projects: tuple[str, ...] = ()
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[float, int]] = {}  # email -> (window start, failed sign-ins)

    def _session_secret(self, db: Database) -> str:
        # Read once: the secret never changes, and reading it is a write transaction.
        if not self._secret:
            self._secret = db.install_secret(SESSION_SECRET)
        return self._secret

    def principal(self, db: Database, authorization: str | None, api_key: str | None) -> Principal:
        """The principal for these headers, or Unauthorized (Forbidden for a valid person
        outside this organization)."""
        if self.settings.codemie_dev_auth and (authorization or "").strip() == DEV_HEADER:
            return self._dev(db)
        token = bearer_token(authorization, api_key)
        if not token or KEY_PATTERN.match(token) or token.count(".") != 2:
            return authenticate(db, token)
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise Unauthorized("Invalid or missing API key") from None
        issuer = unverified.get("iss")
        if issuer == SESSION_ISSUER:
            return self._session(db, token)
        if self.settings.oidc_issuer and issuer == self.settings.oidc_issuer:
            return self._oidc(db, token)
        raise Unauthorized("token issuer is not accepted by this server")

    # -- local users ------------------------------------------------------------------------

    def check_password(self, db: Database, email: str, password: str) -> User:
        """The user whose email and password these are (``verify_credentials``), throttled per
        email: RateLimited after MAX_FAILED_SIGN_INS failures in a window. Every way a person
        signs in with a password (the API's ``login``, the web UI's form) comes through here, so
        they share one count."""
        who = email.strip().lower()[:MAX_EMAIL_CHARS]
        self._check_failures(who)
        try:
            return verify_credentials(db, email, password)
        except Unauthorized:
            self._count_failure(who)
            raise

    def user(self, db: Database, user_id: str) -> Principal:
        """The principal of the user ``user_id`` (a public id), read afresh: Unauthorized if the
        user is gone or disabled, so that every sign-in of the user ends at once."""
        return principal_for_user(db, user_id, self.projects(db))

    def login(self, db: Database, email: str, password: str) -> SessionToken:
        """Check a user's email and password and issue a sign-in token."""
        user = self.check_password(db, email, password)
        now = int(time.time())
        claims = {
            "iss": SESSION_ISSUER,
            "aud": SESSION_AUDIENCE,
            "sub": user.public_id,
            "email": user.email,
            "iat": now,
            "exp": now + self.settings.session_ttl_s,
        }
        token = jwt.encode(claims, self._session_secret(db), algorithm=SESSION_ALGORITHM)
        return SessionToken(token, self.settings.session_ttl_s, user)

    def _check_failures(self, who: str) -> None:
        now = time.time()
        with self._lock:
            start, failed = self._failures.get(who, (now, 0))
            if now - start >= SIGN_IN_WINDOW_S:
                self._failures.pop(who, None)
                return
        if failed >= MAX_FAILED_SIGN_INS:
            wait = int(start + SIGN_IN_WINDOW_S - now) + 1
            raise RateLimited(f"too many failed sign-ins for this email; try again in {wait} s", wait)

    def _count_failure(self, who: str) -> None:
        now = time.time()
        with self._lock:
            start, failed = self._failures.get(who, (now, 0))
            if now - start >= SIGN_IN_WINDOW_S:
                start, failed = now, 0
            self._failures[who] = (start, failed + 1)

    def _session(self, db: Database, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._session_secret(db),
                algorithms=[SESSION_ALGORITHM],
                audience=SESSION_AUDIENCE,
                issuer=SESSION_ISSUER,
                options={"require": ["exp", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("sign-in token has expired; sign in again") from None
        except jwt.InvalidTokenError:
            raise Unauthorized("invalid sign-in token") from None
        return self.user(db, str(claims["sub"]))

    # -- OIDC -------------------------------------------------------------------------------

    def _oidc(self, db: Database, token: str) -> Principal:
        settings = self.settings
        try:
            key = self._jwks_client().get_signing_key_from_jwt(token).key
        except jwt.PyJWKClientConnectionError as exc:
            raise ProviderError(f"cannot fetch the identity provider's keys: {exc}") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as exc:
            raise Unauthorized(f"token not signed by a key of {settings.oidc_issuer}: {exc}") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(OIDC_ALGORITHMS),
                issuer=settings.oidc_issuer,
                audience=settings.oidc_audience or None,
                leeway=CLOCK_LEEWAY_S,
                options={"require": ["exp", "iss", "sub"], "verify_aud": bool(settings.oidc_audience)},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("token has expired") from None
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        ours = self.projects(db)
        accepted = set(settings.oidc_projects or ours)
        claim = settings.oidc_project_claim
        member = [p for p in _strings(claims.get(claim)) if p in accepted]
        if not member:
            raise Forbidden(
                f"the token's {claim!r} claim names none of this server's projects ({', '.join(sorted(accepted))})"
            )
        admin = [p for p in _strings(claims.get(f"{claim}_admin")) if p in accepted]
        subject = hashlib.sha256(f"{settings.oidc_issuer}|{claims['sub']}".encode()).hexdigest()[:24]
        email = str(claims.get("email") or "")
        name = str(claims.get("name") or claims.get("preferred_username") or email or claims["sub"])
        account = account_for(
            f"oidc-{subject}", name=email or name, role="admin" if admin else "member", scopes=(), created_at=0.0
        )
        return Principal(account, Person(str(claims["sub"]), email, name, "oidc", ours, ours if admin else ()))

    def _jwks_client(self) -> PyJWKClient:
        with self._lock:
            if self._jwks is None:
                self._jwks = jwt.PyJWKClient(
                    self.settings.oidc_jwks_url or _discover_jwks(self.settings.oidc_issuer),
                    cache_keys=True,
                    lifespan=JWKS_CACHE_S,
                    timeout=DISCOVERY_TIMEOUT_S,
                )
            return self._jwks

    # -- the rest ---------------------------------------------------------------------------

    def _dev(self, db: Database) -> Principal:
        projects = self.projects(db)
        account = account_for(f"user-{DEV_SUBJECT}", name=DEV_SUBJECT, role="admin", scopes=(), created_at=0.0)
        return Principal(account, Person(DEV_SUBJECT, "", DEV_SUBJECT, "dev", projects, projects))

    def projects(self, db: Database) -> tuple[str, ...]:
        """The organization's projects (``organization_projects``), read once."""
        # Read once: the organization never changes while the server runs, and reading it is a
        # write transaction (it is created on first use).
        if not self._org_projects:
            self._org_projects = organization_projects(db)
        return self._org_projects


def organization_projects(db: Database) -> tuple[str, ...]:
    """The organization's projects: one, named as the organization (an install has one
    organization; CodeMie's "project" and "application" name it)."""
    _, name, _ = db.organization("default")
    return (name,)


def user_record(principal: Principal) -> dict[str, str]:
    """Who did something, as CodeMie's ``created_by`` records it: the person, else the key."""
    if principal.person is not None:
        p = principal.person
        return {"id": p.subject, "user_id": p.subject, "username": p.email, "name": p.name or p.email}
    key = principal.key
    return {"id": key.key_id, "user_id": key.key_id, "username": key.name, "name": key.name}


def projects_of(db: Database, principal: Principal) -> tuple[str, ...]:
    """The projects ``principal`` belongs to: a person's, or (a key) the organization's."""
    return principal.person.projects if principal.person is not None else organization_projects(db)


def admin_projects_of(db: Database, principal: Principal) -> tuple[str, ...]:
    """The projects ``principal`` administers."""
    if principal.person is not None:
        return principal.person.admin_projects
    return organization_projects(db) if principal.is_admin else ()


def require_project(db: Database, principal: Principal, project: str) -> str:
    """``project`` if ``principal`` belongs to it; NotFound otherwise (another organization's
    project is not shown to exist)."""
    projects = projects_of(db, principal)
    if project not in projects:
        raise NotFound(f"unknown project {project!r}; yours: {', '.join(projects) or 'none'}")
    return project


def _strings(value: object) -> list[str]:
    """A claim that may be one string or a list of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return []


def _discover_jwks(issuer: str) -> str:
    """The ``jwks_uri`` of the issuer's OpenID discovery document."""
    import httpx

    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=DISCOVERY_TIMEOUT_S)
        response.raise_for_status()
        jwks_uri = response.json()["jwks_uri"]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        raise ProviderError(f"cannot read the OpenID configuration at {url}: {exc}") from None
    return str(jwks_uri)


__all__ = [
    "Authenticator",
    "SessionToken",
    "account_for",
    "admin_projects_of",
    "organization_projects",
    "principal_for_user",
    "projects_of",
    "require_project",
    "user_principal",
]
