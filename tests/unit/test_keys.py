"""Key authentication over the in-memory ``KeyStore`` fake (its contract is checked against both
databases in tests/test_store_contracts.py)."""

from __future__ import annotations

import time

import pytest

from repolens.access.keys import KEY_PREFIX, authenticate, digest
from repolens.errors import Unauthorized
from repolens.storage.memory import MemoryKeys

SECRET = "s" * 43  # the shape of a real secret: 32 random bytes, URL-safe base64
OTHER = "o" * 43


def _mint(keys: MemoryKeys, key_id: str, secret: str, *, expires_at: float | None = None) -> str:
    keys.create_key(
        key_id=key_id,
        digest=digest(secret),
        name="k",
        role="member",
        plan="free",
        requests_per_hour=60,
        concurrency=2,
        scopes=(),
        expires_at=expires_at,
    )
    return f"{KEY_PREFIX}{key_id}_{secret}"


def test_a_valid_key_authenticates_as_itself() -> None:
    keys = MemoryKeys()
    token = _mint(keys, "123456789012", SECRET)
    assert authenticate(keys, f"  {token} ").key.key_id == "123456789012"


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (None, "Invalid or missing API key"),
        ("not-a-key", "Invalid or missing API key"),
        (f"{KEY_PREFIX}123456789012_{OTHER}", "Invalid or missing API key"),
        (f"{KEY_PREFIX}999999999999_{SECRET}", "Invalid or missing API key"),
    ],
)
def test_a_wrong_or_unknown_key_is_refused_alike(token: str | None, message: str) -> None:
    keys = MemoryKeys()
    _mint(keys, "123456789012", SECRET)
    with pytest.raises(Unauthorized, match=message):
        authenticate(keys, token)


def test_revoked_and_expired_keys_say_why() -> None:
    keys = MemoryKeys()
    revoked = _mint(keys, "123456789012", SECRET)
    keys.revoke_key("123456789012")
    with pytest.raises(Unauthorized, match="revoked"):
        authenticate(keys, revoked)
    expired = _mint(keys, "210987654321", OTHER, expires_at=time.time() + 5)
    with pytest.raises(Unauthorized, match="expired"):
        authenticate(keys, expired, now=time.time() + 10)
