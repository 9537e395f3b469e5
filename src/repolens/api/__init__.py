"""The HTTP surface: CodeAlive's REST API, Dify's external-knowledge endpoint, the tool API,
admin routes, health. Handlers are thin: parse, call one core function, format."""
