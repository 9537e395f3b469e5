"""Workflows and their executions in both SQL backends (the shared SQL, as in ``registry.py``).

The one write that matters for durability is ``commit_state``: a finished state's row, its
thoughts, the transitions it made and the execution's new frontier go in one transaction, and
the execution's own fields change only while it is not Aborted (CodeMie's ``finish_state``
guard), so an abort is never overwritten by a state that was already in flight.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from repolens.errors import InvalidInput

if TYPE_CHECKING:
    from repolens.storage.relational import Conn

NOT_STARTED = "Not Started"
IN_PROGRESS = "In Progress"
INTERRUPTED = "Interrupted"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
ABORTED = "Aborted"
STATUSES = (NOT_STARTED, IN_PROGRESS, INTERRUPTED, SUCCEEDED, FAILED, ABORTED)
FINISHED = (SUCCEEDED, FAILED, ABORTED)
# Statuses after which an execution runs no state until a resume: its propagated headers are
# dropped in the same write (a resume brings its own, if it asks to).
_HEADERS_END = (SUCCEEDED, FAILED, ABORTED, INTERRUPTED)
JOB_KIND = "workflow"


@dataclass(frozen=True, slots=True)
class WorkflowRecord:
    id: int
    public_id: str
    name: str
    project: str
    description: str
    yaml_config: str
    mode: str
    shared: bool
    icon_url: str | None
    categories: tuple[str, ...]
    created_by: dict[str, Any]
    created_at: float
    updated_at: float | None


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    id: int
    public_id: str
    workflow_id: int
    status: str
    prompt: str
    output: str | None
    error: str
    project: str
    created_by: dict[str, Any]
    frontier: dict[str, Any]
    job_id: str
    input_tokens: int
    output_tokens: int
    created_at: float
    updated_at: float | None


@dataclass(frozen=True, slots=True)
class StateRecord:
    id: int
    public_id: str
    execution_id: int
    task_key: str
    state_id: str
    task: str
    status: str
    iteration: int
    preceding: tuple[str, ...]
    output: str | None
    error: str
    runs: int
    started_at: float | None
    completed_at: float | None


@dataclass(frozen=True, slots=True)
class ThoughtRecord:
    id: int
    public_id: str
    state_row_id: int
    parent_id: str | None
    author_name: str
    author_type: str
    input_text: str
    content: str
    created_at: float


@dataclass(frozen=True, slots=True)
class TransitionRecord:
    id: int
    public_id: str
    execution_id: int
    from_state_id: str | None
    to_state_id: str
    context: dict[str, Any]
    created_at: float


@dataclass(slots=True)
class NewThought:
    """A thought to store: ``children`` nest (sub-assistants, tool calls inside a turn)."""

    author_name: str
    author_type: str
    input_text: str = ""
    content: str = ""
    children: list[NewThought] = field(default_factory=list)


_WF = (
    "id, public_id, name, project, description, yaml_config, mode, shared, icon_url, categories, created_by, "
    "created_at, updated_at"
)
_EX = (
    "id, public_id, workflow_id, status, prompt, output, error, project, created_by, frontier, job_id, "
    "input_tokens, output_tokens, created_at, updated_at"
)
_ST = (
    "id, public_id, execution_id, task_key, state_id, task, status, iteration, preceding, output, error, runs, "
    "started_at, completed_at"
)
_TH = "id, public_id, state_row_id, parent_id, author_name, author_type, input_text, content, created_at"
_TR = "id, public_id, execution_id, from_state_id, to_state_id, context, created_at"
_WF_FIELDS = frozenset({"name", "project", "description", "yaml_config", "mode", "shared", "icon_url", "categories"})
_EX_FIELDS = frozenset({"status", "output", "error", "frontier", "job_id", "input_tokens", "output_tokens"})


def _wf(row: Sequence[Any]) -> WorkflowRecord:
    v = list(row)
    v[7] = bool(v[7])
    v[9] = tuple(json.loads(v[9] or "[]"))
    v[10] = json.loads(v[10] or "{}")
    return WorkflowRecord(*v)


def _ex(row: Sequence[Any]) -> ExecutionRecord:
    v = list(row)
    v[8] = json.loads(v[8] or "{}")
    v[9] = json.loads(v[9] or "{}")
    return ExecutionRecord(*v)


def _st(row: Sequence[Any]) -> StateRecord:
    v = list(row)
    v[8] = tuple(json.loads(v[8] or "[]"))
    return StateRecord(*v)


def _tr(row: Sequence[Any]) -> TransitionRecord:
    v = list(row)
    v[5] = json.loads(v[5] or "{}")
    return TransitionRecord(*v)


def _workflow_filter(projects: Sequence[str], name: str | None) -> tuple[str, list[object]]:
    """The WHERE clause (and its parameters) of workflows of ``projects`` named like ``name``."""
    where, params = ["1 = 1"], list[object]()
    if projects:
        where.append(f"project IN ({', '.join('?' * len(projects))})")
        params += list(projects)
    if name:
        where.append("lower(name) LIKE ?")
        params.append(f"%{name.lower()}%")
    return " AND ".join(where), params


def _encode(name: str, value: object) -> object:
    if name in ("categories", "frontier", "created_by"):
        return json.dumps(list(value) if isinstance(value, tuple) else value)
    if name == "shared":
        return 1 if value else 0
    return value


class WorkflowStore(Protocol):
    """Workflow definitions and executions (both SQL backends)."""

    def create_workflow(self, **fields: object) -> WorkflowRecord: ...
    def get_workflow(self, public_id: str) -> WorkflowRecord | None: ...
    def workflow_of(self, execution: ExecutionRecord) -> WorkflowRecord | None: ...
    def list_workflows(
        self, *, projects: Sequence[str], name: str | None, offset: int, limit: int
    ) -> list[WorkflowRecord]: ...
    def count_workflows(self, *, projects: Sequence[str], name: str | None) -> int: ...
    def update_workflow(self, workflow_id: int, **fields: object) -> None: ...
    def delete_workflow(self, workflow_id: int) -> None: ...
    def create_execution(
        self,
        *,
        workflow_id: int,
        prompt: str,
        project: str,
        created_by: dict[str, Any],
        frontier: dict[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> ExecutionRecord: ...
    def execution_headers(self, execution_id: int) -> dict[str, str]: ...
    def get_execution(self, public_id: str) -> ExecutionRecord | None: ...
    def execution_for_job(self, job_public_id: str) -> ExecutionRecord | None: ...
    def list_executions(self, workflow_id: int, *, offset: int, limit: int) -> list[ExecutionRecord]: ...
    def count_executions(self, workflow_id: int) -> int: ...
    def delete_execution(self, execution_id: int) -> None: ...
    def update_execution(self, execution_id: int, **fields: object) -> bool: ...
    def requeue_execution(
        self, execution_id: int, *, frontier: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> str: ...
    def abort_execution(self, execution_id: int) -> bool: ...
    def start_state(
        self,
        execution_id: int,
        *,
        task_key: str,
        state_id: str,
        task: str,
        iteration: int,
        preceding: Sequence[str],
        status: str,
    ) -> StateRecord: ...
    def commit_state(
        self,
        state_row_id: int,
        *,
        status: str,
        output: str | None,
        error: str,
        thoughts: Sequence[NewThought],
        transitions: Sequence[tuple[str | None, str, dict[str, Any]]],
        execution: dict[str, object],
    ) -> bool: ...
    def states(self, execution_id: int) -> list[StateRecord]: ...
    def get_state(self, execution_id: int, state_public_id: str) -> StateRecord | None: ...
    def thoughts(self, state_row_ids: Sequence[int]) -> list[ThoughtRecord]: ...
    def thoughts_by_id(self, public_ids: Sequence[str]) -> list[ThoughtRecord]: ...
    def transitions(self, execution_id: int) -> list[TransitionRecord]: ...


class WorkflowStoreMixin:
    """``WorkflowStore`` over a backend's connection and write transaction."""

    @property
    def _conn(self) -> Conn:  # provided by the backend
        raise NotImplementedError

    def _write(self, *, content: bool = True) -> AbstractContextManager[Conn]:  # provided by the backend
        raise NotImplementedError

    # -- definitions ---------------------------------------------------------------------

    def create_workflow(self, **fields: object) -> WorkflowRecord:
        """Store a new workflow definition."""
        unknown = set(fields) - _WF_FIELDS - {"created_by"}
        if unknown:
            raise InvalidInput(f"unknown workflow fields {sorted(unknown)!r}")
        public_id = secrets.token_hex(12)
        names = ["public_id", "created_at", *fields]
        values = [public_id, time.time(), *(_encode(k, v) for k, v in fields.items())]
        with self._write(content=False) as conn:
            conn.execute(f"INSERT INTO workflows({', '.join(names)}) VALUES ({', '.join('?' * len(names))})", tuple(values))
        made = self.get_workflow(public_id)
        assert made is not None
        return made

    def get_workflow(self, public_id: str) -> WorkflowRecord | None:
        """A workflow by public id."""
        row = self._conn.execute(f"SELECT {_WF} FROM workflows WHERE public_id = ?", (public_id,)).fetchone()
        return _wf(row) if row else None

    def workflow_of(self, execution: ExecutionRecord) -> WorkflowRecord | None:
        """The workflow an execution belongs to."""
        row = self._conn.execute(f"SELECT {_WF} FROM workflows WHERE id = ?", (execution.workflow_id,)).fetchone()
        return _wf(row) if row else None

    def list_workflows(self, *, projects: Sequence[str], name: str | None, offset: int, limit: int) -> list[WorkflowRecord]:
        """Workflows, newest first, optionally of some projects and with a name containing ``name``."""
        where, params = _workflow_filter(projects, name)
        rows = self._conn.execute(
            f"SELECT {_WF} FROM workflows WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?", (*params, limit, offset)
        ).fetchall()
        return [_wf(r) for r in rows]

    def count_workflows(self, *, projects: Sequence[str], name: str | None) -> int:
        """How many workflows ``list_workflows`` pages through."""
        where, params = _workflow_filter(projects, name)
        return int(self._conn.execute(f"SELECT count(*) FROM workflows WHERE {where}", tuple(params)).fetchone()[0])

    def update_workflow(self, workflow_id: int, **fields: object) -> None:
        """Change a workflow's fields."""
        unknown = set(fields) - _WF_FIELDS
        if unknown:
            raise InvalidInput(f"cannot update workflow fields {sorted(unknown)!r}")
        values = {k: _encode(k, v) for k, v in fields.items()}
        values["updated_at"] = time.time()
        with self._write(content=False) as conn:
            conn.execute(
                f"UPDATE workflows SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?", (*values.values(), workflow_id)
            )

    def delete_workflow(self, workflow_id: int) -> None:
        """Delete a workflow and its executions."""
        with self._write(content=False) as conn:
            conn.execute("DELETE FROM workflows WHERE id = ?", (workflow_id,))

    # -- executions ----------------------------------------------------------------------

    def _enqueue(self, conn: Conn) -> str:
        job_id = secrets.token_hex(12)
        conn.execute(
            "INSERT INTO jobs(public_id, source_id, kind, created_at) VALUES (?, NULL, ?, ?)",
            (job_id, JOB_KIND, time.time()),
        )
        return job_id

    def create_execution(
        self,
        *,
        workflow_id: int,
        prompt: str,
        project: str,
        created_by: dict[str, Any],
        frontier: dict[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> ExecutionRecord:
        """A new execution and the job that runs it, in one transaction (never one without the other);
        ``headers`` are forwarded to its MCP servers while it runs (see ``execution_headers``)."""
        public_id = secrets.token_hex(12)
        with self._write(content=False) as conn:
            job_id = self._enqueue(conn)
            conn.execute(
                "INSERT INTO workflow_executions(public_id, workflow_id, status, prompt, project, created_by, frontier, "
                "job_id, created_at, forwarded_headers) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    public_id,
                    workflow_id,
                    NOT_STARTED,
                    prompt,
                    project,
                    json.dumps(created_by),
                    json.dumps(frontier),
                    job_id,
                    time.time(),
                    json.dumps(dict(headers)) if headers else None,
                ),
            )
        made = self.get_execution(public_id)
        assert made is not None
        return made

    def get_execution(self, public_id: str) -> ExecutionRecord | None:
        """An execution by public id."""
        row = self._conn.execute(f"SELECT {_EX} FROM workflow_executions WHERE public_id = ?", (public_id,)).fetchone()
        return _ex(row) if row else None

    def execution_headers(self, execution_id: int) -> dict[str, str]:
        """The headers an execution forwards to MCP servers: empty unless it was started (or
        resumed) with ``propagate_headers`` and has not ended or paused since. Kept out of
        ``ExecutionRecord`` so that no listing or log ever carries them."""
        row = self._conn.execute(
            "SELECT forwarded_headers FROM workflow_executions WHERE id = ?", (execution_id,)
        ).fetchone()
        return dict(json.loads(row[0])) if row and row[0] else {}

    def execution_for_job(self, job_public_id: str) -> ExecutionRecord | None:
        """The execution a job runs."""
        row = self._conn.execute(f"SELECT {_EX} FROM workflow_executions WHERE job_id = ?", (job_public_id,)).fetchone()
        return _ex(row) if row else None

    def list_executions(self, workflow_id: int, *, offset: int, limit: int) -> list[ExecutionRecord]:
        """A workflow's executions, newest first."""
        rows = self._conn.execute(
            f"SELECT {_EX} FROM workflow_executions WHERE workflow_id = ? ORDER BY id DESC LIMIT ? OFFSET ?",
            (workflow_id, limit, offset),
        ).fetchall()
        return [_ex(r) for r in rows]

    def count_executions(self, workflow_id: int) -> int:
        """How many executions a workflow has."""
        row = self._conn.execute("SELECT count(*) FROM workflow_executions WHERE workflow_id = ?", (workflow_id,)).fetchone()
        return int(row[0])

    def delete_execution(self, execution_id: int) -> None:
        """Delete an execution with its states, transitions and thoughts."""
        with self._write(content=False) as conn:
            conn.execute("DELETE FROM workflow_executions WHERE id = ?", (execution_id,))

    def update_execution(self, execution_id: int, **fields: object) -> bool:
        """Change an execution unless it was aborted; whether it changed."""
        unknown = set(fields) - _EX_FIELDS
        if unknown:
            raise InvalidInput(f"cannot update execution fields {sorted(unknown)!r}")
        with self._write(content=False) as conn:
            return self._update_execution(conn, execution_id, fields)

    def _update_execution(self, conn: Conn, execution_id: int, fields: dict[str, object]) -> bool:
        values = {k: _encode(k, v) for k, v in fields.items()}
        values["updated_at"] = time.time()
        if fields.get("status") in _HEADERS_END:
            values["forwarded_headers"] = None
        cur = conn.execute(
            f"UPDATE workflow_executions SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ? AND status <> ?",
            (*values.values(), execution_id, ABORTED),
        )
        return bool(cur.rowcount)

    def requeue_execution(
        self, execution_id: int, *, frontier: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> str:
        """Queue a new job for an interrupted execution (resume), forwarding ``headers`` while it
        runs; the new job's id."""
        with self._write(content=False) as conn:
            job_id = self._enqueue(conn)
            if not self._update_execution(
                conn, execution_id, {"job_id": job_id, "frontier": frontier, "status": IN_PROGRESS}
            ):
                raise InvalidInput("the execution was aborted")
            conn.execute(
                "UPDATE workflow_executions SET forwarded_headers = ? WHERE id = ?",
                (json.dumps(dict(headers)) if headers else None, execution_id),
            )
        return job_id

    def abort_execution(self, execution_id: int) -> bool:
        """Mark an unfinished execution and its running or paused states Aborted; whether it was."""
        with self._write(content=False) as conn:
            cur = conn.execute(
                "UPDATE workflow_executions SET status = ?, updated_at = ?, forwarded_headers = NULL "
                "WHERE id = ? AND status NOT IN (?, ?, ?)",
                (ABORTED, time.time(), execution_id, *FINISHED),
            )
            if not cur.rowcount:
                return False
            conn.execute(
                "UPDATE workflow_states SET status = ?, completed_at = ? WHERE execution_id = ? AND status IN (?, ?)",
                (ABORTED, time.time(), execution_id, IN_PROGRESS, INTERRUPTED),
            )
        return True

    # -- states --------------------------------------------------------------------------

    def start_state(
        self,
        execution_id: int,
        *,
        task_key: str,
        state_id: str,
        task: str,
        iteration: int,
        preceding: Sequence[str],
        status: str,
    ) -> StateRecord:
        """The state row of a frontier task, made once: a task resumed after a crash reuses its row
        (and counts one more run)."""
        now = time.time()
        with self._write(content=False) as conn:
            row = conn.execute(
                "SELECT id FROM workflow_states WHERE execution_id = ? AND task_key = ?", (execution_id, task_key)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO workflow_states(public_id, execution_id, task_key, state_id, task, status, iteration, "
                    "preceding, runs, started_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        secrets.token_hex(12),
                        execution_id,
                        task_key,
                        state_id,
                        task,
                        status,
                        iteration,
                        json.dumps(list(preceding)),
                        1 if status == IN_PROGRESS else 0,
                        now,
                    ),
                )
            else:
                conn.execute(
                    "UPDATE workflow_states SET status = ?, runs = runs + ?, started_at = ? WHERE id = ?",
                    (status, 1 if status == IN_PROGRESS else 0, now, row[0]),
                )
            made = conn.execute(
                f"SELECT {_ST} FROM workflow_states WHERE execution_id = ? AND task_key = ?", (execution_id, task_key)
            ).fetchone()
        return _st(made)

    def commit_state(
        self,
        state_row_id: int,
        *,
        status: str,
        output: str | None,
        error: str,
        thoughts: Sequence[NewThought],
        transitions: Sequence[tuple[str | None, str, dict[str, Any]]],
        execution: dict[str, object],
    ) -> bool:
        """Record a finished state, its thoughts and transitions and the execution's new fields in one
        transaction; False (and nothing written) when the execution was aborted meanwhile."""
        now = time.time()
        with self._write(content=False) as conn:
            row = conn.execute("SELECT execution_id FROM workflow_states WHERE id = ?", (state_row_id,)).fetchone()
            if row is None:
                return False
            execution_id = int(row[0])
            if not self._update_execution(conn, execution_id, dict(execution)):
                return False
            conn.execute(
                "UPDATE workflow_states SET status = ?, output = ?, error = ?, completed_at = ? WHERE id = ?",
                (status, output, error, now, state_row_id),
            )
            conn.execute("DELETE FROM workflow_thoughts WHERE state_row_id = ?", (state_row_id,))  # a re-run's
            self._insert_thoughts(conn, state_row_id, None, thoughts, now)
            for source, target, context in transitions:
                conn.execute(
                    "INSERT INTO workflow_transitions(public_id, execution_id, from_state_id, to_state_id, context, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (secrets.token_hex(12), execution_id, source, target, json.dumps(context, default=str), now),
                )
        return True

    def _insert_thoughts(
        self, conn: Conn, state_row_id: int, parent: str | None, thoughts: Sequence[NewThought], now: float
    ) -> None:
        for thought in thoughts:
            public_id = secrets.token_hex(12)
            conn.execute(
                f"INSERT INTO workflow_thoughts({_TH.removeprefix('id, ')}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    public_id,
                    state_row_id,
                    parent,
                    thought.author_name,
                    thought.author_type,
                    thought.input_text,
                    thought.content,
                    now,
                ),
            )
            self._insert_thoughts(conn, state_row_id, public_id, thought.children, now)

    def states(self, execution_id: int) -> list[StateRecord]:
        """An execution's state rows in the order they started."""
        rows = self._conn.execute(f"SELECT {_ST} FROM workflow_states WHERE execution_id = ? ORDER BY id", (execution_id,))
        return [_st(r) for r in rows.fetchall()]

    def get_state(self, execution_id: int, state_public_id: str) -> StateRecord | None:
        """One state row by its public id or, failing that, the newest row of a YAML state id."""
        row = self._conn.execute(
            f"SELECT {_ST} FROM workflow_states WHERE execution_id = ? AND (public_id = ? OR state_id = ?) "
            "ORDER BY (public_id = ?) DESC, id DESC LIMIT 1",
            (execution_id, state_public_id, state_public_id, state_public_id),
        ).fetchone()
        return _st(row) if row else None

    def thoughts(self, state_row_ids: Sequence[int]) -> list[ThoughtRecord]:
        """The thoughts of some state rows."""
        if not state_row_ids:
            return []
        rows = self._conn.execute(
            f"SELECT {_TH} FROM workflow_thoughts WHERE state_row_id IN ({', '.join('?' * len(state_row_ids))}) ORDER BY id",
            tuple(state_row_ids),
        )
        return [ThoughtRecord(*r) for r in rows.fetchall()]

    def thoughts_by_id(self, public_ids: Sequence[str]) -> list[ThoughtRecord]:
        """Thoughts by public id."""
        if not public_ids:
            return []
        rows = self._conn.execute(
            f"SELECT {_TH} FROM workflow_thoughts WHERE public_id IN ({', '.join('?' * len(public_ids))}) ORDER BY id",
            tuple(public_ids),
        )
        return [ThoughtRecord(*r) for r in rows.fetchall()]

    def transitions(self, execution_id: int) -> list[TransitionRecord]:
        """An execution's transitions, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_TR} FROM workflow_transitions WHERE execution_id = ? ORDER BY id", (execution_id,)
        )
        return [_tr(r) for r in rows.fetchall()]
