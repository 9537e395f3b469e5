"""Assistants: stored agent definitions and the runtime that runs a turn of one (dialect-free).

``model`` declares what an assistant is, ``assistants`` stores and scopes them, ``runtime``
runs a tool-calling turn over the configured model, ``mcp`` reaches external MCP servers.
Surfaces (CodeMie's API today, Codeer's next) translate their wire shapes to these types.
"""
