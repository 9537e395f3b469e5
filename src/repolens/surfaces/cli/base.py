"""The ``repolens`` group and what its commands share: services, error handling, output, options.

Imports of the heavy parts (tree-sitter, numpy, onnxruntime, rich) happen inside the
commands that need them: scripts call ``repolens search`` once per query.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import click

from repolens.errors import Conflict, InvalidInput, RepolensError

if TYPE_CHECKING:
    from repolens.domain import SearchFilters
    from repolens.services import Services

F = TypeVar("F", bound=Callable[..., Any])
EXIT_ERROR = 1
EXIT_USAGE = 2


@contextmanager
def open_services() -> Iterator[Services]:
    from repolens.services import build_services
    from repolens.settings import load_settings

    services = build_services(load_settings())
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="repolens")
def cli() -> None:
    """repolens: index repositories and search them, offline."""
