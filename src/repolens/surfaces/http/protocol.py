"""The HTTP/1.1 protocol the server runs: uvicorn's httptools one, with its own error in our dialect.

A request the HTTP parser rejects (a request line and headers over llhttp's 80 KB limit, bytes
that are not HTTP) never reaches the app; uvicorn answers it by itself with a ``text/plain`` 400.
Every client of this API reads problem+json, so that one response is written here in the same
shape the app uses, with advice the caller can act on.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from repolens.surfaces.http.errors import PROBLEM_JSON, problem_body

UNPARSABLE_DETAIL = (
    "the request could not be parsed as HTTP/1.1: malformed, or its URL and headers exceed 80 KB; "
    "send long inputs in a POST body (for example POST /api/search)"
)


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering unparsable requests with problem+json."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps(problem_body(400, UNPARSABLE_DETAIL)).encode()
        head = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
            ]
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()
