"""`python -m repolens` runs the CLI."""

from repolens.cli.main import main

main()
