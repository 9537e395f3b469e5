"""Embeddings from any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, Ollama, vLLM,
LM Studio, llama.cpp server). Needs the ``remote`` extra (httpx)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from repolens.embeddings.base import InputType
from repolens.errors import ProviderError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_RETRIES = 3  # 429 and 5xx are usually transient; three tries with backoff ride them out
_BACKOFF_S = 1.0
_BATCH = 64
_TIMEOUT_S = 60.0


class OpenAIEmbedder:
    """``POST {base_url}/embeddings`` with ``{"model": ..., "input": [...]}``."""

    def __init__(self, *, base_url: str, model: str, api_key: str = "") -> None:
        if not base_url:
            raise ProviderError("REPOLENS_EMBED_BASE_URL is required for an openai: embedder")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"openai:{model}"
        self._api_key = api_key
        self.dim = 0  # probed on first use

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> npt.NDArray[np.float32]:
        """Vectors from the endpoint, normalised here (providers differ on that)."""
        import httpx
        import numpy as np

        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        rows: list[list[float]] = []
        with httpx.Client(timeout=_TIMEOUT_S) as client:
            for start in range(0, len(texts), _BATCH):
                batch = list(texts[start : start + _BATCH])
                rows.extend(self._post(client, batch, headers))
        out = np.array(rows, dtype=np.float32).reshape(len(texts), -1)
        self.dim = out.shape[1]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        normed: npt.NDArray[np.float32] = (out / np.clip(norms, 1e-12, None)).astype(np.float32)
        return normed

    def _post(self, client: object, batch: list[str], headers: dict[str, str]) -> list[list[float]]:
        import httpx

        assert isinstance(client, httpx.Client)
        for attempt in range(_RETRIES):
            try:
                resp = client.post(
                    f"{self.base_url}/embeddings", json={"model": self.model, "input": batch}, headers=headers
                )
            except httpx.HTTPError as exc:
                error = f"embedding endpoint unreachable: {exc}"
            else:
                if resp.status_code == 200:
                    data = sorted(resp.json()["data"], key=lambda d: d["index"])
                    return [d["embedding"] for d in data]
                error = f"embedding endpoint answered {resp.status_code}: {resp.text[:200]}"
                if resp.status_code != 429 and resp.status_code < 500:
                    raise ProviderError(error)
            time.sleep(_BACKOFF_S * 2**attempt)
        raise ProviderError(error)
