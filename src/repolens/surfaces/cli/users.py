"""``repolens users``: create, list, disable and enable local users (people who sign in with an
email and a password: the web UI, CodeMie's ``local-auth`` login)."""

from __future__ import annotations

import sys

import click

from repolens.surfaces.cli.base import cli, emit_json, handle_errors, json_option, open_services


@cli.group()
def users() -> None:
    """Create, list and disable local users."""


@users.command("create")
@click.argument("email")
@click.option(
    "--password-stdin",
    "password_stdin",
    is_flag=True,
    help="Read the password from standard input (its first line), so that it never shows in a process list.",
)
@click.option("--name", default="", help="The user's display name.")
@click.option("--admin", is_flag=True, help="May manage data sources (as an admin key may).")
@click.option("--scope", "scopes", multiple=True, help="Limit the user to this repository or workspace (repeatable).")
@handle_errors
def users_create(email: str, password_stdin: bool, name: str, admin: bool, scopes: tuple[str, ...]) -> None:
    """Create a user who signs in with EMAIL and a password."""
    from repolens.access.users import create_user
    from repolens.errors import InvalidInput

    if not password_stdin:
        raise InvalidInput("give the password on standard input with --password-stdin (never as an argument)")
    password = sys.stdin.readline().rstrip("\r\n")
    with open_services() as services:
        user = create_user(
            services.store, email=email, password=password, name=name, role="admin" if admin else "member", scopes=scopes
        )
        click.echo(f"created user {user.email} ({user.role}, id {user.public_id})")


@users.command("list")
@json_option
@handle_errors
def users_list(as_json: bool) -> None:
    """Every user (never a password)."""
    from repolens import views

    with open_services() as services:
        rows = services.store.list_users()
        if as_json:
            emit_json([views.user_json(u) for u in rows])
            return
        for u in rows:
            status = "disabled" if u.disabled_at is not None else "active"
            scope = ",".join(u.scopes) or "all"
            click.echo(f"{u.public_id}  {u.email:<32} {u.role:<6} {status:<8} scope={scope}")


@users.command("disable")
@click.argument("email_or_id")
@handle_errors
def users_disable(email_or_id: str) -> None:
    """Disable a user: sign-in and every token of the user stop at once."""
    from repolens.access.users import set_disabled

    with open_services() as services:
        user = set_disabled(services.store, email_or_id, disabled=True)
        click.echo(f"disabled {user.email}")


@users.command("enable")
@click.argument("email_or_id")
@handle_errors
def users_enable(email_or_id: str) -> None:
    """Let a disabled user sign in again."""
    from repolens.access.users import set_disabled

    with open_services() as services:
        user = set_disabled(services.store, email_or_id, disabled=False)
        click.echo(f"enabled {user.email}")
