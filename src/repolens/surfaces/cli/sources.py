"""``repolens sources``: list, show and remove indexed sources."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from repolens.domain import short_commit
from repolens.errors import NotFound
from repolens.surfaces.cli.base import (
    cli,
    emit_json,
    handle_errors,
    json_option,
    open_services,
)

if TYPE_CHECKING:
    from repolens.services import Services


# -- sources ----------------------------------------------------------------------------------


@cli.group()
def sources() -> None:
    """List, show and remove indexed sources."""


def _source_json(services: Services, s: Any) -> dict[str, Any]:
    from repolens.views import iso

    data: dict[str, Any] = {
        "id": s.public_id,
        "name": s.name,
        "type": "Repository",
        "state": s.state,
        "stateReason": s.state_reason or None,
        "location": s.location,
        "branch": s.branch,
        "commit": s.commit,
        "files": s.file_count,
        "artifacts": s.artifact_count,
        "createdAt": iso(s.created_at),
        "indexedAt": iso(s.indexed_at),
    }
    embedder = services.embedder
    if embedder is not None:
        data["vectorsReady"], data["vectorsTotal"] = services.store.vector_counts(s.id, embedder.name)
        data["vectorsModel"] = embedder.name
    # Which models the stored vectors came from: after a switch of embedder, the old model's until
    # the re-embedding (a background job in a server, the next `repolens index` here) replaces them.
    data["vectorsByModel"] = dict(services.store.vector_models(s.id))
    return data


@sources.command("list")
@json_option
@handle_errors
def sources_list(as_json: bool) -> None:
    """Every indexed source."""
    with open_services() as services:
        rows = services.store.list_sources()
        if as_json:
            emit_json([_source_json(services, s) for s in rows])
            return
        if not rows:
            click.echo("no sources yet: run `repolens index PATH_OR_URL`")
        for s in rows:
            commit = short_commit(s.commit) or "-"
            click.echo(f"{s.name:<40} {s.state:<10} {s.file_count:>6} files  {commit:<18}  {s.location}")


@sources.command("show")
@click.argument("name")
@json_option
@handle_errors
def sources_show(name: str, as_json: bool) -> None:
    """Details of one source."""
    with open_services() as services:
        s = services.store.get_source(name)
        if s is None:
            raise NotFound(f"unknown source {name!r}")
        data = _source_json(services, s)
        if as_json:
            emit_json(data)
            return
        for key, value in data.items():
            click.echo(f"{key:>12}: {value}")


@sources.command("remove")
@click.argument("name")
@handle_errors
def sources_remove(name: str) -> None:
    """Delete a source, everything indexed from it and its clone."""
    from repolens import catalog

    with open_services() as services:
        s = catalog.get_repository(services.store, None, name)
        catalog.delete_repository(services.store, services.settings, s)
        click.echo(f"removed {s.name}")
