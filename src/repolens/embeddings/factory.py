"""Pick the embedder the settings ask for; the only module that names implementations."""

from __future__ import annotations

from repolens.embeddings.base import Embedder
from repolens.errors import InvalidInput
from repolens.settings import Settings


def load_embedder(settings: Settings) -> Embedder | None:
    """The configured embedder, or None for lexical-only search."""
    spec = settings.embedder
    if spec == "none":
        return None
    if spec == "static":
        from repolens.embeddings.static import StaticEmbedder
        from repolens.embeddings.static import model_available as static_available

        return StaticEmbedder() if static_available() else None
    if spec.startswith("static:"):
        from pathlib import Path

        from repolens.embeddings.static import StaticEmbedder
        from repolens.embeddings.static import model_available as static_available

        folder = Path(spec.split(":", 1)[1]).expanduser()
        if not static_available(folder):
            raise InvalidInput(
                f"no static embedder in {str(folder)!r} (expected config.json; build one with "
                "scripts/build_static_embedder.py --out FOLDER)"
            )
        return StaticEmbedder(folder)
    if spec == "minilm":
        from repolens.embeddings.minilm import MiniLMEmbedder, model_available

        return MiniLMEmbedder() if model_available() else None
    if spec.startswith("hash"):
        from repolens.embeddings.fake import HashEmbedder

        return HashEmbedder()
    if spec.startswith("st:"):
        from repolens.embeddings.sentence import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(spec.split(":", 1)[1])
    if spec.startswith("openai:"):
        from repolens.embeddings.remote import OpenAIEmbedder

        return OpenAIEmbedder(base_url=settings.embed_base_url, model=spec.split(":", 1)[1], api_key=settings.embed_api_key)
    raise InvalidInput(
        f"unknown REPOLENS_EMBEDDER {spec!r}: use static, minilm, none, hash, "
        "static:<model folder>, st:<model folder> or openai:<model>"
    )


def embeds_beside_parser(embedder: Embedder) -> bool:
    """Whether indexing should embed with ``embedder`` in its parse workers, as files are parsed.

    Yes for a lookup table (the static model, the test fake): ~1,000 units/s per core, no thread pool
    to share, a memory-mapped table, so a unit's vector costs about a third of what parsing its file
    does and the index with vectors is ready about when the lexical one is. Not a transformer (MiniLM:
    35-175 units/s, its own threads) or a remote endpoint: they would hold the lexical index back for
    minutes, so their vectors are computed after it (``indexing.vectors.backfill``), while search
    answers lexically.
    """
    from repolens.embeddings.fake import HashEmbedder
    from repolens.embeddings.static import StaticEmbedder

    return isinstance(embedder, StaticEmbedder | HashEmbedder)
