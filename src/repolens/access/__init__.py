"""Who may ask: API keys, the principal a request runs as, and per-key rate limits."""
