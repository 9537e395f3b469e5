"""What an assistant is, in the core's words; surfaces map their wire formats onto these types.

An assistant is a system prompt, a model choice with sampling settings, what it may search
(``context``: data source names or ids, checked against the caller's key on every turn), which of
our read-only code tools it may call, external MCP servers whose tools it may call, other
assistants it may consult (sub-assistants), prompt variables substituted into its prompt, and
conversation starters shown by clients. ``attributes`` holds the fields a surface keeps for
round trips (icons, categories, flags) that the runtime never reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from repolens.errors import InvalidInput

MAX_NAME_CHARS = 200
MAX_DESCRIPTION_CHARS = 10_000
MAX_SYSTEM_PROMPT_CHARS = 100_000  # a prompt longer than this is a document: give it as context instead
MAX_LIST_ITEMS = 50  # context entries, tools, MCP servers, sub-assistants, variables, starters
MAX_DEFINITION_BYTES = 512 * 1024  # the stored JSON of one assistant
# The code tools an assistant may be given: read-only and scoped by the caller's key. ``chat``
# and the legacy aliases are left out: an agent calling the answer engine would nest a second
# model loop inside its own.
CODE_TOOLS = (
    "get_data_sources",
    "semantic_search",
    "grep_search",
    "fetch_artifacts",
    "get_artifact_relationships",
    "get_file_tree",
    "read_file",
    "get_repository_ontology",
)
_SLUG_STRIP = re.compile(r"[^a-z0-9]+")
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True, slots=True)
class McpServer:
    """An external MCP server whose tools the assistant may call.

    Either ``url`` (streamable HTTP) or ``command`` (stdio, only for commands on the operator's
    allow-list). ``tools`` limits which of its tools are offered (empty: all).
    """

    name: str
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    command: str = ""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    tools: tuple[str, ...] = ()
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class PromptVariable:
    """A ``{{key}}`` placeholder of the system prompt and the value it takes by default."""

    key: str
    description: str = ""
    default_value: str = ""
    sensitive: bool = False


@dataclass(frozen=True, slots=True)
class Definition:
    """What the owner of an assistant writes; everything but identity and ownership."""

    name: str
    description: str = ""
    system_prompt: str = ""
    project: str = ""
    slug: str = ""
    model: str = ""  # "" = the server's configured model
    temperature: float | None = None
    top_p: float | None = None
    tool_output_tokens: int | None = None  # cap on one tool result given to the model
    context: tuple[str, ...] = ()  # data source names or ids
    tools: tuple[str, ...] = ()  # names from CODE_TOOLS
    mcp_servers: tuple[McpServer, ...] = ()
    sub_assistants: tuple[str, ...] = ()  # assistant ids
    prompt_variables: tuple[PromptVariable, ...] = ()
    conversation_starters: tuple[str, ...] = ()
    shared: bool = True  # visible to the whole organisation, not only its owner
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assistant:
    """A stored assistant."""

    id: str  # uuid4
    organization: str
    owner: str  # the key (or user) that created it
    owner_name: str
    definition: Definition
    created_at: float
    updated_at: float
    version: int = 1

    @property
    def name(self) -> str:
        return self.definition.name


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who is asking, as far as assistants care: an owner id, an organisation, admin rights."""

    owner: str
    organization: str
    name: str = ""
    admin: bool = False


def slugify(name: str) -> str:
    """A URL-safe slug of a name: lower case, runs of other characters as one dash."""
    return _SLUG_STRIP.sub("-", name.lower()).strip("-")[:MAX_NAME_CHARS] or "assistant"


def render_prompt(definition: Definition, values: Mapping[str, str] | None = None) -> str:
    """The system prompt with ``{{key}}`` replaced by the caller's value or the variable's default;
    unknown placeholders stay as written."""
    known = {v.key: v.default_value for v in definition.prompt_variables}
    known.update(values or {})
    return _VARIABLE.sub(lambda m: known.get(m.group(1), m.group(0)), definition.system_prompt)


def _check_list(what: str, items: tuple[Any, ...]) -> None:
    if len(items) > MAX_LIST_ITEMS:
        raise InvalidInput(f"{what}: at most {MAX_LIST_ITEMS} entries, got {len(items)}")


def validate(definition: Definition) -> Definition:
    """The definition with its slug filled in, or ``InvalidInput`` saying what is wrong."""
    name = definition.name.strip()
    if not name:
        raise InvalidInput("name is required")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidInput(f"name is over {MAX_NAME_CHARS} characters")
    if len(definition.description) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(f"description is over {MAX_DESCRIPTION_CHARS} characters")
    if len(definition.system_prompt) > MAX_SYSTEM_PROMPT_CHARS:
        raise InvalidInput(f"system_prompt is over {MAX_SYSTEM_PROMPT_CHARS} characters")
    for what, value in (("temperature", definition.temperature), ("top_p", definition.top_p)):
        if value is not None and not 0 <= value <= (2 if what == "temperature" else 1):
            raise InvalidInput(f"{what} must be between 0 and {2 if what == 'temperature' else 1}")
    _check_list("context", definition.context)
    _check_list("tools", definition.tools)
    _check_list("mcp_servers", definition.mcp_servers)
    _check_list("sub-assistants", definition.sub_assistants)
    _check_list("prompt_variables", definition.prompt_variables)
    _check_list("conversation_starters", definition.conversation_starters)
    unknown = [t for t in definition.tools if t not in CODE_TOOLS]
    if unknown:
        raise InvalidInput(f"unknown tools {', '.join(map(repr, unknown))}; available: {', '.join(CODE_TOOLS)}")
    for server in definition.mcp_servers:
        if not server.name.strip():
            raise InvalidInput("every MCP server needs a name")
        if not server.url and not server.command:
            raise InvalidInput(f"MCP server {server.name!r} needs a url (streamable HTTP) or a command (stdio)")
        if server.url and not server.url.startswith(("http://", "https://")):
            raise InvalidInput(f"MCP server {server.name!r}: url must be http(s), got {server.url[:80]!r}")
    slug = slugify(definition.slug or name)
    out = Definition(**{**_fields(definition), "name": name, "slug": slug})
    if len(dump_definition(out).encode()) > MAX_DEFINITION_BYTES:
        raise InvalidInput(f"the assistant definition is over {MAX_DEFINITION_BYTES // 1024} KiB")
    return out


def _fields(definition: Definition) -> dict[str, Any]:
    return {name: getattr(definition, name) for name in Definition.__dataclass_fields__}


def dump_definition(definition: Definition) -> str:
    """The stored form of a definition (JSON)."""
    return json.dumps(asdict(definition), sort_keys=True, default=str)


def load_definition(text: str) -> Definition:
    """A stored definition back as the type."""
    raw: dict[str, Any] = json.loads(text)
    raw["mcp_servers"] = tuple(
        McpServer(**{**s, "args": tuple(s.get("args", ())), "tools": tuple(s.get("tools", ()))})
        for s in raw.get("mcp_servers", ())
    )
    raw["prompt_variables"] = tuple(PromptVariable(**v) for v in raw.get("prompt_variables", ()))
    for key in ("context", "tools", "sub_assistants", "conversation_starters"):
        raw[key] = tuple(raw.get(key, ()))
    known = set(Definition.__dataclass_fields__)
    return Definition(**{k: v for k, v in raw.items() if k in known})
