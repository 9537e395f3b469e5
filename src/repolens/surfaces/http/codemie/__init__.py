"""CodeMie's API under ``/code-assistant-api/v1``, for CodeMie's SDK and MCP servers unchanged."""
