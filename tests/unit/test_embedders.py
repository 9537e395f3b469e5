"""Embedders: the built-in model understands paraphrase; a remote endpoint plugs in by settings."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from repolens.embeddings.factory import load_embedder
from repolens.embeddings.minilm import MiniLMEmbedder, model_available
from repolens.errors import ProviderError
from repolens.settings import Settings


def test_the_built_in_model_ships_with_the_package_and_ranks_paraphrases() -> None:
    """MiniLM loads from the install (no network) and puts the paraphrase closest."""
    assert model_available()
    embedder = MiniLMEmbedder()
    docs = embedder.embed(
        [
            "def hash_password(password, salt): return pbkdf2(password, salt)",
            "def parse_cookie_header(header): split the Cookie header into a dict",
            "class ThreadPool: run tasks on a fixed number of worker threads",
        ],
        input_type="document",
    )
    query = embedder.embed(["store user passwords securely"], input_type="query")[0]
    assert docs.shape == (3, 384)
    assert np.allclose(np.linalg.norm(docs, axis=1), 1.0, atol=1e-4)
    assert int(np.argmax(docs @ query)) == 0
    again = embedder.embed(["store user passwords securely"], input_type="query")[0]
    assert float(again @ query) > 0.999


class _Endpoint(BaseHTTPRequestHandler):
    """An OpenAI-compatible /embeddings stand-in: first call 429, then vectors from text length."""

    calls: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Endpoint.calls.append({"auth": self.headers.get("Authorization"), **body})
        if len(_Endpoint.calls) == 1:
            self.send_response(429)
            self.end_headers()
            return
        data = [{"index": i, "embedding": [float(len(t)), 1.0, 0.0]} for i, t in enumerate(body["input"])]
        payload = json.dumps({"data": data}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    _Endpoint.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_an_openai_compatible_endpoint_plugs_in_through_settings(endpoint: str, tmp_path: Path) -> None:
    """REPOLENS_EMBEDDER=openai:<model> calls /embeddings with the key, retries a 429, normalises."""
    settings = Settings(home=tmp_path, embedder="openai:nomic-embed-text", embed_base_url=endpoint, embed_api_key="k1")
    embedder = load_embedder(settings)
    assert embedder is not None and embedder.name == "openai:nomic-embed-text"
    vecs = embedder.embed(["ab", "abcd"], input_type="document")
    assert vecs.shape == (2, 3)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0)
    assert len(_Endpoint.calls) == 2  # one 429, one success
    assert _Endpoint.calls[-1]["auth"] == "Bearer k1" and _Endpoint.calls[-1]["model"] == "nomic-embed-text"


def test_misconfigured_embedders_are_clear_errors(tmp_path: Path) -> None:
    """Unknown names and missing endpoints or folders say what to set."""
    with pytest.raises(Exception, match="unknown REPOLENS_EMBEDDER"):
        load_embedder(Settings(home=tmp_path, embedder="word2vec"))
    with pytest.raises(ProviderError, match="REPOLENS_EMBED_BASE_URL"):
        load_embedder(Settings(home=tmp_path, embedder="openai:x"))
    with pytest.raises(ProviderError, match="not found"):
        load_embedder(Settings(home=tmp_path, embedder="st:/no/such/model"))
    assert load_embedder(Settings(home=tmp_path, embedder="none")) is None
