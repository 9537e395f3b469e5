"""The workflow engine: runs an execution's states, committing each on its own.

States run one at a time unless the workflow sets ``max_concurrency``: then up to that many
frontier tasks (fan-out branches, ``iter_key`` items) run at once, in threads of the job.

Durability. The execution row holds a *frontier*: the tasks (state + input) still to run, the
fan-out groups waiting for their members, the context store and a step count. A task is taken
from the frontier only in the transaction that records its state as finished (``commit_state``),
together with the tasks it schedules and the transitions it makes. A process killed mid-state
leaves the task in the frontier and its state row In Progress; the job queue runs the execution
again, the task runs again into the same row, and no finished state ever runs twice.

Assistants and tools are reached through two narrow protocols (``AssistantRunner``,
``ToolRunner``), so the engine knows nothing of models or MCP; the job entry point
(``workflows/jobs.py``) wires the real ones.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from repolens.agents import output as structured_output
from repolens.errors import InvalidInput, RepolensError
from repolens.storage.workflow_store import (
    ABORTED,
    FAILED,
    IN_PROGRESS,
    INTERRUPTED,
    SUCCEEDED,
    ExecutionRecord,
    NewThought,
    StateRecord,
    WorkflowStore,
)
from repolens.workflows.config import (
    ALL_KEYS,
    END,
    NextState,
    RetryPolicy,
    WorkflowAssistant,
    WorkflowConfig,
    WorkflowState,
    WorkflowTool,
    parse,
    schema_of,
)
from repolens.workflows.expressions import ExpressionError, evaluate

log = logging.getLogger(__name__)

# How often a running state looks for an abort in the database: the in-flight model or tool
# call is cancelled within this delay of ``PUT .../abort``.
ABORT_POLL_S = 0.3
# How long ``run`` waits, on its way out, for the abort watcher's query in flight (one query).
WATCHER_JOIN_S = 10.0
# How often the engine, waiting for its tasks, checks that its job is still its own (the
# server that started it may have died, and another worker resumed the execution).
STILL_MINE_S = 1.0
# A state's output kept in the frontier and the transitions' context is cut at this size: the
# full output lives in the state row.
MAX_CONTEXT_CHARS = 100_000
# Fan-out groups in the frontier: the items of an ``iter_key`` map (one state, joined into the
# list of their outputs) and the branches of a ``state_ids`` fan-out (their successors run once
# all branches committed).
MAP, BRANCHES = "map", "branches"
# A mismatching answer is quoted in the state's error up to this length: enough to see what
# the model did instead, short enough for a list of states.
MAX_ANSWER_SHOWN = 300
# A dynamic value in a task (``resolve_dynamic_values_in_prompt``): ``{{key}}`` of the context store.
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True, slots=True)
class AssistantCall:
    """One assistant state's turn: who, what, and the input from the previous state."""

    assistant: WorkflowAssistant
    task: str
    input: str
    user_input: str
    context: dict[str, Any]
    output_schema: dict[str, Any] | None  # a JSON Schema (``config.schema_of``)
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class AssistantReply:
    text: str
    thoughts: list[NewThought] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0


class AssistantRunner(Protocol):
    """The agent runtime as the engine sees it. ``cancel`` is set on abort: stop the model call."""

    def run(self, call: AssistantCall, cancel: threading.Event) -> AssistantReply: ...


class ToolRunner(Protocol):
    """A tool state's tool. Raise ``RepolensError`` (or any exception) on failure."""

    def run(self, tool: WorkflowTool, args: dict[str, Any], input: str, cancel: threading.Event) -> str: ...


class Aborted(Exception):
    """The execution was aborted while a state ran."""


class OutputMismatch(RepolensError):
    """An assistant state's answer is not JSON valid against its ``output_schema``."""


def initial_frontier(config: WorkflowConfig, yaml_config: str, user_input: str) -> dict[str, Any]:
    """The frontier of a new execution: the first state, fed the user's input."""
    first = config.states[0].id
    return {
        "yaml_config": yaml_config,
        "tasks": [{"key": "1", "state": first, "input": user_input, "iteration": 0, "preceding": [], "group": None}],
        "groups": {},
        "seq": 1,
        "steps": 0,
        "context": {},
        "user_input": user_input,
        "last_output": None,
    }


