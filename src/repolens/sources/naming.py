"""Source names: one rule for every way a repository is added (``repolens index``, ``repolens up``
and ``POST /api/datasources``), and the check every name passes.

The rule lives here, below both the catalog (the API's use cases) and the indexing pipeline (the
CLI's), so that neither can drift from the other.
"""

from __future__ import annotations

import re
from pathlib import Path

from repolens import validation
from repolens.errors import InvalidInput

MAX_NAME_CHARS = 200
# The shape of every public id (24 hex characters, ``secrets.token_hex(12)`` in storage). Ids and
# names are looked up through one parameter (``Names``, ``DataSourceIds``, URL paths), so a name of
# this shape could pass for another source's id: such names are refused.
_ID_SHAPED = re.compile(r"[0-9a-f]{24}", re.IGNORECASE)


def check_name(name: str) -> str:
    """``name`` stripped, or ``InvalidInput`` saying what a name may be."""
    name = validation.require_name(name, what="name", max_chars=MAX_NAME_CHARS)
    if "::" in name:
        raise InvalidInput("name must not contain '::' (it separates the parts of an identifier)")
    if _ID_SHAPED.fullmatch(name):
        raise InvalidInput(f"name {name!r} has the shape of a data source id (24 hex characters); choose another name")
    return name


def default_name(location: str) -> str:
    """The name a repository gets when none is given: ``owner/repo`` from a git URL, else the
    folder's name. A local folder is named by its folder even when it has a remote: the name a
    reader sees is the name it gets."""
    from repolens.sources import git  # subprocess and URL parsing: not for a command that only reads

    if git.looks_like_url(location):
        return git.name_from_url(location)
    return Path(location).name


def source_name(location: str, name: str | None) -> str:
    """``name`` if given, else ``default_name(location)``; checked either way."""
    return check_name(name or default_name(location))
