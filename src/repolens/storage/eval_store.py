"""Agent evaluations in both SQL backends: labels, evaluators, cases with per-evaluator rubrics,
and results (one per case, evaluator and agent version, rewritten by each run).

A run marks its results ``pending`` under one job in the transaction that queues the job; the job
writes each result once with a conditional update (only while the result is still its own), so a
re-run after a crash finishes what was left and a newer run is never overwritten by an older one.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from repolens.errors import Conflict, InvalidInput

if TYPE_CHECKING:
    from repolens.storage.relational import Conn

JOB_KIND = "eval"
RESULT_PENDING, RESULT_RUNNING, RESULT_DONE, RESULT_FAILED = "pending", "running", "done", "failed"


@dataclass(frozen=True, slots=True)
class LabelRecord:
    id: int
    public_id: str
    workspace_id: int
    name: str
    color: str
    created_at: float


@dataclass(frozen=True, slots=True)
class EvaluatorRecord:
    id: int
    public_id: str
    workspace_id: int
    name: str
    description: str
    judge_model: str | None
    template: str
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class CaseRecord:
    id: int
    public_id: str
    workspace_id: int
    agent_id: str
    input: str
    expected_output: str
    rubric: str
    note: str
    meta: dict[str, Any]
    label_ids: tuple[str, ...]
    attachment_ids: tuple[str, ...]
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ResultRecord:
    id: int
    public_id: str
    case_id: int
    evaluator_id: int
    version_id: str
    state: str
    job_id: str
    score: float | None
    reason: str
    output: str
    tool_calls: list[dict[str, Any]]
    usage: dict[str, Any]
    elapsed_s: float
    created_at: float
    finished_at: float | None


_L = "id, public_id, workspace_id, name, color, created_at"
_EV = "id, public_id, workspace_id, name, description, judge_model, template, created_at, updated_at"
_C = (
    "id, public_id, workspace_id, agent_id, input, expected_output, rubric, note, meta, label_ids, attachment_ids, "
    "created_at, updated_at"
)
_R = (
    "id, public_id, case_id, evaluator_id, version_id, state, job_id, score, reason, output, tool_calls, usage, "
    "elapsed_s, created_at, finished_at"
)
_CASE_FIELDS = frozenset({"input", "expected_output", "rubric", "note", "meta", "label_ids", "attachment_ids"})
_EVALUATOR_FIELDS = frozenset({"name", "description", "judge_model", "template"})
_RESULT_FIELDS = frozenset({"state", "score", "reason", "output", "tool_calls", "usage", "elapsed_s"})
_JSON = frozenset({"meta", "label_ids", "attachment_ids", "tool_calls", "usage"})


def _case(row: Sequence[Any]) -> CaseRecord:
    r = list(row)
    r[8] = json.loads(r[8] or "{}")
    r[9] = tuple(json.loads(r[9] or "[]"))
    r[10] = tuple(json.loads(r[10] or "[]"))
    return CaseRecord(*r)


def _result(row: Sequence[Any]) -> ResultRecord:
    r = list(row)
    r[10] = json.loads(r[10] or "[]")
    r[11] = json.loads(r[11] or "{}")
    return ResultRecord(*r)


def _encode(fields: dict[str, object]) -> dict[str, object]:
    return {k: (json.dumps(list(v) if isinstance(v, tuple) else v) if k in _JSON else v) for k, v in fields.items()}


class EvalStore(Protocol):
    """Evaluation labels, evaluators, cases, rubrics and results."""

    def create_label(self, *, workspace_id: int, name: str, color: str) -> LabelRecord: ...
    def labels(self, workspace_id: int) -> list[LabelRecord]: ...
    def get_label(self, public_id: str) -> LabelRecord | None: ...
    def update_label(self, label_id: int, *, name: str | None, color: str | None) -> None: ...
    def delete_label(self, label_id: int) -> None: ...
    def create_evaluator(
        self, *, workspace_id: int, name: str, description: str, judge_model: str | None, template: str
    ) -> EvaluatorRecord: ...
    def evaluators(self, workspace_id: int) -> list[EvaluatorRecord]: ...
    def get_evaluator(self, public_id: str) -> EvaluatorRecord | None: ...
    def update_evaluator(self, evaluator_id: int, **fields: object) -> None: ...
    def create_case(self, *, workspace_id: int, agent_id: str, **fields: object) -> CaseRecord: ...
    def cases(self, agent_id: str) -> list[CaseRecord]: ...
    def get_case(self, public_id: str) -> CaseRecord | None: ...
    def update_case(self, case_id: int, **fields: object) -> None: ...
    def delete_case(self, case_id: int) -> None: ...
    def case_evaluators(self, case_ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]: ...
    def set_case_evaluators(self, case_id: int, pairs: Sequence[tuple[int, str]], *, replace: bool) -> None: ...
    def evaluator_public_ids(self, ids: Sequence[int]) -> dict[int, str]: ...
    def cases_by_row(self, ids: Sequence[int]) -> dict[int, CaseRecord]: ...
    def evaluators_by_row(self, ids: Sequence[int]) -> dict[int, EvaluatorRecord]: ...
    def start_eval_run(self, pairs: Sequence[tuple[int, int]], version_id: str, principal: dict[str, Any]) -> str: ...
    def eval_run_principal(self, job_public_id: str) -> dict[str, Any] | None: ...
    def eval_results(self, case_ids: Sequence[int], evaluator_id: int, version_id: str) -> list[ResultRecord]: ...
    def results_of_job(self, job_public_id: str) -> list[ResultRecord]: ...
    def claim_result(self, result_id: int, job_public_id: str) -> bool: ...
    def finish_result(self, result_id: int, job_public_id: str, **fields: object) -> bool: ...


class EvalStoreMixin:
    """``EvalStore`` over a backend's connection and write transaction."""

    _integrity_errors: tuple[type[Exception], ...] = ()

    @property
    def _conn(self) -> Conn:  # provided by the backend
        raise NotImplementedError

    def _write(self, *, content: bool = True) -> AbstractContextManager[Conn]:  # provided by the backend
        raise NotImplementedError

    # -- labels ---------------------------------------------------------------------------------

    def create_label(self, *, workspace_id: int, name: str, color: str) -> LabelRecord:
        """A new label (Conflict if the workspace has one of that name)."""
        public_id = str(uuid.uuid4())
        try:
            with self._write(content=False) as conn:
                conn.execute(
                    "INSERT INTO eval_labels(public_id, workspace_id, name, color, created_at) VALUES (?, ?, ?, ?, ?)",
                    (public_id, workspace_id, name, color, time.time()),
                )
        except self._integrity_errors:
            raise Conflict(f"a label named {name!r} exists in this workspace", []) from None
        made = self.get_label(public_id)
        assert made is not None
        return made

    def labels(self, workspace_id: int) -> list[LabelRecord]:
        """A workspace's labels by name."""
        rows = self._conn.execute(f"SELECT {_L} FROM eval_labels WHERE workspace_id = ? ORDER BY name", (workspace_id,))
        return [LabelRecord(*r) for r in rows]

    def get_label(self, public_id: str) -> LabelRecord | None:
        row = self._conn.execute(f"SELECT {_L} FROM eval_labels WHERE public_id = ?", (public_id,)).fetchone()
        return LabelRecord(*row) if row else None

    def update_label(self, label_id: int, *, name: str | None, color: str | None) -> None:
        try:
            with self._write(content=False) as conn:
                if name is not None:
                    conn.execute("UPDATE eval_labels SET name = ? WHERE id = ?", (name, label_id))
                if color is not None:
                    conn.execute("UPDATE eval_labels SET color = ? WHERE id = ?", (color, label_id))
        except self._integrity_errors:
            raise Conflict(f"a label named {name!r} exists in this workspace", []) from None

    def delete_label(self, label_id: int) -> None:
        with self._write(content=False) as conn:
            conn.execute("DELETE FROM eval_labels WHERE id = ?", (label_id,))

    # -- evaluators -----------------------------------------------------------------------------

    def create_evaluator(
        self, *, workspace_id: int, name: str, description: str, judge_model: str | None, template: str
    ) -> EvaluatorRecord:
        public_id = str(uuid.uuid4())
        now = time.time()
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO eval_evaluators(public_id, workspace_id, name, description, judge_model, template, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (public_id, workspace_id, name, description, judge_model, template, now, now),
            )
        made = self.get_evaluator(public_id)
        assert made is not None
        return made

    def evaluators(self, workspace_id: int) -> list[EvaluatorRecord]:
        rows = self._conn.execute(f"SELECT {_EV} FROM eval_evaluators WHERE workspace_id = ? ORDER BY id", (workspace_id,))
        return [EvaluatorRecord(*r) for r in rows]

    def get_evaluator(self, public_id: str) -> EvaluatorRecord | None:
        row = self._conn.execute(f"SELECT {_EV} FROM eval_evaluators WHERE public_id = ?", (public_id,)).fetchone()
        return EvaluatorRecord(*row) if row else None

    def update_evaluator(self, evaluator_id: int, **fields: object) -> None:
        if set(fields) - _EVALUATOR_FIELDS:
            raise InvalidInput(f"not evaluator fields: {sorted(set(fields) - _EVALUATOR_FIELDS)}")
        if not fields:
            return
        with self._write(content=False) as conn:
            conn.execute(
                f"UPDATE eval_evaluators SET {', '.join(f'{k} = ?' for k in fields)}, updated_at = ? WHERE id = ?",
                (*fields.values(), time.time(), evaluator_id),
            )

    def evaluator_public_ids(self, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._conn.execute(f"SELECT id, public_id FROM eval_evaluators WHERE id IN ({marks})", tuple(ids))
        return {int(r[0]): str(r[1]) for r in rows}

    def evaluators_by_row(self, ids: Sequence[int]) -> dict[int, EvaluatorRecord]:
        """Evaluators by row id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._conn.execute(f"SELECT {_EV} FROM eval_evaluators WHERE id IN ({marks})", tuple(ids))
        return {int(r[0]): EvaluatorRecord(*r) for r in rows}

    def cases_by_row(self, ids: Sequence[int]) -> dict[int, CaseRecord]:
        """Cases by row id."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._conn.execute(f"SELECT {_C} FROM eval_cases WHERE id IN ({marks})", tuple(ids))
        return {int(r[0]): _case(r) for r in rows}

    # -- cases ----------------------------------------------------------------------------------

    def create_case(self, *, workspace_id: int, agent_id: str, **fields: object) -> CaseRecord:
        if set(fields) - _CASE_FIELDS:
            raise InvalidInput(f"not case fields: {sorted(set(fields) - _CASE_FIELDS)}")
        public_id = str(uuid.uuid4())
        now = time.time()
        values = _encode(fields)
        names = ["public_id", "workspace_id", "agent_id", *values, "created_at", "updated_at"]
        with self._write(content=False) as conn:
            conn.execute(
                f"INSERT INTO eval_cases({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                (public_id, workspace_id, agent_id, *values.values(), now, now),
            )
        made = self.get_case(public_id)
        assert made is not None
        return made

    def cases(self, agent_id: str) -> list[CaseRecord]:
        rows = self._conn.execute(f"SELECT {_C} FROM eval_cases WHERE agent_id = ? ORDER BY id", (agent_id,))
        return [_case(r) for r in rows]

    def get_case(self, public_id: str) -> CaseRecord | None:
        row = self._conn.execute(f"SELECT {_C} FROM eval_cases WHERE public_id = ?", (public_id,)).fetchone()
        return _case(row) if row else None

    def update_case(self, case_id: int, **fields: object) -> None:
        if set(fields) - _CASE_FIELDS:
            raise InvalidInput(f"not case fields: {sorted(set(fields) - _CASE_FIELDS)}")
        if not fields:
            return
        values = _encode(fields)
        with self._write(content=False) as conn:
            conn.execute(
                f"UPDATE eval_cases SET {', '.join(f'{k} = ?' for k in values)}, updated_at = ? WHERE id = ?",
                (*values.values(), time.time(), case_id),
            )

    def delete_case(self, case_id: int) -> None:
        with self._write(content=False) as conn:
            conn.execute("DELETE FROM eval_cases WHERE id = ?", (case_id,))

    def case_evaluators(self, case_ids: Sequence[int]) -> dict[int, list[tuple[int, str]]]:
        """Each case's assigned (evaluator row id, rubric), in assignment order."""
        out: dict[int, list[tuple[int, str]]] = {c: [] for c in case_ids}
        if not case_ids:
            return out
        marks = ",".join("?" * len(case_ids))
        rows = self._conn.execute(
            f"SELECT case_id, evaluator_id, rubric FROM eval_case_evaluators WHERE case_id IN ({marks}) "
            "ORDER BY case_id, evaluator_id",
            tuple(case_ids),
        )
        for case_id, evaluator_id, rubric in rows:
            out[int(case_id)].append((int(evaluator_id), str(rubric)))
        return out

    def set_case_evaluators(self, case_id: int, pairs: Sequence[tuple[int, str]], *, replace: bool) -> None:
        """Assign evaluators (with rubrics) to a case: ``replace`` drops the ones not listed."""
        with self._write(content=False) as conn:
            if replace:
                conn.execute("DELETE FROM eval_case_evaluators WHERE case_id = ?", (case_id,))
            for evaluator_id, rubric in pairs:
                conn.execute(
                    "INSERT INTO eval_case_evaluators(case_id, evaluator_id, rubric) VALUES (?, ?, ?) "
                    "ON CONFLICT (case_id, evaluator_id) DO UPDATE SET rubric = excluded.rubric",
                    (case_id, evaluator_id, rubric),
                )

    # -- runs and results ----------------------------------------------------------------------

    def start_eval_run(self, pairs: Sequence[tuple[int, int]], version_id: str, principal: dict[str, Any]) -> str:
        """Mark (case, evaluator) results of ``version_id`` pending under a new job run as
        ``principal`` (who started it: the snapshot ``eval_run_principal`` gives back); the job's id."""
        job_id = secrets.token_hex(12)
        now = time.time()
        with self._write(content=False) as conn:
            conn.execute(
                "INSERT INTO jobs(public_id, source_id, kind, created_at) VALUES (?, NULL, ?, ?)", (job_id, JOB_KIND, now)
            )
            conn.execute(
                "INSERT INTO eval_runs(job_id, principal, created_at) VALUES (?, ?, ?)",
                (job_id, json.dumps(principal), now),
            )
            for case_id, evaluator_id in pairs:
                conn.execute(
                    "INSERT INTO eval_results(public_id, case_id, evaluator_id, version_id, state, job_id, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (case_id, evaluator_id, version_id) DO UPDATE SET "
                    "state = excluded.state, job_id = excluded.job_id, score = NULL, reason = '', output = '', "
                    "tool_calls = '[]', usage = '{}', elapsed_s = 0, created_at = excluded.created_at, finished_at = NULL",
                    (str(uuid.uuid4()), case_id, evaluator_id, version_id, RESULT_PENDING, job_id, now),
                )
        return job_id

    def eval_results(self, case_ids: Sequence[int], evaluator_id: int, version_id: str) -> list[ResultRecord]:
        if not case_ids:
            return []
        marks = ",".join("?" * len(case_ids))
        rows = self._conn.execute(
            f"SELECT {_R} FROM eval_results WHERE evaluator_id = ? AND version_id = ? AND case_id IN ({marks})",
            (evaluator_id, version_id, *case_ids),
        )
        return [_result(r) for r in rows]

    def eval_run_principal(self, job_public_id: str) -> dict[str, Any] | None:
        """Who started a run (None: a run started before runs recorded it)."""
        row = self._conn.execute("SELECT principal FROM eval_runs WHERE job_id = ?", (job_public_id,)).fetchone()
        return dict(json.loads(row[0])) if row else None

    def results_of_job(self, job_public_id: str) -> list[ResultRecord]:
        rows = self._conn.execute(f"SELECT {_R} FROM eval_results WHERE job_id = ? ORDER BY id", (job_public_id,))
        return [_result(r) for r in rows]

    def claim_result(self, result_id: int, job_public_id: str) -> bool:
        """Mark a result of this job running (a pending one, or one a dead run of it left running)."""
        with self._write(content=False) as conn:
            cur = conn.execute(
                "UPDATE eval_results SET state = ? WHERE id = ? AND job_id = ? AND state IN (?, ?)",
                (RESULT_RUNNING, result_id, job_public_id, RESULT_PENDING, RESULT_RUNNING),
            )
            return bool(cur.rowcount)

    def finish_result(self, result_id: int, job_public_id: str, **fields: object) -> bool:
        """Write a result's outcome while this job still owns it."""
        if set(fields) - _RESULT_FIELDS:
            raise InvalidInput(f"not result fields: {sorted(set(fields) - _RESULT_FIELDS)}")
        values = _encode(fields)
        with self._write(content=False) as conn:
            cur = conn.execute(
                f"UPDATE eval_results SET {', '.join(f'{k} = ?' for k in values)}, finished_at = ? "
                "WHERE id = ? AND job_id = ? AND state = ?",
                (*values.values(), time.time(), result_id, job_public_id, RESULT_RUNNING),
            )
            return bool(cur.rowcount)