def _parsed(output: str) -> Any:
    try:
        return json.loads(output)
    except ValueError:
        text = output.strip()
        if text.startswith("```"):  # models like to fence their JSON
            inner = text.strip("`").removeprefix("json").strip()
            try:
                return json.loads(inner)
            except ValueError:
                return output
        return output


class Engine:
    """Runs one execution until it ends, pauses or is aborted.

    Up to ``max_concurrency`` (default 1) frontier tasks run at once, each in a thread of its
    own: the branches of a ``state_ids`` fan-out or the items of an ``iter_key`` map. Each task
    commits on its own (under ``_commit_lock``, against the frontier as the database has it
    then), so a kill loses at most the tasks in flight, and each runs again into its own row.
    """

    def __init__(
        self,
        db: WorkflowStore,
        assistants: AssistantRunner,
        tools: ToolRunner,
        *,
        headers: dict[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        still_mine: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.assistants = assistants
        self.tools = tools
        self.headers = headers or {}
        self.sleep = sleep
        self.still_mine = still_mine or (lambda: None)
        self._commit_lock = threading.RLock()  # a routing failure commits under the lock it failed in

    def run(self, execution_public_id: str) -> str:
        """Run the execution's frontier to its end; its final status."""
        cancel = threading.Event()  # abort, or a failed branch: every task in flight stops
        stop_watch = threading.Event()
        watcher = threading.Thread(target=self._watch_abort, args=(execution_public_id, cancel, stop_watch), daemon=True)
        watcher.start()
        running: dict[str, tuple[Future[str | None], StateRecord]] = {}
        pool: ThreadPoolExecutor | None = None
        try:
            while True:
                self.still_mine()
                ex = self.db.get_execution(execution_public_id)
                if ex is None or ex.status in (ABORTED, SUCCEEDED, FAILED):
                    self._stop_all(running, cancel, reason="")
                    return ABORTED if ex is None else ex.status
                workflow = self._workflow(ex)
                if workflow is None:
                    self.db.update_execution(ex.id, status=FAILED, error="the workflow was deleted")
                    return FAILED
                if pool is None:
                    pool = ThreadPoolExecutor(workflow.max_concurrency or 1, thread_name_prefix="repolens-state")
                outcome = self._start_tasks(ex, workflow, running, pool, cancel)
                if outcome is not None:
                    return outcome
                done, _ = wait([f for f, _ in running.values()], timeout=STILL_MINE_S, return_when=FIRST_COMPLETED)
                for key, (future, row) in list(running.items()):
                    if future not in done:
                        continue
                    del running[key]
                    result = future.result()
                    if result is not None:
                        self._stop_all(running, cancel, reason=f"stopped: state {row.state_id} {result.lower()}")
                        return result
        finally:
            cancel.set()
            stop_watch.set()
            if pool is not None:
                pool.shutdown(wait=True)
            # The watcher reads the database: it must be done before the caller may close it
            # (a query in flight on a closed SQLite connection crashes the process).
            watcher.join(WATCHER_JOIN_S)

    def _start_tasks(
        self,
        ex: ExecutionRecord,
        config: WorkflowConfig,
        running: dict[str, tuple[Future[str | None], StateRecord]],
        pool: ThreadPoolExecutor,
        cancel: threading.Event,
    ) -> str | None:
        """Start frontier tasks up to the concurrency limit; a final status when the execution
        ends, pauses or fails here instead."""
        frontier = ex.frontier
        tasks: list[dict[str, Any]] = frontier["tasks"]
        if not tasks and not running:
            last = frontier.get("last_output")
            self.db.update_execution(ex.id, status=SUCCEEDED, output=last if isinstance(last, str) else None)
            return SUCCEEDED
        limit = config.max_concurrency or 1
        for task in tasks:
            if len(running) >= limit:
                break
            if task["key"] in running:
                continue
            state = config.state(task["state"])
            if state.interrupt_before and not task.get("approved"):
                if running:
                    break  # pause once the branches in flight have committed
                self._start_row(ex, state, task, INTERRUPTED)
                self.db.update_execution(ex.id, status=INTERRUPTED)
                return INTERRUPTED
            if frontier["steps"] + len(running) >= config.recursion_limit:
                if running:
                    break
                row = self._start_row(ex, state, task, IN_PROGRESS)
                error = f"the workflow ran {config.recursion_limit} states (recursion_limit) without reaching `end`"
                self.db.commit_state(
                    row.id,
                    status=FAILED,
                    output=None,
                    error=error,
                    thoughts=[],
                    transitions=[],
                    execution={"status": FAILED, "error": error},
                )
                return FAILED
            row = self._start_row(ex, state, task, IN_PROGRESS)
            if ex.status != IN_PROGRESS:
                self.db.update_execution(ex.id, status=IN_PROGRESS)
                ex = replace(ex, status=IN_PROGRESS)
            future = pool.submit(self._run_task, ex.public_id, config, state, task, row, cancel)
            running[task["key"]] = (future, row)
        return None

    def _start_row(self, ex: ExecutionRecord, state: WorkflowState, task: dict[str, Any], status: str) -> StateRecord:
        return self.db.start_state(
            ex.id,
            task_key=task["key"],
            state_id=state.id,
            task=state.task,
            iteration=task["iteration"],
            preceding=task["preceding"],
            status=status,
        )

    def _stop_all(
        self, running: dict[str, tuple[Future[str | None], StateRecord]], cancel: threading.Event, *, reason: str
    ) -> None:
        """Cancel the tasks in flight and wait for them; with a ``reason`` (a sibling failed), their
        rows say why they stopped (an abort has already marked them)."""
        cancel.set()
        for future, row in running.values():
            future.exception()  # waits; the task reports its own failures
            if reason:
                self.db.commit_state(
                    row.id, status=ABORTED, output=None, error=reason, thoughts=[], transitions=[], execution={}
                )
        running.clear()

    def _run_task(
        self,
        execution_public_id: str,
        config: WorkflowConfig,
        state: WorkflowState,
        task: dict[str, Any],
        row: StateRecord,
        cancel: threading.Event,
    ) -> str | None:
        """Run one task and commit it; None when committed and the execution goes on, else the
        execution's status (Failed, Aborted)."""
        try:
            reply = self._run_with_retry(config, state, task, cancel)
        except Aborted:
            return ABORTED
        except Exception as exc:  # the state's failure is the execution's: recorded, not raised
            return self._commit_failure(execution_public_id, state, task, row, exc)
        with self._commit_lock:
            fresh = self.db.get_execution(execution_public_id)
            if fresh is None:
                return ABORTED
            try:
                new_frontier, transitions = self._advance(config, state, task, reply.text, fresh.frontier)
            except Exception as exc:  # routing failed (an expression over this output, a missing iter_key)
                return self._commit_failure(execution_public_id, state, task, row, exc)
            done = self.db.commit_state(
                row.id,
                status=SUCCEEDED,
                output=reply.text,
                error="",
                thoughts=reply.thoughts,
                transitions=transitions,
                execution={
                    "frontier": new_frontier,
                    "input_tokens": fresh.input_tokens + reply.input_tokens,
                    "output_tokens": fresh.output_tokens + reply.output_tokens,
                },
            )
        return None if done else ABORTED

    def _commit_failure(
        self, execution_public_id: str, state: WorkflowState, task: dict[str, Any], row: StateRecord, exc: Exception
    ) -> str:
        error = str(exc) if isinstance(exc, RepolensError) else f"{type(exc).__name__}: {exc}"
        with self._commit_lock:
            fresh = self.db.get_execution(execution_public_id)
            if fresh is None:
                return ABORTED
            rest = {**fresh.frontier, "tasks": [t for t in fresh.frontier["tasks"] if t["key"] != task["key"]]}
            done = self.db.commit_state(
                row.id,
                status=FAILED,
                output=None,
                error=error[:4000],
                thoughts=[],
                transitions=[],
                execution={"status": FAILED, "error": f"state {state.id}: {error}"[:4000], "frontier": rest},
            )
        return FAILED if done else ABORTED

    def _workflow(self, ex: ExecutionRecord) -> WorkflowConfig | None:
        # An execution runs the definition it started with: editing the workflow changes the next one.
        yaml_config = ex.frontier.get("yaml_config")
        return parse(yaml_config) if isinstance(yaml_config, str) else None

    def _run_with_retry(
        self, config: WorkflowConfig, state: WorkflowState, task: dict[str, Any], cancel: threading.Event
    ) -> AssistantReply:
        policy: RetryPolicy = state.retry_policy or config.retry_policy
        try:
            delay = policy.initial_interval
            for attempt in range(1, policy.max_attempts + 1):
                try:
                    return self._run_once(config, state, task, cancel)
                except Exception as exc:
                    if cancel.is_set():
                        raise Aborted from exc
                    if attempt >= policy.max_attempts:
                        raise
                    log.info("state %s: attempt %d failed (%s); retrying in %.1f s", state.id, attempt, exc, delay)
                    if cancel.wait(delay):
                        raise Aborted from exc
                    delay = min(policy.max_interval, delay * policy.backoff_factor)
            raise AssertionError("unreachable")
        finally:
            if cancel.is_set():
                raise Aborted

    def _watch_abort(self, execution_public_id: str, cancel: threading.Event, stop: threading.Event) -> None:
        while not stop.wait(ABORT_POLL_S):
            try:
                ex = self.db.get_execution(execution_public_id)
            except RepolensError:
                continue
            if ex is None or ex.status == ABORTED:
                cancel.set()
                return

    def _run_once(
        self, config: WorkflowConfig, state: WorkflowState, task: dict[str, Any], cancel: threading.Event
    ) -> AssistantReply:
        text_input = task["input"] if isinstance(task["input"], str) else json.dumps(task["input"])
        if state.tool_id is not None:
            tool = next(t for t in config.tools if t.id == state.tool_id)
            args = {**tool.tool_args, **state.tool_args}
            result = self.tools.run(tool, args, text_input, cancel)
            output = result if tool.tool_result_json_pointer is None else pick(result, tool.tool_result_json_pointer)
            return AssistantReply(
                text=output,
                thoughts=[
                    NewThought(
                        author_name=tool.tool,
                        author_type="Tool",
                        input_text=json.dumps(args),
                        content=result[:MAX_CONTEXT_CHARS],
                    )
                ],
            )
        assistant = next(a for a in config.assistants if a.id == state.assistant_id)
        schema = schema_of(state.output_schema) if state.output_schema is not None else None
        context = dict(task.get("context") or {})
        call = AssistantCall(
            assistant=assistant,
            task=resolve(state.task, context) if state.resolve_dynamic_values_in_prompt else state.task,
            input=text_input,
            user_input=task.get("user_input") or "",
            context=context,
            output_schema=schema,
            headers=self.headers,
        )
        reply = self.assistants.run(call, cancel)
        if schema is None:
            return reply
        # The state's output is the parsed answer, so the next state's condition, switch and
        # iter_key read its keys; an answer that does not match fails this attempt (and retries).
        structured = structured_output.parse(reply.text, schema)
        if structured.error:
            answer = reply.text.strip()
            shown = answer if len(answer) <= MAX_ANSWER_SHOWN else answer[:MAX_ANSWER_SHOWN] + " [...]"
            raise OutputMismatch(f"{structured.error}; the answer was: {shown}")
        return replace(reply, text=json.dumps(structured.value, ensure_ascii=False))

    def _advance(
        self, config: WorkflowConfig, state: WorkflowState, task: dict[str, Any], output: str, frontier: dict[str, Any]
    ) -> tuple[dict[str, Any], list[tuple[str | None, str, dict[str, Any]]]]:
        """The frontier after ``task`` finished with ``output``, and the transitions it made."""
        tasks = [t for t in frontier["tasks"] if t["key"] != task["key"]]
        groups = dict(frontier["groups"])
        parsed = _parsed(output)
        nxt = state.next
        context = _store(nxt, dict(frontier["context"]), parsed)
        moved = {**frontier, "context": context, "steps": frontier["steps"] + 1, "last_output": output[:MAX_CONTEXT_CHARS]}
        feed: Any = output
        group_id = task.get("group")
        group: dict[str, Any] | None = dict(groups[group_id]) if group_id is not None else None
        if group is not None and group.get("kind", MAP) == MAP:
            outputs = list(group["outputs"])
            slot = task.get("slot")
            if isinstance(slot, int) and slot < len(outputs):
                outputs[slot] = output  # the item's place, whichever branch finished first
            else:
                outputs.append(output)
            group["outputs"] = outputs
            group["left"] = int(group["left"]) - 1
            groups[group_id] = group
            if group["left"] > 0:
                # Wait for the group's other members: the join runs the next state once.
                return {**moved, "tasks": tasks, "groups": groups}, []
            del groups[group_id]
            feed = json.dumps(group["outputs"])
            parsed = group["outputs"]
        targets, fan_items = self._route(config, nxt, parsed)
        snapshot = {"context_store": context, "user_input": frontier.get("user_input", "")}
        transitions: list[tuple[str | None, str, dict[str, Any]]] = [(state.id, t, snapshot) for t in targets or [END]]
        # The keys of the context store the next tasks see (None: all): an ``iter_key`` map's
        # items see those of ``include_in_iterator_context``.
        keys = None
        if fan_items is not None and nxt is not None and ALL_KEYS not in nxt.include_in_iterator_context:
            keys = list(nxt.include_in_iterator_context)
        routes = [
            {"target": t, "feed": feed[:MAX_CONTEXT_CHARS], "items": fan_items, "from": state.id, "keys": keys}
            for t in targets
            if t != END
        ]
        if group is not None and group_id is not None and group.get("kind") == BRANCHES:
            # A ``state_ids`` branch: its successors wait for its siblings (as in LangGraph, the
            # branches are one step and what follows them the next), then run once each.
            group["pending"] = [*group["pending"], *({**r, "slot": task.get("slot", 0)} for r in routes)]
            group["left"] = int(group["left"]) - 1
            groups[group_id] = group
            if group["left"] > 0:
                return {**moved, "tasks": tasks, "groups": groups}, transitions
            del groups[group_id]
            routes = _joined(group["pending"])
        seq = int(frontier["seq"])
        branches: list[dict[str, Any]] = []
        for route in routes:
            seq = _schedule(tasks, groups, seq, route, context)
            if route["items"] is None:
                branches.append(tasks[-1])
        if len(branches) > 1:
            # States started together are one step: what follows them waits for all of them.
            seq += 1
            groups[f"g{seq}"] = {"kind": BRANCHES, "left": len(branches), "pending": []}
            for slot, branch in enumerate(branches):
                branch["group"], branch["slot"] = f"g{seq}", slot
        return {**moved, "tasks": tasks, "groups": groups, "seq": seq}, transitions

    def _route(self, config: WorkflowConfig, nxt: NextState | None, parsed: Any) -> tuple[list[str], list[Any] | None]:
        """The next states and, for an ``iter_key`` fan-out, the items to map over."""
        if nxt is None:
            return [], None
        if nxt.state_id is not None and nxt.iter_key is not None:
            items = parsed.get(nxt.iter_key) if isinstance(parsed, dict) else None
            if not isinstance(items, list):
                raise_route(f"iter_key {nxt.iter_key!r}: the output has no list under that key")
            return [nxt.state_id], list(items)[: config.max_iteration_key_output_limit]  # type: ignore[arg-type]
        if nxt.state_id is not None:
            return [nxt.state_id], None
        if nxt.state_ids:
            return list(dict.fromkeys(nxt.state_ids)), None
        try:
            if nxt.condition is not None:
                return [nxt.condition.then if evaluate(nxt.condition.expression, parsed) else nxt.condition.otherwise], None
            assert nxt.switch is not None
            for case in nxt.switch.cases:
                if evaluate(case.condition, parsed):
                    return [case.state_id], None
            return [nxt.switch.default], None
        except ExpressionError as exc:
            raise_route(str(exc))
            raise  # unreachable


def _store(nxt: NextState | None, context: dict[str, Any], parsed: Any) -> dict[str, Any]:
    """The context store after a state's output ``parsed``, by its ``next`` flags: cleared
    (``clear_context_store``: true drops this output too, ``keep_current`` keeps it), keys reset
    (``reset_keys_in_context_store``), then, with ``store_in_context``, the output stored under
    ``output_key`` or, an object, key by key; ``append_to_context`` appends to a list instead."""
    if nxt is None:
        return context
    if nxt.clear_context_store:
        context = {}
    for key in nxt.reset_keys_in_context_store:
        context.pop(key, None)
    if not nxt.store_in_context or nxt.clear_context_store is True:
        return context
    stored = {nxt.output_key: parsed} if nxt.output_key else (parsed if isinstance(parsed, dict) else {})
    for key, value in stored.items():
        if nxt.append_to_context:
            earlier = context.get(key)
            context[key] = [*(earlier if isinstance(earlier, list) else [] if earlier is None else [earlier]), value]
        else:
            context[key] = value
    return context


def _joined(routes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The routes of a ``state_ids`` group's branches, one per next state: a state that several
    branches lead to runs once, fed the list of their outputs (in branch order)."""
    merged: dict[str, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for route in sorted(routes, key=lambda r: int(r.get("slot", 0))):  # branch order, not finish order
        if route["items"] is not None:
            out.append(route)
            continue
        seen = merged.get(route["target"])
        if seen is None:
            merged[route["target"]] = {**route, "feeds": [route["feed"]], "froms": [route["from"]]}
            out.append(merged[route["target"]])
        else:
            seen["feeds"].append(route["feed"])
            seen["froms"].append(route["from"])
    for route in out:
        if len(route.get("feeds", ())) > 1:
            route["feed"] = json.dumps([_parsed(f) for f in route["feeds"]])[:MAX_CONTEXT_CHARS]
    return out


def _schedule(
    tasks: list[dict[str, Any]], groups: dict[str, Any], seq: int, route: dict[str, Any], store: dict[str, Any]
) -> int:
    """Add the tasks of one route to ``tasks`` (an ``iter_key`` map: one per item, in a group
    that joins them), shown the context ``store`` as it is now; the new sequence number."""
    preceding = route.get("froms") or [route["from"]]
    items = route["items"]
    keys = route.get("keys")
    context = store if keys is None else {k: v for k, v in store.items() if k in keys}
    if items is None:
        seq += 1
        tasks.append(
            {
                "key": str(seq),
                "state": route["target"],
                "input": route["feed"],
                "iteration": 0,
                "preceding": preceding,
                "group": None,
                "context": context,
            }
        )
        return seq
    if not items:
        return seq
    seq += 1
    gid = f"g{seq}"
    groups[gid] = {"kind": MAP, "left": len(items), "outputs": [None] * len(items)}
    for i, item in enumerate(items):
        seq += 1
        tasks.append(
            {
                "key": str(seq),
                "state": route["target"],
                "input": item if isinstance(item, str) else json.dumps(item),
                "iteration": i + 1,
                "slot": i,
                "preceding": preceding,
                "group": gid,
                "context": context,
            }
        )
    return seq


def resolve(text: str, context: dict[str, Any]) -> str:
    """``text`` with each ``{{key}}`` replaced by that key of the context store (a string as it
    is, anything else as JSON); RepolensError naming a key the store does not have."""

    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in context:
            raise RepolensError(f"the task names {{{{{key}}}}}, which is not in the context store")
        found = context[key]
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)

    return _PLACEHOLDER.sub(value, text)


def pick(result: str, pointer: str) -> str:
    """The part of a tool's JSON result that ``tool_result_json_pointer`` (RFC 6901, e.g.
    ``/items/0/title``) names: a string as it is, anything else as JSON. RepolensError when the
    result is not JSON or has nothing there (the state fails, and its retry policy applies)."""
    try:
        value = json.loads(result)
    except ValueError:
        raise RepolensError(f"tool_result_json_pointer {pointer!r}: the tool's result is not JSON") from None
    for raw in pointer.split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise RepolensError(f"tool_result_json_pointer {pointer!r}: the tool's result has nothing at {part!r}")
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def raise_route(message: str) -> None:
    raise RepolensError(f"routing failed: {message}")


def resume_frontier(ex: ExecutionRecord, *, user_input: str | None) -> dict[str, Any]:
    """The frontier of an Interrupted execution with its paused task approved (and given the
    user's input, if any)."""
    if ex.status != INTERRUPTED:
        raise InvalidInput(f"the execution is {ex.status}, not Interrupted: only a paused execution resumes")
    frontier = dict(ex.frontier)
    tasks = [dict(t) for t in frontier["tasks"]]
    tasks[0]["approved"] = True
    if user_input:
        tasks[0]["user_input"] = user_input
    frontier["tasks"] = tasks
    return frontier


def edit_output(frontier: dict[str, Any], state_id: str, output: str) -> dict[str, Any]:
    """The frontier with the paused task fed ``output`` instead of ``state_id``'s output."""
    tasks = [dict(t) for t in frontier["tasks"]]
    changed = False
    for t in tasks:
        if state_id in t.get("preceding", []):
            t["input"] = output
            changed = True
    if not changed:
        raise InvalidInput(f"no waiting state takes the output of {state_id!r}")
    return {**frontier, "tasks": tasks}
