"""Agent evaluations in the core: labels, evaluators (LLM-as-judge), cases with per-evaluator
rubrics, runs of an agent version over cases, and their scored results.

Everything lives in the caller's workspace (``knowledge.home_workspace``) and is visible to the
keys of that workspace; cases belong to an agent the caller can run. A run needs a model: with
none configured, starting one is refused with a message saying so (nothing is scored).

A run's job runs the agent as the key that started it (``batches.runner.principal_from``: as
that key is when each case runs, so a key revoked since runs nothing more), so the agent's tools
see what that key sees.

Agent versions: a run names a ``version_id``, one of the ids the agent's versions list gives
(``agents/assistants.py``; Codeer's ``history_id``). The run's job answers each case with that
version's stored definition, draft or published, so a team can score a draft before publishing
it; results are kept per (case, evaluator, version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from repolens import knowledge
from repolens.agents import assistants as registry
from repolens.agents.assistants import Version
from repolens.batches.answer import check_agent
from repolens.batches.service import principal_snapshot
from repolens.errors import InvalidInput, NotFound, NotReady
from repolens.storage.eval_store import CaseRecord, EvaluatorRecord, LabelRecord, ResultRecord

if TYPE_CHECKING:
    from repolens.access.keys import Principal
    from repolens.services import Services
    from repolens.storage.base import Database

MAX_TEXT_CHARS = 100_000  # a case's input, expected output or rubric; an evaluator's template
MAX_NAME_CHARS = 200
MAX_IDS = 1_000  # ids in one request
DEFAULT_COLOR = "#0969da"  # Codeer's default label colour
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
NO_MODEL = (
    "no LLM is configured on this server (REPOLENS_LLM_PROVIDER / REPOLENS_LLM_BASE_URL): an evaluation needs "
    "a model to run the agent and a judge model to score it, so nothing was run or scored"
)


def _text(value: object, what: str, *, max_chars: int = MAX_TEXT_CHARS, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInput(f"{what} must be a {'non-empty ' if required else ''}string")
    if len(value) > max_chars:
        raise InvalidInput(f"{what} is over {max_chars} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold it, and no message needs it
        raise InvalidInput(f"{what} must not contain NUL (\\u0000) characters")
    return value


def _ids(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_IDS or not all(isinstance(v, str) for v in value):
        raise InvalidInput(f"{what} must be a list of at most {MAX_IDS} ids")
    return list(value)


def _workspaces(db: Database, principal: Principal) -> set[int]:
    return {w.id for w in knowledge.workspaces_of(db, principal)}


def home(db: Database, principal: Principal) -> int:
    return knowledge.home_workspace(db, principal).id


# -- labels ---------------------------------------------------------------------------------


def create_label(db: Database, principal: Principal, name: object, color: object) -> LabelRecord:
    text = _text(name, "name", max_chars=MAX_NAME_CHARS, required=True)
    assert text is not None
    chosen = DEFAULT_COLOR if color is None else color
    if not isinstance(chosen, str) or not _COLOR.match(chosen):
        raise InvalidInput("color must be a hex colour like #0969da")
    return db.create_label(workspace_id=home(db, principal), name=text.strip(), color=chosen)


def labels(db: Database, principal: Principal) -> list[LabelRecord]:
    return db.labels(home(db, principal))


def label(db: Database, principal: Principal, label_id: str) -> LabelRecord:
    found = db.get_label(label_id)
    if found is None or found.workspace_id not in _workspaces(db, principal):
        raise NotFound(f"label {label_id!r} not found")
    return found


def update_label(db: Database, principal: Principal, label_id: str, name: object, color: object) -> LabelRecord:
    found = label(db, principal, label_id)
    text = _text(name, "name", max_chars=MAX_NAME_CHARS)
    if color is not None and (not isinstance(color, str) or not _COLOR.match(color)):
        raise InvalidInput("color must be a hex colour like #0969da")
    db.update_label(found.id, name=text.strip() if text else None, color=color if isinstance(color, str) else None)
    return label(db, principal, label_id)


def delete_label(db: Database, principal: Principal, label_id: str) -> None:
    db.delete_label(label(db, principal, label_id).id)


# -- evaluators -------------------------------------------------------------------------------


def create_evaluator(
    db: Database, principal: Principal, *, name: object, template: object, description: object, judge_model: object
) -> EvaluatorRecord:
    text = _text(name, "name", max_chars=MAX_NAME_CHARS, required=True)
    body = _text(template, "system_prompt_template", required=True)
    about = _text(description, "description") or ""
    model = _text(judge_model, "judge_llm_model_id", max_chars=MAX_NAME_CHARS)
    assert text is not None and body is not None
    return db.create_evaluator(
        workspace_id=home(db, principal), name=text, description=about, judge_model=model, template=body
    )


def evaluators(db: Database, principal: Principal) -> list[EvaluatorRecord]:
    return db.evaluators(home(db, principal))


def evaluator(db: Database, principal: Principal, evaluator_id: str) -> EvaluatorRecord:
    found = db.get_evaluator(evaluator_id) if isinstance(evaluator_id, str) else None
    if found is None or found.workspace_id not in _workspaces(db, principal):
        raise NotFound(f"evaluator {evaluator_id!r} not found")
    return found


def update_evaluator(db: Database, principal: Principal, evaluator_id: str, changes: dict[str, Any]) -> EvaluatorRecord:
    found = evaluator(db, principal, evaluator_id)
    fields: dict[str, object] = {}
    if changes.get("name") is not None:
        fields["name"] = _text(changes["name"], "name", max_chars=MAX_NAME_CHARS, required=True)
    if changes.get("system_prompt_template") is not None:
        fields["template"] = _text(changes["system_prompt_template"], "system_prompt_template", required=True)
    if changes.get("description") is not None:
        fields["description"] = _text(changes["description"], "description")
    if "judge_llm_model_id" in changes:  # null clears it: the server's model judges
        fields["judge_model"] = _text(changes["judge_llm_model_id"], "judge_llm_model_id", max_chars=MAX_NAME_CHARS)
    db.update_evaluator(found.id, **fields)
    return evaluator(db, principal, evaluator_id)


# -- cases ------------------------------------------------------------------------------------


def _case_fields(db: Database, principal: Principal, body: dict[str, Any]) -> dict[str, object]:
    fields: dict[str, object] = {}
    for key in ("input", "expected_output", "rubric", "note"):
        if body.get(key) is not None:
            fields[key] = _text(body[key], key, required=key == "input")
    if body.get("meta") is not None:
        if not isinstance(body["meta"], dict):
            raise InvalidInput("meta must be an object")
        fields["meta"] = body["meta"]
    if body.get("label_ids") is not None:
        ids = _ids(body["label_ids"], "label_ids")
        for one in ids:
            label(db, principal, one)
        fields["label_ids"] = ids
    if body.get("attachment_ids") is not None:
        ids = _ids(body["attachment_ids"], "attachment_ids")
        for one in ids:
            upload = db.get_upload(one)
            if upload is None or upload.owner != principal.key.key_id:
                raise NotFound(f"attachment {one!r} not found")
        fields["attachment_ids"] = ids
    return fields


def _assignments(db: Database, principal: Principal, value: object) -> list[tuple[int, str]]:
    if not isinstance(value, list) or len(value) > MAX_IDS:
        raise InvalidInput("evaluators must be a list of {evaluator_id, rubric}")
    out = []
    for n, row in enumerate(value):
        if not isinstance(row, dict):
            raise InvalidInput(f"evaluators[{n}] must be an object with evaluator_id and rubric")
        found = evaluator(db, principal, str(row.get("evaluator_id")))
        out.append((found.id, _text(row.get("rubric"), f"evaluators[{n}].rubric") or ""))
    return out


def create_case(services: Services, principal: Principal, body: dict[str, Any]) -> CaseRecord:
    db = services.store
    agent_id = _text(body.get("agent_id"), "agent_id", max_chars=64, required=True)
    assert agent_id is not None
    check_agent(services, principal, agent_id)
    fields = _case_fields(db, principal, body)
    if "input" not in fields:
        raise InvalidInput("input must be a non-empty string")
    pairs = _assignments(db, principal, body["evaluators"]) if body.get("evaluators") is not None else []
    made = db.create_case(workspace_id=home(db, principal), agent_id=agent_id, **fields)
    if pairs:
        db.set_case_evaluators(made.id, pairs, replace=True)
    return made


def cases(services: Services, principal: Principal, agent_id: str) -> list[CaseRecord]:
    check_agent(services, principal, agent_id)
    visible = _workspaces(services.store, principal)
    return [c for c in services.store.cases(agent_id) if c.workspace_id in visible]


def case(db: Database, principal: Principal, case_id: str) -> CaseRecord:
    found = db.get_case(case_id) if isinstance(case_id, str) else None
    if found is None or found.workspace_id not in _workspaces(db, principal):
        raise NotFound(f"case {case_id!r} not found")
    return found


def update_case(db: Database, principal: Principal, case_id: str, body: dict[str, Any]) -> CaseRecord:
    found = case(db, principal, case_id)
    db.update_case(found.id, **_case_fields(db, principal, body))
    return case(db, principal, case_id)


def delete_case(db: Database, principal: Principal, case_id: str) -> None:
    db.delete_case(case(db, principal, case_id).id)


def set_assignments(db: Database, principal: Principal, case_id: str, value: object) -> None:
    db.set_case_evaluators(case(db, principal, case_id).id, _assignments(db, principal, value), replace=True)


def set_rubric(db: Database, principal: Principal, case_id: str, evaluator_id: str, rubric: object) -> None:
    text = _text(rubric, "rubric") or ""
    db.set_case_evaluators(
        case(db, principal, case_id).id, [(evaluator(db, principal, evaluator_id).id, text)], replace=False
    )


def assignments(db: Database, principal: Principal, case_ids: object) -> list[tuple[CaseRecord, list[tuple[str, str]]]]:
    """Each case with its assigned (evaluator public id, rubric), in the order asked."""
    found = [case(db, principal, c) for c in _ids(case_ids, "case_ids")]
    rows = db.case_evaluators([c.id for c in found])
    names = db.evaluator_public_ids(sorted({e for pairs in rows.values() for e, _ in pairs}))
    return [(c, [(names[e], r) for e, r in rows[c.id]]) for c in found]


def rubrics(db: Database, principal: Principal, case_ids: object, evaluator_id: str) -> list[tuple[str, str]]:
    """(case id, rubric) for one evaluator, in order, ``""`` when unset."""
    ev = evaluator(db, principal, evaluator_id)
    out = []
    for c, pairs in assignments(db, principal, case_ids):
        out.append((c.public_id, next((r for e, r in pairs if e == ev.public_id), "")))
    return out


# -- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunStarted:
    """What starting a run did: its job, the version it runs, the (case, evaluator) pairs queued
    and the pairs skipped (``{case_id, evaluator_id, reason}``)."""

    job_id: str
    version: Version
    queued: list[tuple[str, str]]
    skipped: list[dict[str, str]]


def _agent_of(found: list[CaseRecord]) -> str:
    """The one agent whose cases these are: a run is one version of one agent."""
    agents = sorted({c.agent_id for c in found})
    if len(agents) > 1:
        raise InvalidInput(f"case_ids must all be cases of one agent (these are of {len(agents)} agents)")
    return agents[0]


def resolve_version(db: Database, principal: Principal, agent_id: str, version_id: str) -> Version:
    """The version of ``agent_id`` that ``version_id`` names: one of the ids its versions list
    gives (Codeer's ``history_id``). A run and its results belong to that version, so the agent's
    own id is refused with a hint rather than taken to mean whatever the agent is today."""
    viewer = registry.viewer_for(db, principal)
    try:
        return registry.version(db, viewer, principal, agent_id, version_id)
    except NotFound:
        if version_id.strip() == agent_id:
            raise InvalidInput(
                f"version_id {version_id!r} is the agent's id: name one of its versions "
                f"(GET /api/v1/external/agents/{agent_id}/versions; `codeer eval run --latest` picks the newest)"
            ) from None
        raise


def latest_version(db: Database, principal: Principal, agent_id: str) -> Version:
    """The agent's newest version, draft or published (what ``codeer eval run --latest`` runs)."""
    viewer = registry.viewer_for(db, principal)
    found = registry.versions(db, viewer, principal, agent_id)
    if not found:
        raise NotFound(f"agent {agent_id!r} has no versions")
    return found[0]


def start_run(
    services: Services, principal: Principal, case_ids: object, evaluator_ids: object, version_id: object
) -> RunStarted:
    """Queue (case, evaluator) pairs of an agent version: the version's own definition (its
    prompt, model and tools as that version stored them) answers each case. A pair whose
    evaluator is not assigned to the case is skipped as ``not_assigned``."""
    if not services.settings.llm_provider:
        raise NotReady(NO_MODEL)
    db = services.store
    version_text = _text(version_id, "version_id", max_chars=64, required=True)
    assert version_text is not None
    wanted = [evaluator(db, principal, e) for e in _ids(evaluator_ids, "evaluator_ids")]
    if not wanted:
        raise InvalidInput("evaluator_ids must name at least one evaluator")
    found = [case(db, principal, c) for c in _ids(case_ids, "case_ids")]
    if not found:
        raise InvalidInput("case_ids must name at least one case")
    version = resolve_version(db, principal, _agent_of(found), version_text)
    assigned = db.case_evaluators([c.id for c in found])
    pairs: list[tuple[int, int]] = []
    queued: list[tuple[str, str]] = []
    skipped: list[dict[str, str]] = []
    for ev in wanted:
        for c in found:
            if any(e == ev.id for e, _ in assigned[c.id]):
                pairs.append((c.id, ev.id))
                queued.append((c.public_id, ev.public_id))
            else:
                skipped.append({"case_id": c.public_id, "evaluator_id": ev.public_id, "reason": "not_assigned"})
    job = db.start_eval_run(pairs, version.id, principal_snapshot(principal)) if pairs else ""
    return RunStarted(job, version, queued, skipped)


def results(
    db: Database, principal: Principal, case_ids: object, evaluator_id: str, version_id: object
) -> list[tuple[CaseRecord, ResultRecord | None]]:
    """Each case's result for one evaluator and version of the cases' agent (None: never run)."""
    ev = evaluator(db, principal, evaluator_id)
    version_text = _text(version_id, "version_id", max_chars=64, required=True)
    assert version_text is not None
    found = [case(db, principal, c) for c in _ids(case_ids, "case_ids")]
    if not found:
        return []
    version = resolve_version(db, principal, _agent_of(found), version_text)
    by_case = {r.case_id: r for r in db.eval_results([c.id for c in found], ev.id, version.id)}
    return [(c, by_case.get(c.id)) for c in found]
