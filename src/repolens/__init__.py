"""repolens: self-hosted code intelligence."""

__version__ = "0.1.0"
