"""The OpenAI-compatible chat API (``/v1``)."""
