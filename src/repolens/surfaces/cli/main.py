"""The ``repolens`` command line: one module per command group (``indexing``, ``query``,
``sources``, ``server``, ``keys``, ...), each command parsing its options, calling the core and
printing. A command's module is imported when the command runs (``base.COMMAND_MODULES``), and
the heavy parts (tree-sitter, numpy, onnxruntime, rich) inside the commands that need them:
scripts call ``repolens search`` once per query.
"""

from __future__ import annotations

from repolens.surfaces.cli.base import cli  # its commands' modules are imported on first use


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
