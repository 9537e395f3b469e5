"""The HTTP server: shared plumbing (app, access, errors, schemas, health) and one package per
dialect (``codealive``, ``dify``, ``openai``; CodeMie and Codeer go beside them)."""
