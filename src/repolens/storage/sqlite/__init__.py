"""storage/sqlite stage."""
