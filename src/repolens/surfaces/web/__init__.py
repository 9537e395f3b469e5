"""The web UI (issue 22): server-rendered pages over the application core, mounted at ``/ui``."""

WEB_PREFIX = "/ui"  # where ``repolens serve`` mounts the UI; the API's access middleware leaves it to the UI's sessions
