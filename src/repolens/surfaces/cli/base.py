"""The ``repolens`` group and what its commands share: services, error handling, output, options.

Imports of the heavy parts (tree-sitter, numpy, onnxruntime, rich) happen inside the
commands that need them: scripts call ``repolens search`` once per query.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from repolens.errors import Conflict, InvalidInput, RepolensError

if TYPE_CHECKING:
    from repolens.domain import SearchFilters
    from repolens.services import Services

F = TypeVar("F", bound=Callable[..., Any])
EXIT_ERROR = 1
EXIT_USAGE = 2


class _Teardown:
    """Whether the command that ran lets ``main`` end the process without the interpreter's teardown."""

    skippable = False


def skip_teardown() -> None:
    """Let ``main`` end the process as soon as this command has succeeded (see ``end_process``).

    For one-shot commands that only read (``search``): freeing numpy, the thread pool and ~600 modules
    took ~20 ms after `repolens search` had printed its answer, a tenth of the command from a shell.
    """
    _Teardown.skippable = True


def teardown_skippable() -> bool:
    """Whether the command that ran called ``skip_teardown``."""
    return _Teardown.skippable


def end_process(code: int) -> NoReturn:
    """Run the atexit handlers (logging's flush, the thread pools' joins), flush the output, and end the
    process at once with ``code``: what the interpreter's exit does, less freeing every object."""
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a reader that went away (``| head``): the answer was not all read
            code = code or EXIT_ERROR
    os._exit(code)


@contextmanager
def open_services(*, resident: bool = False, index_only: bool = False) -> Iterator[Services]:
    """Services for one command; ``resident`` for a command that stays up and answers many searches,
    ``index_only`` for one that only searches (see ``Services``)."""
    from repolens.services import build_services
    from repolens.settings import load_settings

    services = build_services(load_settings(), resident=resident, index_only=index_only)
    try:
        yield services
    finally:
        services.close()


def fail(exc: RepolensError) -> None:
    message = str(exc)
    if isinstance(exc, Conflict) and exc.candidates:
        message += "\n  candidates:\n    " + "\n    ".join(exc.candidates)
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_USAGE if isinstance(exc, InvalidInput) else EXIT_ERROR)


def handle_errors(func: F) -> F:
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RepolensError as exc:
            fail(exc)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]  # functools.wraps loses the ParamSpec


def search_filters(sources: tuple[str, ...], paths: tuple[str, ...], exts: tuple[str, ...]) -> SearchFilters:
    from repolens.domain import SearchFilters

    return SearchFilters(
        sources=tuple(sources),
        paths=tuple(p.strip("/") for p in paths),
        extensions=tuple(e.lower().lstrip(".") for e in exts),
    )


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


source_option = click.option("--source", "-s", "sources", multiple=True, help="Limit to this source (repeatable).")
json_option = click.option("--json", "as_json", is_flag=True, help="Print CodeAlive-shaped JSON.")


# The module that defines each top-level command, imported only when that command runs: a script calls
# ``repolens search`` once per query, and importing the server's, the batch API's and the indexer's
# commands (and what they import) was a third of its start-up. tests/unit/test_cli_commands.py checks
# that this table names every command the modules register.
COMMAND_MODULES: dict[str, str] = {
    "search": "query",
    "grep": "query",
    "fetch": "query",
    "relations": "query",
    "ask": "query",
    "index": "indexing",
    "up": "indexing",
    "sources": "sources",
    "keys": "keys",
    "users": "users",
    "serve": "server",
    "worker": "server",
    "mcp": "server",
    "migrate": "server",
    "migrate-data": "server",
    "workflow": "workflows",
    "batch": "batches",
    "eval": "batches",
}


class LazyGroup(click.Group):
    """A group whose commands are registered by their modules on first use (``COMMAND_MODULES``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if cmd_name not in self.commands and module is not None:
            importlib.import_module(f"repolens.surfaces.cli.{module}")
        return self.commands.get(cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="repolens")
def cli() -> None:
    """repolens: index repositories and search them, offline."""
