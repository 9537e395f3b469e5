"""CodeMie's REST API (EPAM AI/Run CodeMie) under ``/code-assistant-api/v1``, so that CodeMie's
published clients (``codemie-sdk-python``, the ``codemie-mcp-*`` servers) run against repolens
unchanged. Specs: ``specs/codemie_codeer.md`` Part 1 and ``specs/clients.md`` §2-§4.

``routes.router`` gathers the modules; ``errors`` turns our one error tree into CodeMie's
``{"error": {"message", "details", "help"}}``. This module stays free of imports: the shared
access layer and error handlers read its constants without pulling the routes in.
"""

PREFIX = "/code-assistant-api"
API = f"{PREFIX}/v1"
LOGIN_PATH = f"{API}/local-auth/login"
PUBLIC_PATHS = frozenset({LOGIN_PATH})
