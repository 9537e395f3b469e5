"""The ``repolens`` command line: one module per command group (``indexing``, ``query``,
``sources``, ``server``, ``keys``), each command parsing its options, calling the core and
printing. Imports of the heavy parts (tree-sitter, numpy, onnxruntime, rich) happen inside the
commands that need them: scripts call ``repolens search`` once per query.
"""

from __future__ import annotations

from repolens.surfaces.cli import batches, indexing, keys, query, server, sources, users, workflows  # noqa: F401 - they register their commands
from repolens.surfaces.cli.base import cli


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
