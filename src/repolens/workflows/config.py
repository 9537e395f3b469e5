"""Workflow definitions: CodeMie's YAML, parsed safely and validated with errors that name the line.

The YAML is composed by PyYAML's safe loader into a node graph (no tags that build objects), then
turned into plain values here, counting every node visited: an alias re-visits its anchor's
nodes, so a "billion laughs" document is refused after ``MAX_YAML_NODES`` instead of expanding.
Every key's line is remembered, so a validation error says ``line 12, states[1].next.state_id``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from repolens.agents import output
from repolens.agents.model import CODE_TOOLS, McpServer
from repolens.errors import InvalidInput
from repolens.workflows.expressions import ExpressionError, check

# A workflow definition is a page or two of YAML; CodeMie's biggest templates are ~20 KB.
MAX_YAML_BYTES = 1_000_000
# Nodes visited while building values, aliases counted each time they are expanded.
MAX_YAML_NODES = 50_000
MAX_YAML_DEPTH = 50
END = "end"
MODES = ("Sequential", "Autonomous")
KEEP_CURRENT = "keep_current"
ALL_KEYS = "*"
# JSON Schema keywords: an ``output_schema`` with none of them at its top is an example of the
# answer's shape (CodeMie's templates write ``'{"colors": ["orange","blue"]}'``), not a schema.
SCHEMA_KEYWORDS = frozenset(
    {"$schema", "$ref", "$defs", "type", "properties", "items", "required", "enum", "const", "anyOf", "oneOf", "allOf"}
)
# CodeMie keys this server accepts but cannot honour: set to anything but their default, the
# definition is refused (a flag silently ignored would change what a workflow means). Why each:
NO_SHARED_HISTORY = (
    "states here share no LLM message history: an assistant state gets its task, the previous "
    "state's output, the user's input and the context store"
)
UNSUPPORTED_NEXT = {
    "include_in_llm_history": NO_SHARED_HISTORY + "; use store_in_context: false or output_key to keep an output apart",
    "clear_prior_messages": NO_SHARED_HISTORY + "; use clear_context_store to start a state afresh",
    "override_task": "a state's task is always its own `task`",
    "keep_history": "it is deprecated in CodeMie; " + NO_SHARED_HISTORY,
}
UNSUPPORTED_STATE = {
    "finish_iteration": "an iter_key map runs one state per item and joins right after it",
    "result_as_human_message": NO_SHARED_HISTORY,
}
UNSUPPORTED_TOOL = {
    "integration_alias": "this server has no integrations store; give the tool its tool_args",
    "resolve_dynamic_values_in_response": "a tool state's output is the tool's result as returned",
    "tokens_size_limit": "code tools cut their own results; MCP results are kept whole",
}
UNSUPPORTED_ASSISTANT = {
    "exclude_extra_context_tools": "an inline assistant gets exactly the tools it lists",
    "skill_ids": "this server has no skills",
}


class ConfigError(InvalidInput):
    """A workflow definition that cannot be used; ``details`` lists ``{line, key, msg}``."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetryPolicy(_Strict):
    initial_interval: float = Field(default=1.0, ge=0, le=60)
    backoff_factor: float = Field(default=2.0, ge=1, le=10)
    max_interval: float = Field(default=30.0, ge=0, le=600)
    max_attempts: int = Field(default=1, ge=1, le=10)


class WorkflowAssistant(_Strict):
    id: str
    assistant_id: str | None = None
    name: str | None = None
    model: str | None = None
    temperature: float | None = None
    system_prompt: str | None = None
    limit_tool_output_tokens: int = 10000
    tools: list[dict[str, Any]] = []
    datasource_ids: list[str] = []
    exclude_extra_context_tools: bool = False
    mcp_servers: list[dict[str, Any]] = []
    skill_ids: list[str] = []


class WorkflowTool(_Strict):
    id: str
    tool: str
    tool_args: dict[str, Any] = {}
    integration_alias: str | None = None
    tool_result_json_pointer: str | None = None
    trace: bool = False
    mcp_server: dict[str, Any] | None = None
    resolve_dynamic_values_in_response: bool = False
    input_key: str | None = None
    tokens_size_limit: int | None = None


class Condition(_Strict):
    expression: str
    then: str
    otherwise: str


class SwitchCase(_Strict):
    condition: str
    state_id: str


class Switch(_Strict):
    cases: list[SwitchCase]
    default: str


