"""CodeMie's error body: ``{"error": {"message", "details", "help"}}``; 422 for validation.

The body is built in ``surfaces/http/errors.py`` beside the other dialects' (every route's errors
leave from there, and the dialect packages may not import each other through it); this module is
the name the CodeMie routes use.
"""

from __future__ import annotations

from repolens.surfaces.http.errors import CODEMIE_PREFIX, codemie_error_body, codemie_validation_details

validation_details = codemie_validation_details

__all__ = ["CODEMIE_PREFIX", "codemie_error_body", "validation_details"]
