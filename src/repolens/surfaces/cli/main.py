"""The ``repolens`` command line: one module per command group (``indexing``, ``query``,
``sources``, ``server``, ``keys``, ...), each command parsing its options, calling the core and
printing. A command's module is imported when the command runs (``base.COMMAND_MODULES``), and
the heavy parts (tree-sitter, numpy, onnxruntime, rich) inside the commands that need them:
scripts call ``repolens search`` once per query.
"""

from __future__ import annotations

from repolens.surfaces.cli.base import cli, end_process, teardown_skippable  # commands import on first use


def main() -> None:
    """Console-script entry point."""
    try:
        cli()
    except SystemExit as done:
        if done.code in (0, None) and teardown_skippable():
            end_process(0)
        raise


if __name__ == "__main__":
    main()