class NextState(_Strict):
    state_id: str | None = None
    state_ids: list[str] | None = None
    iter_key: str | None = None
    condition: Condition | None = None
    switch: Switch | None = None
    output_key: str | None = None
    store_in_context: bool = True
    include_in_llm_history: bool = True
    clear_prior_messages: bool = False
    clear_context_store: bool | Literal["keep_current"] = False
    reset_keys_in_context_store: list[str] = []
    include_in_iterator_context: list[str] = ["*"]
    append_to_context: bool = False
    override_task: bool = False
    keep_history: bool | None = None

    @model_validator(mode="after")
    def _one_route(self) -> NextState:
        routes = [self.state_id is not None, bool(self.state_ids), self.condition is not None, self.switch is not None]
        if sum(routes) != 1:
            raise ValueError("next needs exactly one of state_id, state_ids, condition or switch")
        if self.iter_key is not None and self.state_id is None:
            raise ValueError("iter_key needs a state_id to run for each item")
        return self


class WorkflowState(_Strict):
    id: str
    assistant_id: str | None = None
    tool_id: str | None = None
    custom_node_id: str | None = None
    task: str = ""
    output_schema: str | None = None
    retry_policy: RetryPolicy | None = None
    interrupt_before: bool = False
    finish_iteration: bool = False
    tool_args: dict[str, Any] = {}
    resolve_dynamic_values_in_prompt: bool = False
    result_as_human_message: bool = False
    next: NextState | None = None

    @model_validator(mode="after")
    def _one_actor(self) -> WorkflowState:
        if sum(x is not None for x in (self.assistant_id, self.tool_id, self.custom_node_id)) != 1:
            raise ValueError("a state needs exactly one of assistant_id, tool_id or custom_node_id")
        return self


class WorkflowConfig(_Strict):
    assistants: list[WorkflowAssistant] = []
    tools: list[WorkflowTool] = []
    custom_nodes: list[dict[str, Any]] = []
    states: list[WorkflowState]
    retry_policy: RetryPolicy = RetryPolicy()
    messages_limit_before_summarization: int = 25
    tokens_limit_before_summarization: int = 50000
    enable_summarization_node: bool = True
    recursion_limit: int = Field(default=50, ge=1, le=1000)
    max_concurrency: int | None = Field(default=None, ge=1, le=32)
    verbose: bool = False
    max_iteration_key_output_limit: int = Field(default=200, ge=1, le=10_000)

    def state(self, state_id: str) -> WorkflowState:
        return next(s for s in self.states if s.id == state_id)


@dataclass(frozen=True, slots=True)
class _Lines:
    """The line of each key path (tuples of str keys and int indexes), 1-based."""

    by_path: dict[tuple[str | int, ...], int]

    def line(self, path: tuple[str | int, ...]) -> int | None:
        while path:
            if path in self.by_path:
                return self.by_path[path]
            path = path[:-1]
        return None


def _plain(
    node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int], budget: list[int], depth: int
) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError(
            f"the YAML expands to more than {MAX_YAML_NODES} values (anchors and aliases included); "
            "write it out or make it smaller"
        )
    if depth > MAX_YAML_DEPTH:
        raise ConfigError(f"the YAML nests deeper than {MAX_YAML_DEPTH} levels")
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"line {key_node.start_mark.line + 1}: mapping keys must be plain strings")
            key = str(key_node.value)
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _plain(value_node, (*path, key), lines, budget, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_plain(item, (*path, i), lines, budget, depth + 1) for i, item in enumerate(node.value)]
    return yaml.SafeLoader(" ").construct_object(node, deep=False) if node.tag != "tag:yaml.org,2002:str" else node.value


def _compose(text: str) -> yaml.Node | None:
    loader = yaml.SafeLoader(text)
    try:
        return loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{where}the YAML is not valid: {problem}") from None
    finally:
        loader.dispose()


