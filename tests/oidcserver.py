"""A real OpenID provider's key endpoints on 127.0.0.1 for tests: the discovery document and a
JWKS with an RSA key generated here, plus a signer for tokens as Keycloak issues them."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

REALM_PATH = "/realms/codemie"
KID = "test-key-1"


def new_key() -> rsa.RSAPrivateKey:
    """A fresh 2048-bit RSA signing key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class Provider:
    """The running provider: its issuer URL and the key it publishes."""

    issuer: str
    key: rsa.RSAPrivateKey
    requests: list[str]

    def token(
        self,
        claims: dict[str, Any] | None = None,
        *,
        key: rsa.RSAPrivateKey | None = None,
        issuer: str | None = None,
        expires_in: int = 300,
        kid: str = KID,
    ) -> str:
        """An RS256 access token as Keycloak signs it (``key`` overrides the published key)."""
        now = int(time.time())
        body = {
            "iss": issuer or self.issuer,
            "sub": "9b1f7c7e-kc-user",
            "aud": "codemie",
            "iat": now,
            "exp": now + expires_in,
            "email": "kc.user@example.com",
            "preferred_username": "kc.user",
            "name": "Keycloak User",
            "applications": ["default"],
            **(claims or {}),
        }
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": kid})


@contextmanager
def serve_oidc() -> Iterator[Provider]:
    """Serve ``/.well-known/openid-configuration`` and the JWKS under a Keycloak-style realm."""
    key = new_key()
    jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": KID, "use": "sig", "alg": "RS256"})
    requests: list[str] = []
    holder: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            if self.path == f"{REALM_PATH}/.well-known/openid-configuration":
                body = {"issuer": holder["issuer"], "jwks_uri": f"{holder['issuer']}/protocol/openid-connect/certs"}
            elif self.path == f"{REALM_PATH}/protocol/openid-connect/certs":
                body = {"keys": [jwk]}
            else:
                self.send_error(404)
                return
            payload = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["issuer"] = f"http://127.0.0.1:{server.server_port}{REALM_PATH}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Provider(holder["issuer"], key, requests)
    finally:
        server.shutdown()
        server.server_close()
