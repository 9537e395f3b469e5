"""Codeer's evaluation routes (``/api/v1/external/eval/...``, what ``codeer eval ...`` calls; see
specs/clients.md §5.3 #33-#50) over ``repolens.evals``: labels, evaluators, cases and their
per-evaluator rubrics, runs and results, with the ``:batch`` read routes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from repolens import views
from repolens.evals import service
from repolens.storage.eval_store import CaseRecord, EvaluatorRecord, LabelRecord, ResultRecord
from repolens.surfaces.http.codeer.envelope import ok
from repolens.surfaces.http.deps import PrincipalDep, ServicesDep

router = APIRouter(prefix="/api/v1/external/eval", tags=["codeer"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow")


def _ws(services: Any) -> dict[int, str]:
    return {w.id: w.public_id for w in services.store.list_workspaces()}


def label_json(services: Any, row: LabelRecord) -> dict[str, Any]:
    return {"id": row.public_id, "name": row.name, "color": row.color, "workspace_id": _ws(services).get(row.workspace_id)}


def evaluator_json(services: Any, row: EvaluatorRecord) -> dict[str, Any]:
    return {
        "id": row.public_id,
        "name": row.name,
        "description": row.description,
        "judge_llm_model_id": row.judge_model,
        "system_prompt_template": row.template,
        "workspace_id": _ws(services).get(row.workspace_id),
        "created_at": views.iso(row.created_at),
        "updated_at": views.iso(row.updated_at),
    }


def case_json(row: CaseRecord, evaluators: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.public_id,
        "agent_id": row.agent_id,
        "input": row.input,
        "expected_output": row.expected_output,
        "rubric": row.rubric,
        "note": row.note,
        "meta": row.meta,
        "label_ids": list(row.label_ids),
        "attachment_ids": list(row.attachment_ids),
        "created_at": views.iso(row.created_at),
        "updated_at": views.iso(row.updated_at),
    }
    if evaluators is not None:
        out["evaluators"] = [{"evaluator_id": e, "rubric": r} for e, r in evaluators]
    return out


def result_json(
    case: CaseRecord, evaluator_id: str, version_id: str, row: ResultRecord | None, full: bool
) -> dict[str, Any]:
    if row is None:
        return {
            "case_id": case.public_id,
            "evaluation_case_id": case.public_id,
            "evaluator_id": evaluator_id,
            "agent_history_id": version_id,
            "status": "not_run",
            "score": None,
            "reason": None,
        }
    out: dict[str, Any] = {
        "id": row.public_id,
        "case_id": case.public_id,
        "evaluation_case_id": case.public_id,
        "evaluator_id": evaluator_id,
        "agent_history_id": version_id,
        "status": row.state,
        # A result still running has no score yet: the CLI polls until every score is set.
        "score": row.score if row.state in ("done", "failed") else None,
        "reason": row.reason,
        "execution_time_s": row.elapsed_s,
        "usage": row.usage,
        "created_at": views.iso(row.created_at),
        "finished_at": views.iso(row.finished_at),
    }
    if full:
        out["output"] = row.output
        out["reasoning_steps"] = [
            {
                "name": c.get("tool_name"),
                "arguments": c.get("input"),
                "output": c.get("output"),
                "status": "error" if c.get("error") else "success",
            }
            for c in row.tool_calls
        ]
    return out


# -- labels ---------------------------------------------------------------------------------


@router.get("/case-labels", summary="The workspace's case labels")
def list_labels(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok([label_json(services, r) for r in service.labels(services.store, principal)])


@router.post("/case-labels", summary="Create a case label")
def create_label(body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    extra = body.model_extra or {}
    return ok(label_json(services, service.create_label(services.store, principal, extra.get("name"), extra.get("color"))))


@router.put("/case-labels/{label_id}", summary="Rename or recolour a case label")
def update_label(label_id: str, body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    extra = body.model_extra or {}
    row = service.update_label(services.store, principal, label_id, extra.get("name"), extra.get("color"))
    return ok(label_json(services, row))


@router.delete("/case-labels/{label_id}", summary="Delete a case label")
def delete_label(label_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    service.delete_label(services.store, principal, label_id)
    return ok({"id": label_id, "deleted": True})


# -- evaluators -------------------------------------------------------------------------------


@router.get("/evaluators", summary="The workspace's evaluators")
def list_evaluators(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok([evaluator_json(services, r) for r in service.evaluators(services.store, principal)])


@router.post("/evaluators", summary="Create an LLM-as-judge evaluator")
def create_evaluator(body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    extra = body.model_extra or {}
    row = service.create_evaluator(
        services.store,
        principal,
        name=extra.get("name"),
        template=extra.get("system_prompt_template"),
        description=extra.get("description"),
        judge_model=extra.get("judge_llm_model_id"),
    )
    return ok(evaluator_json(services, row))


@router.get("/evaluators/{evaluator_id}", summary="An evaluator")
def get_evaluator(evaluator_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok(evaluator_json(services, service.evaluator(services.store, principal, evaluator_id)))


@router.put("/evaluators/{evaluator_id}", summary="Change an evaluator (judge_llm_model_id null: the server's model)")
def update_evaluator(evaluator_id: str, body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    row = service.update_evaluator(services.store, principal, evaluator_id, dict(body.model_extra or {}))
    return ok(evaluator_json(services, row))


# -- cases ------------------------------------------------------------------------------------


@router.get("/agents/{agent_id}/cases", summary="An agent's evaluation cases")
def list_cases(agent_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    rows = service.cases(services, principal, agent_id)
    pairs = service.assignments(services.store, principal, [c.public_id for c in rows]) if rows else []
    assigned = {c.public_id: p for c, p in pairs}
    return ok([case_json(c, assigned.get(c.public_id)) for c in rows])


@router.post("/cases", summary="Create a case (with per-evaluator rubrics)")
def create_case(body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    made = service.create_case(services, principal, dict(body.model_extra or {}))
    ((_, pairs),) = service.assignments(services.store, principal, [made.public_id])
    return ok(case_json(made, pairs))


@router.get("/cases/{case_id}", summary="A case with its evaluators")
def get_case(case_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    ((row, pairs),) = service.assignments(services.store, principal, [case_id])
    return ok(case_json(row, pairs))


@router.put("/cases/{case_id}", summary="Change a case")
def update_case(case_id: str, body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    return ok(case_json(service.update_case(services.store, principal, case_id, dict(body.model_extra or {}))))


@router.delete("/cases/{case_id}", summary="Delete a case with its results")
def delete_case(case_id: str, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    service.delete_case(services.store, principal, case_id)
    return ok({"id": case_id, "deleted": True})


@router.put("/cases/{case_id}/case-evaluator-infos", summary="Replace a case's evaluators and rubrics")
def put_assignments(case_id: str, body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    service.set_assignments(services.store, principal, case_id, (body.model_extra or {}).get("evaluators"))
    ((row, pairs),) = service.assignments(services.store, principal, [case_id])
    return ok(case_json(row, pairs))


@router.put("/cases/{case_id}/rubrics/{evaluator_id}", summary="Set one evaluator's rubric for a case")
def put_rubric(
    case_id: str, evaluator_id: str, body: _Body, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    service.set_rubric(services.store, principal, case_id, evaluator_id, (body.model_extra or {}).get("rubric"))
    return ok({"case_id": case_id, "evaluator_id": evaluator_id, "rubric": (body.model_extra or {}).get("rubric")})


@router.post("/case-evaluator-infos:batch", summary="Evaluators and rubrics of many cases")
def assignments_batch(body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    rows = service.assignments(services.store, principal, (body.model_extra or {}).get("case_ids"))
    return ok([{"case_id": c.public_id, "evaluators": [{"evaluator_id": e, "rubric": r} for e, r in p]} for c, p in rows])


@router.post("/rubrics:batch", summary="One evaluator's rubric for many cases, in order")
def rubrics_batch(body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    extra = body.model_extra or {}
    evaluator_id = str(extra.get("evaluator_id"))
    rows = service.rubrics(services.store, principal, extra.get("case_ids"), evaluator_id)
    return ok([{"case_id": c, "evaluator_id": evaluator_id, "rubric": r} for c, r in rows])


# -- runs -------------------------------------------------------------------------------------


@router.post("/runs", summary="Run an agent version over cases with one evaluator (on the job queue)")
def start_run(body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    extra = body.model_extra or {}
    started = service.start_run(
        services, principal, extra.get("case_ids"), extra.get("evaluator_ids"), extra.get("version_id")
    )
    return ok(
        {
            "run_id": started.job_id or None,
            "version_id": started.version.id,
            "agent_id": started.version.assistant_id,
            "version_number": started.version.number,
            "triggered_pairs": [{"case_id": c, "evaluator_id": e} for c, e in started.queued],
            "skipped_pairs": started.skipped,
        }
    )


@router.post("/results:batch", summary="Scores of many cases for one evaluator and agent version")
def results_batch(body: _Body, services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    extra = body.model_extra or {}
    evaluator_id, version = str(extra.get("evaluator_id")), extra.get("version_id")
    rows = service.results(services.store, principal, extra.get("case_ids"), evaluator_id, version)
    full = extra.get("include_output") is not False
    return ok([result_json(c, evaluator_id, str(version), r, full) for c, r in rows])