def _path_text(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse(yaml_config: str) -> WorkflowConfig:
    """Parse and validate a workflow's YAML; raise ``ConfigError`` naming the line and key."""
    if len(yaml_config.encode("utf-8", "replace")) > MAX_YAML_BYTES:
        raise ConfigError(f"the YAML configuration is larger than {MAX_YAML_BYTES // 1000} KB")
    node = _compose(yaml_config)
    if node is None:
        raise ConfigError("the YAML configuration is empty: it needs at least `states`")
    lines: dict[tuple[str | int, ...], int] = {}
    value = _plain(node, (), lines, [MAX_YAML_NODES], 0)
    if isinstance(value, dict) and isinstance(value.get("execution_config"), dict):
        # CodeMie's templates wrap the body; user configs put it at the top level. Both work.
        value = value["execution_config"]
        lines = {p[1:]: n for p, n in lines.items() if p[:1] == ("execution_config",)}
    if not isinstance(value, dict):
        raise ConfigError("the YAML configuration must be a mapping with `states`")
    where = _Lines(lines)
    try:
        config = WorkflowConfig.model_validate(value)
    except ValidationError as exc:
        details = []
        for err in exc.errors():
            path = tuple(p for p in err["loc"] if isinstance(p, (str, int)))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {path[-1]!r}"
            details.append({"line": where.line(path), "key": _path_text(path), "msg": msg})
        first = details[0]
        raise ConfigError(f"line {first['line']}, {first['key']}: {first['msg']}", details) from None
    _check_references(config, where)
    return config


def _fail(where: _Lines, path: tuple[str | int, ...], msg: str) -> ConfigError:
    line = where.line(path)
    return ConfigError(f"line {line}, {_path_text(path)}: {msg}", [{"line": line, "key": _path_text(path), "msg": msg}])


def mcp_server_of(entry: Mapping[str, Any]) -> McpServer:
    """An assistant's ``mcp_servers`` entry or a tool's ``mcp_server``, written as CodeMie writes
    them (``{name, config: {url, headers, command, args, env}, tools}``; ``mcp_connect_url``,
    ``command`` and ``arguments`` at the top also accepted), as the agent runtime's server.
    Raises ``ValueError`` saying what is wrong."""
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError("config must be a mapping")
    name = str(entry.get("name") or "").strip()
    url = str(config.get("url") or entry.get("mcp_connect_url") or entry.get("url") or "")
    command = str(config.get("command") or entry.get("command") or "")
    args = config.get("args") or str(entry.get("arguments") or "").split()
    headers = config.get("headers") or {}
    env = config.get("env") or {}
    tools = entry.get("tools") or config.get("tools") or []
    if not name:
        raise ValueError("an MCP server needs a name")
    if not url and not command:
        raise ValueError(f"MCP server {name!r} needs config.url (streamable HTTP) or config.command (stdio)")
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"MCP server {name!r}: url must be http(s)")
    if not isinstance(headers, dict) or not isinstance(env, dict) or not isinstance(args, list | tuple):
        raise ValueError(f"MCP server {name!r}: headers and env are mappings, args a list")
    return McpServer(
        name=name,
        url=url,
        headers={str(k): str(v) for k, v in headers.items()},
        command=command,
        args=tuple(str(a) for a in args),
        env={str(k): str(v) for k, v in env.items()},
        tools=tuple(str(t) for t in tools),
        enabled=bool(entry.get("enabled", True)),
    )


def _check_assistants_and_tools(config: WorkflowConfig, where: _Lines) -> None:
    for i, assistant in enumerate(config.assistants):
        for j, tool in enumerate(assistant.tools):
            name = tool.get("name")
            if name not in CODE_TOOLS:
                raise _fail(
                    where,
                    ("assistants", i, "tools", j, "name"),
                    f"unknown tool {name!r}; available: {', '.join(CODE_TOOLS)}",
                )
        for j, server in enumerate(assistant.mcp_servers):
            try:
                mcp_server_of(server)
            except ValueError as exc:
                raise _fail(where, ("assistants", i, "mcp_servers", j), str(exc)) from None
    for i, state_tool in enumerate(config.tools):
        pointer = state_tool.tool_result_json_pointer
        if pointer and not pointer.startswith("/"):
            raise _fail(
                where,
                ("tools", i, "tool_result_json_pointer"),
                "a JSON pointer starts with / (RFC 6901), e.g. /items/0/title",
            )
        if state_tool.mcp_server is not None:
            try:
                mcp_server_of(state_tool.mcp_server)
            except ValueError as exc:
                raise _fail(where, ("tools", i, "mcp_server"), str(exc)) from None


def _check_references(config: WorkflowConfig, where: _Lines) -> None:
    if not config.states:
        raise _fail(where, ("states",), "a workflow needs at least one state")
    _check_assistants_and_tools(config, where)
    _check_unsupported(config, where)
    assistants = {a.id for a in config.assistants}
    tools = {t.id for t in config.tools}
    states: set[str] = set()
    for i, state in enumerate(config.states):
        if state.id in states or state.id == END:
            raise _fail(where, ("states", i, "id"), f"the state id {state.id!r} is used twice or reserved")
        states.add(state.id)
    for i, state in enumerate(config.states):
        if state.assistant_id is not None and state.assistant_id not in assistants:
            raise _fail(where, ("states", i, "assistant_id"), f"no assistant with id {state.assistant_id!r} in `assistants`")
        if state.tool_id is not None and state.tool_id not in tools:
            raise _fail(where, ("states", i, "tool_id"), f"no tool with id {state.tool_id!r} in `tools`")
        if state.custom_node_id is not None:
            raise _fail(where, ("states", i, "custom_node_id"), "custom nodes are not supported by this server")
        if state.output_schema is not None:
            try:
                schema_of(state.output_schema)
            except InvalidInput as exc:
                raise _fail(where, ("states", i, "output_schema"), str(exc)) from None
            if state.tool_id is not None:
                raise _fail(where, ("states", i, "output_schema"), "output_schema applies to assistant states only")
        nxt = state.next
        if nxt is None:
            continue
        base: tuple[str | int, ...] = ("states", i, "next")
        targets: list[tuple[tuple[str | int, ...], str]] = []
        if nxt.state_id is not None:
            targets.append(((*base, "state_id"), nxt.state_id))
        for j, target in enumerate(nxt.state_ids or []):
            targets.append(((*base, "state_ids", j), target))
        if nxt.condition is not None:
            _check_expression(where, (*base, "condition", "expression"), nxt.condition.expression)
            targets += [
                ((*base, "condition", "then"), nxt.condition.then),
                ((*base, "condition", "otherwise"), nxt.condition.otherwise),
            ]
        if nxt.switch is not None:
            for j, case in enumerate(nxt.switch.cases):
                _check_expression(where, (*base, "switch", "cases", j, "condition"), case.condition)
                targets.append(((*base, "switch", "cases", j, "state_id"), case.state_id))
            targets.append(((*base, "switch", "default"), nxt.switch.default))
        for path, target in targets:
            if target != END and target not in states:
                raise _fail(where, path, f"no state with id {target!r} (or `end`)")


