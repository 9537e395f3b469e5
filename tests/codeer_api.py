"""What the Codeer route tests share: paths, error codes, envelope readers, small requests."""

from __future__ import annotations

import time
from typing import Any

import httpx

KB = "/api/v1/external/knowledge-bases"
FAQS = "/api/v1/external/context-object-faqs"
MAX_FILE_BYTES = 20_000  # the server's per-file cap in this module (REPOLENS_MAX_FILE_BYTES)
# Codeer's error codes (specs/codemie_codeer.md §2.1).
PERMISSION_DENIED, NOT_FOUND, SERVER_ERROR, BAD_REQUEST, CLIENT_NOT_ALLOWED = 10001, 10003, 10005, 10006, 14103

GUIDE = "# Handbook\n\nIntro.\n\n## Deploys\n\nDeploys run on Tuesdays after review.\n\n## Holidays\n\nAsk your lead.\n"
CODE = 'class Invoice:\n    """A bill."""\n\n    def settle_balance(self) -> int:\n        return 0\n'
ZANZIBAR = "# Zanzibar\n\nAn island.\n\n## Wildlife\n\nNo quokka lives on Zanzibar; quokka colonies are in Australia.\n"


def data(response: httpx.Response) -> Any:
    """The ``data`` of a success envelope."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["error_code"] == 0 and body["message"] is None and "pagination" in body, body
    return body["data"]


def refused(response: httpx.Response, status: int, code: int) -> str:
    """The message of an error envelope with this status and code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"data", "message", "error_code", "pagination"}, body
    assert body["data"] is None and body["pagination"] is None and body["error_code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return str(body["message"])


def new_kb(client: httpx.Client, name: str) -> str:
    return str(data(client.post(f"{KB}/nodes", json={"name": name, "description": "test base"}))["id"])


def upload(client: httpx.Client, parent: str, files: dict[str, bytes]) -> httpx.Response:
    parts = [("files", (name, body, "text/plain")) for name, body in files.items()]
    return client.post(f"{KB}/files:upload", files=parts, data={"parent_id": parent})


def wait_ready(client: httpx.Client, node_ids: list[str], timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        rows: list[dict[str, Any]] = data(client.post(f"{KB}/files:status", json={"node_ids": node_ids}))
        if all(r["status"] in ("READY", "FAILED") for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def children(client: httpx.Client, parent: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = data(client.get(f"{KB}/nodes", params={"parent_id": parent}))
    return rows
