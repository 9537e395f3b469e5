"""``repolens keys``: create, list and revoke API keys."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from repolens.errors import NotFound
from repolens.surfaces.cli.base import (
    cli,
    emit_json,
    handle_errors,
    json_option,
    open_services,
)

if TYPE_CHECKING:
    pass


@cli.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--name", required=True, help="What the key is for.")
@click.option("--scope", "scopes", multiple=True, help="Limit the key to this repository or workspace (repeatable).")
@click.option("--plan", default="free", show_default=True, type=click.Choice(["free", "pro", "team", "custom"]))
@click.option("--requests-per-hour", type=click.IntRange(1), help="For --plan custom (or to override a plan).")
@click.option("--concurrency", type=click.IntRange(1), help="For --plan custom (or to override a plan).")
@click.option("--expires-days", type=click.FloatRange(min=0, min_open=True), help="Expire after this many days.")
@click.option("--admin", is_flag=True, help="May manage keys and data sources.")
@handle_errors
def keys_create(
    name: str,
    scopes: tuple[str, ...],
    plan: str,
    requests_per_hour: int | None,
    concurrency: int | None,
    expires_days: float | None,
    admin: bool,
) -> None:
    """Create a key and print it once, on its own line."""

    from repolens.access.keys import create_key, plan_for

    with open_services() as services:
        chosen = plan_for(plan, requests_per_hour=requests_per_hour, concurrency=concurrency)
        expires = time.time() + expires_days * 86400 if expires_days else None
        minted = create_key(
            services.store, name=name, plan=chosen, role="admin" if admin else "member", scopes=scopes, expires_at=expires
        )
        row = minted.row
        click.echo(
            f"key {row.key_id} ({row.name}, plan {row.plan}: {row.requests_per_hour}/h, "
            f"{row.concurrency} concurrent; shown once):",
            err=True,
        )
        click.echo(minted.token)


@keys.command("list")
@json_option
@handle_errors
def keys_list(as_json: bool) -> None:
    """Every key (never the secret)."""
    from repolens import views

    with open_services() as services:
        rows = services.store.list_keys()
        if as_json:
            emit_json([views.key_json(k) for k in rows])
            return
        for k in rows:
            status = (
                "revoked"
                if k.revoked_at
                else ("expired" if k.expires_at and k.expires_at < __import__("time").time() else "active")
            )
            scope = ",".join(k.scopes) or "all"
            click.echo(
                f"{k.key_id}  {k.name:<24} {k.role:<6} {k.plan:<6} {k.requests_per_hour:>7}/h "
                f"{k.concurrency:>4} conc  {status:<8} scope={scope}"
            )


@keys.command("revoke")
@click.argument("key_id")
@handle_errors
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (the digits shown by `keys list`)."""
    with open_services() as services:
        if not services.store.revoke_key(key_id):
            raise NotFound(f"unknown key {key_id!r}")
        click.echo(f"revoked {key_id}")
