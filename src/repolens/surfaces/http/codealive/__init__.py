"""CodeAlive's REST API (data sources, search, chat, tools) and the admin routes."""