def _example_schema(example: Any) -> dict[str, Any]:
    """The JSON Schema of answers shaped like ``example``: the same keys (all required) with
    values of the same JSON types, recursively; a list's items shaped like its first item."""
    if isinstance(example, dict):
        return {
            "type": "object",
            "properties": {k: _example_schema(v) for k, v in example.items()},
            "required": list(example),
        }
    if isinstance(example, list):
        return {"type": "array", "items": _example_schema(example[0])} if example else {"type": "array"}
    if isinstance(example, bool):
        return {"type": "boolean"}
    if isinstance(example, int | float):
        return {"type": "number"}
    if example is None:
        return {}
    return {"type": "string"}


def schema_of(output_schema: str) -> dict[str, Any]:
    """A state's ``output_schema`` as a JSON Schema: a JSON Schema as written, or an example of
    the answer (a JSON object with none of the schema keywords at its top) turned into the
    schema of answers shaped like it. InvalidInput when it is neither."""
    try:
        value = json.loads(output_schema)
    except ValueError:
        raise InvalidInput("output_schema must be a JSON document (a JSON Schema or an example answer)") from None
    if not isinstance(value, dict):
        raise InvalidInput("output_schema must be a JSON object (a JSON Schema or an example answer)")
    schema = value if SCHEMA_KEYWORDS & set(value) else _example_schema(value)
    output.check_schema(schema)
    return schema


def _unsupported(where: _Lines, path: tuple[str | int, ...], model: BaseModel, reasons: Mapping[str, str]) -> None:
    for key, reason in reasons.items():
        if key in model.model_fields_set and getattr(model, key) != type(model).model_fields[key].default:
            raise _fail(where, (*path, key), f"{key} is not supported by this server ({reason}); remove it")


def _check_unsupported(config: WorkflowConfig, where: _Lines) -> None:
    """Refuse the CodeMie keys this server would otherwise ignore (``UNSUPPORTED_*``)."""
    for i, assistant in enumerate(config.assistants):
        _unsupported(where, ("assistants", i), assistant, UNSUPPORTED_ASSISTANT)
        for j, listed in enumerate(assistant.tools):
            if listed.get("integration_alias"):
                reason = UNSUPPORTED_TOOL["integration_alias"]
                raise _fail(
                    where,
                    ("assistants", i, "tools", j, "integration_alias"),
                    f"integration_alias is not supported by this server ({reason}); remove it",
                )
    for i, state_tool in enumerate(config.tools):
        _unsupported(where, ("tools", i), state_tool, UNSUPPORTED_TOOL)
    if config.custom_nodes:
        raise _fail(where, ("custom_nodes",), "custom nodes are not supported by this server")
    for i, state in enumerate(config.states):
        _unsupported(where, ("states", i), state, UNSUPPORTED_STATE)
        if state.next is not None:
            _unsupported(where, ("states", i, "next"), state.next, UNSUPPORTED_NEXT)
            if state.next.include_in_iterator_context != [ALL_KEYS] and state.next.iter_key is None:
                raise _fail(
                    where,
                    ("states", i, "next", "include_in_iterator_context"),
                    "include_in_iterator_context applies to an iter_key map only",
                )


def _check_expression(where: _Lines, path: tuple[str | int, ...], expression: str) -> None:
    try:
        check(expression)
    except ExpressionError as exc:
        raise _fail(where, path, str(exc)) from None


def check_mode(mode: str | None) -> str:
    """The workflow mode, ``Sequential`` by default; ``Autonomous`` is refused as CodeMie does."""
    mode = mode or "Sequential"
    if mode == "Autonomous":
        raise ConfigError("Autonomous workflows are no longer supported; use mode Sequential")
    if mode not in MODES:
        raise ConfigError(f"unknown workflow mode {mode!r}; use Sequential")
    return mode
