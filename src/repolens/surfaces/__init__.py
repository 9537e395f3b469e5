"""The surfaces: thin adapters that parse a caller's input, call the application layer, and
format its answer in the caller's own dialect. ``cli`` (the ``repolens`` command), ``http`` (the
server: one package per HTTP dialect) and ``mcp`` (the MCP tool server, over stdio and mounted
into ``http``)."""
