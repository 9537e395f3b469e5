"""Chat with the codebase: providers, prompt, answer engine."""
