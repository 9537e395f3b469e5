"""CodeMie's file uploads: ``POST /v1/files/`` (one part ``file``, the path keeps its trailing
slash: a redirect would make the client send the multipart body again) and ``POST
/v1/files/bulk`` (parts ``files``), answering ``file_url`` values that a chat turn names in
``file_names``; ``GET /v1/files/{file_id}`` reads one back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile  # what Request.form() holds (FastAPI's is a subclass)

from repolens import uploads
from repolens.access.keys import Principal
from repolens.errors import InvalidInput
from repolens.services import Services
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep

router = APIRouter()


def _file_url(row_id: str) -> str:
    # CodeMie's file_url is an opaque id that the client hands back; ours is the upload's id.
    return row_id


async def _store(services: Services, principal: Principal, part: UploadFile) -> str:
    data = await part.read(uploads.MAX_UPLOAD_BYTES + 1)
    # A database write: off the event loop.
    row = await run_in_threadpool(
        uploads.store, services.store, principal, name=part.filename or "", content_type=part.content_type, data=data
    )
    return _file_url(row.public_id)


async def _parts(request: Request, field: str) -> list[UploadFile]:
    form = await request.form()
    parts = [p for p in form.getlist(field) if isinstance(p, UploadFile)]
    if not parts:
        raise InvalidInput(f"send the file as a multipart/form-data part named {field!r}")
    return parts


@router.post("/files/", summary="Upload one file (multipart part 'file')")
async def upload(request: Request, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    parts = await _parts(request, "file")
    if len(parts) > 1:
        raise InvalidInput("send one part named 'file' here; POST /v1/files/bulk takes several")
    return {"file_url": await _store(services, principal, parts[0])}


@router.post("/files/bulk", summary="Upload several files (multipart parts 'files')")
async def upload_bulk(request: Request, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    urls = [await _store(services, principal, part) for part in await _parts(request, "files")]
    return {"files": [{"file_url": u} for u in urls], "failed_files": []}  # the SDK reads a list here


@router.get("/files/{file_id}", summary="Read an uploaded file back")
def read(file_id: Annotated[str, Path(max_length=200)], services: ServicesDep, principal: PrincipalDep) -> Response:
    row = uploads.fetch(services.store, principal, file_id)
    safe = row.name.replace('"', "")
    return Response(row.data, media_type=row.content_type, headers={"Content-Disposition": f'attachment; filename="{safe}"'})
