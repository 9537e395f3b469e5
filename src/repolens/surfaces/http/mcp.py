"""``/mcp``: the MCP server over streamable HTTP, inside the API server.

Stateless (no ``Mcp-Session-Id`` affinity), so any replica behind any load balancer can answer
any request. Responses stream as SSE so that progress notifications reach the client before the
result. The access middleware in front of every route authenticates the Bearer key and applies
the key's rate limit before a request gets here; the SDK's DNS rebinding protection then checks
Host and Origin against loopback, ``REPOLENS_PUBLIC_URL`` and ``REPOLENS_ALLOWED_HOSTS``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import FastAPI
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from repolens.settings import Settings
from repolens.surfaces.http.access import MAX_BODY_BYTES, MCP_PATH

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Allowed Host and Origin values: loopback on any port, the public URL, extra hosts, CORS origins."""
    hosts = [f"{h}:*" for h in LOOPBACK_HOSTS] + list(LOOPBACK_HOSTS)
    origins = [f"http://{h}:*" for h in LOOPBACK_HOSTS] + [f"http://{h}" for h in LOOPBACK_HOSTS]
    if settings.public_url:
        parts = urlsplit(settings.public_url)
        hosts.append(parts.netloc.lower())
        origins.append(f"{parts.scheme}://{parts.netloc.lower()}")
    for host in settings.allowed_hosts:
        hosts.append(host)
        if ":" not in host:
            hosts.append(f"{host}:*")
        origins.extend([f"https://{host}", f"http://{host}"])
    origins.extend(settings.cors_origins)
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def mount(app: FastAPI, server: MCPServer, settings: Settings) -> None:
    """Add the ``/mcp`` route to ``app``; the app's lifespan must run ``server.session_manager.run()``."""
    mcp_app = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=False,
        transport_security=transport_security(settings),
        max_request_body_size=MAX_BODY_BYTES,
    )
    for route in mcp_app.routes:
        app.router.routes.append(route)
