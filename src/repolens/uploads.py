"""Files a client uploads to refer to later (CodeMie's ``file_names`` on a chat turn).

An upload belongs to the account that sent it (a key, or a signed-in person) and only that
account reads it back; any other reads it as missing. The bytes live in the database, so every
replica of a scale-out install serves them.
"""

from __future__ import annotations

from repolens import validation
from repolens.access.keys import Principal
from repolens.domain import Upload
from repolens.errors import InvalidInput, NotFound
from repolens.storage.base import UploadStore

# The HTTP layer caps a whole request body at 1 MB (surfaces/http/access.py); a file is that
# less the multipart framing, so this bound is only reached by callers other than HTTP.
MAX_UPLOAD_BYTES = 1_000_000
MAX_FILE_NAME_CHARS = 255  # a file name on every common file system
DEFAULT_CONTENT_TYPE = "application/octet-stream"


def store(db: UploadStore, principal: Principal, *, name: str, content_type: str | None, data: bytes) -> Upload:
    """Keep an uploaded file for ``principal``."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    base = validation.require_name(base, what="file name", max_chars=MAX_FILE_NAME_CHARS)
    if not data:
        raise InvalidInput(f"file {base!r} is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"file {base!r} is over {MAX_UPLOAD_BYTES} bytes")
    kind = (content_type or DEFAULT_CONTENT_TYPE).strip()[:200] or DEFAULT_CONTENT_TYPE
    return db.create_upload(owner=principal.key.key_id, name=base, content_type=kind, data=data)


def fetch(db: UploadStore, principal: Principal, public_id: str) -> Upload:
    """An upload of ``principal`` (anyone else's, or none, is NotFound)."""
    row = db.get_upload(public_id.strip())
    if row is None or row.owner != principal.key.key_id:
        raise NotFound(f"no uploaded file {public_id!r}")
    return row


def text_of(upload: Upload) -> str:
    """An upload's text, for a model to read; InvalidInput for a binary file (a NUL byte, or
    bytes that are not UTF-8), said by name so the caller knows which one to leave out."""
    if b"\0" in upload.data:
        raise InvalidInput(f"file {upload.name!r} is binary; attach text files (code, Markdown, logs, CSV, JSON)")
    try:
        return upload.data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"file {upload.name!r} is not UTF-8 text; attach text files") from None
