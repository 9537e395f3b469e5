"""One exception hierarchy for the whole package.

Surfaces translate these into their own error shapes in one place each::

    RepolensError
      + InvalidInput        the caller asked for something malformed (CLI exit 2, HTTP 400)
        - UnsafeSource      a URL or path refused for safety (option-shaped, ext::, outside roots)
      + Unauthorized        no key, an unknown, revoked or expired key (HTTP 401)
      + Forbidden           a valid key asking for what it may not see or do (HTTP 403)
      + RateLimited         a key over its plan; ``retry_after`` seconds (HTTP 429)
      + NotFound            a source, file or artifact that does not exist (HTTP 404)
      + NotReady            a data source that has no index yet (HTTP 422)
      + Conflict            an identifier that matches more than one artifact (HTTP 409)
      + SourceError         git or the file system failed while fetching a source
      + IndexingError       the pipeline could not finish
      + ProviderError       an embedding or LLM provider failed
      + StorageError        the database failed or is inconsistent
"""

from __future__ import annotations


class RepolensError(Exception):
    """Base of every error repolens raises on purpose."""


class InvalidInput(RepolensError):
    """The caller's input is malformed; the message says how to fix it."""


class UnsafeSource(InvalidInput):
    """A source location refused because using it could be unsafe."""


class Unauthorized(RepolensError):
    """The request carries no valid API key."""


class Forbidden(RepolensError):
    """The key is valid but may not see or do this."""


class RateLimited(RepolensError):
    """The key used up its plan; try again after ``retry_after`` seconds.

    ``limit``, ``remaining`` and ``reset`` (epoch seconds) describe the quota that refused,
    when it is not the one the access layer already reports (chat has its own).
    """

    def __init__(self, message: str, retry_after: int, *, limit: int | None = None, remaining: int = 0,
                 reset: int | None = None) -> None:  # fmt: skip
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
