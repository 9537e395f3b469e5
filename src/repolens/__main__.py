"""`python -m repolens` runs the CLI."""

from repolens.surfaces.cli.main import main

main()
