"""Route modules, one per endpoint family."""
