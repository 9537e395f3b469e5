"""The built-in embedder: all-MiniLM-L6-v2 as an int8 ONNX model run by onnxruntime.

The model file ships inside the package (``models/minilm-l6-v2/``, produced by
``scripts/build_embedder.py``; provenance and licence beside it). No torch, no network.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from repolens.embeddings.base import InputType
from repolens.errors import ProviderError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_DIR = "models/minilm-l6-v2"
# Tokens per text. The model was trained on 256; 128 keeps a code unit's head (path, name,
# signature, docstring, first lines) and runs ~2.5x faster on 2 cores. See bench/REPORT.md.
DOCUMENT_MAX_TOKENS = 128
QUERY_MAX_TOKENS = 64
BATCH_SIZE = 32  # larger batches gain little on 2 cores and pad more
THREADS = 2  # this machine kind has two cores; more threads only contend


def model_available() -> bool:
    """Whether the model file is in the installed package."""
    return resources.files("repolens.embeddings").joinpath(f"{MODEL_DIR}/model_int8.onnx").is_file()


class MiniLMEmbedder:
    """Sentence embeddings from the packaged MiniLM (384 dimensions)."""

    dim = 384

    def __init__(self, *, max_tokens: int = DOCUMENT_MAX_TOKENS) -> None:
        self.max_tokens = max_tokens
        self.name = f"minilm-l6-v2-int8-{max_tokens}"
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._session is not None:
            return
        if not model_available():
            raise ProviderError(
                "the built-in embedding model is missing from the install; "
                "run scripts/build_embedder.py or set REPOLENS_EMBEDDER=none"
            )
        import onnxruntime as ort
        from tokenizers import Tokenizer

        base = resources.files("repolens.embeddings").joinpath(MODEL_DIR)
        options = ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle intra-op threads sleep instead of spinning: spinning burns a core between queries
        # and, with concurrent searches, doubles the CPU each one costs.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        with resources.as_file(base.joinpath("model_int8.onnx")) as model_path:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        with resources.as_file(base.joinpath("tokenizer.json")) as tok_path:
            self._tokenizer = Tokenizer.from_file(str(tok_path))
        self._input_names = {i.name for i in self._session.get_inputs()}

    def embed(self, texts: Sequence[str], *, input_type: InputType) -> npt.NDArray[np.float32]:
        """Mean-pooled, normalised sentence vectors."""
        import numpy as np

        self._load()
        limit = QUERY_MAX_TOKENS if input_type == "query" else self.max_tokens
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        tokenizer = self._tokenizer
        tokenizer.enable_truncation(max_length=limit)
        tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        # Sort by length so each batch pads to similar lengths: fewer wasted tokens.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), BATCH_SIZE):
            idx = order[start : start + BATCH_SIZE]
            encoded = tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            try:
                hidden = self._session.run(None, feeds)[0]
            except Exception as exc:
                raise ProviderError(f"embedding failed: {exc}") from exc
            weights = mask[:, :, None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[idx] = pooled / np.clip(norms, 1e-12, None)
        return out
