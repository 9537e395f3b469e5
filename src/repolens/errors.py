"""One exception hierarchy for the whole package.

Surfaces translate these into their own error shapes in one place each::

    RepolensError
      + InvalidInput        the caller asked for something malformed (CLI exit 2, HTTP 400)
        - UnsafeSource      a URL or path refused for safety (option-shaped, ext::, outside roots)
        - BodyTooLarge      a request body over the server's cap (HTTP 413)
      + ToolError           a tool call the caller can repair: a code, what went wrong, what to
                            try (HTTP 400, 404 or 409 by its code; an error result, not a failure)
      + Unauthorized        no key, an unknown, revoked or expired key (HTTP 401)
      + Forbidden           a valid key asking for what it may not see or do (HTTP 403)
        - ClientNotAllowed  a workspace in whitelist mode refused the request's external user
      + RateLimited         a key over its plan; ``retry_after`` seconds (HTTP 429)
      + NotFound            a source, file or artifact that does not exist (HTTP 404)
      + NotReady            a data source that has no index yet (HTTP 422)
      + Conflict            an identifier that matches more than one artifact (HTTP 409)
      + SourceError         git or the file system failed while fetching a source
      + IndexingError       the pipeline could not finish
      + ProviderError       an embedding or LLM provider failed
      + StorageError        the database failed or is inconsistent

``status_of`` is the one table from an error to its HTTP status; every dialect (problem+json,
Dify, OpenAI, MCP tool errors, the tool API) starts from it and maps the status to its own
shape at its edge, in one table of its own.
"""

from __future__ import annotations


class RepolensError(Exception):
    """Base of every error repolens raises on purpose."""


class InvalidInput(RepolensError):
    """The caller's input is malformed; the message says how to fix it."""


class UnsafeSource(InvalidInput):
    """A source location refused because using it could be unsafe."""


class BodyTooLarge(InvalidInput):
    """A request body grew past the server's cap."""


class Unauthorized(RepolensError):
    """The request carries no valid API key."""


class Forbidden(RepolensError):
    """The key is valid but may not see or do this."""


class ClientNotAllowed(Forbidden):
    """A workspace in whitelist mode refused the request's ``external_user_id``."""


class RateLimited(RepolensError):
    """The key used up its plan; try again after ``retry_after`` seconds.

    ``limit``, ``remaining`` and ``reset`` (epoch seconds) describe the quota that refused,
    when it is not the one the access layer already reports (chat has its own).
    """

    def __init__(
        self, message: str, retry_after: int, *, limit: int | None = None, remaining: int = 0, reset: int | None = None
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.limit = limit
        self.remaining = remaining
        self.reset = reset


class NotFound(RepolensError):
    """The named thing does not exist."""


class NotReady(RepolensError):
    """The data source exists but has no usable index yet."""


class Conflict(RepolensError):
    """An identifier matched several artifacts; ``candidates`` lists them."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        super().__init__(message)
        self.candidates = candidates


class SourceError(RepolensError):
    """Fetching or reading a source failed."""


class IndexingError(RepolensError):
    """The indexing pipeline failed."""


class ProviderError(RepolensError):
    """An embedding or language-model provider failed."""


class StorageError(RepolensError):
    """The store failed or found itself inconsistent."""


class ToolError(RepolensError):
    """A tool call the caller can repair: ``code``, what went wrong, and what to try."""

    def __init__(self, code: str, message: str, try_: str) -> None:
        super().__init__(message)
        self.code = code
        self.try_ = try_


# The HTTP status of each tool error code (what a tool's caller would have got over REST).
TOOL_ERROR_STATUS: dict[str, int] = {
    "invalid_tool_arguments": 400,
    "invalid_path": 400,
    "data_source_required": 400,
    "not_found": 404,
    "data_source_not_found": 404,
    "artifact_not_found": 404,
    "file_not_found": 404,
    "path_not_found": 404,
    "ambiguous_identifier": 409,
}

# Most specific first: the first class an error is an instance of gives its status.
_STATUS: tuple[tuple[type[RepolensError], int], ...] = (
    (BodyTooLarge, 413),
    (Unauthorized, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (NotFound, 404),
    (NotReady, 422),
    (Conflict, 409),
    (InvalidInput, 400),
    (SourceError, 400),  # a URL that cannot be resolved or fetched is the caller's to fix
    (ProviderError, 502),
    (StorageError, 503),
    (IndexingError, 500),
)


def status_of(exc: RepolensError) -> int:
    """The HTTP status for a core error (500 for anything not in the table)."""
    if isinstance(exc, ToolError):
        return TOOL_ERROR_STATUS.get(exc.code, 400)
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500
