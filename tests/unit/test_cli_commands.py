"""The lazily loaded command line: its table of command modules matches what the modules register."""

from __future__ import annotations

import importlib
import subprocess
import sys

from click.testing import CliRunner

from repolens.surfaces.cli.base import COMMAND_MODULES, cli


def test_every_registered_command_is_in_the_table_and_every_entry_exists() -> None:
    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"repolens.surfaces.cli.{module}")
    registered = {name: cmd.callback.__module__.rsplit(".", 1)[-1] for name, cmd in cli.commands.items() if cmd.callback}
    assert registered == COMMAND_MODULES


def test_help_lists_every_command_and_a_command_loads_on_use() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMAND_MODULES:
        assert name in result.output
    assert CliRunner().invoke(cli, ["search", "--help"]).exit_code == 0
    assert CliRunner().invoke(cli, ["no-such-command"]).exit_code == 2


def test_search_does_not_import_the_other_commands() -> None:
    probe = (
        "import sys\n"
        "from repolens.surfaces.cli.base import cli\n"
        "cli.get_command(None, 'search')\n"
        "print(sorted(m for m in sys.modules if m.startswith('repolens.surfaces.cli.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "repolens.surfaces.cli.query" in out
    for other in ("server", "batches", "indexing", "workflows"):
        assert f"repolens.surfaces.cli.{other}'" not in out
