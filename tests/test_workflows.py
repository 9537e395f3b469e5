"""Workflows in the core: the YAML and expression guards, and the durable engine on a real store
(SQLite, and PostgreSQL for the tests marked ``backends``) with a scripted assistant runner."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from repolens.agents.output import parse as parse_answer
from repolens.errors import InvalidInput
from repolens.services import Services
from repolens.storage.workflow_store import ABORTED, FAILED, INTERRUPTED, SUCCEEDED
from repolens.workflows import service
from repolens.workflows.config import ConfigError, parse, schema_of
from repolens.workflows.engine import AssistantCall, AssistantReply, Engine
from repolens.workflows.expressions import ExpressionError, check, evaluate

# -- the expression evaluator ----------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os').system('true')",
        "().__class__.__bases__",
        "keys.__len__()",
        "[x for x in range(10**9)]",
        "(lambda: 1)()",
        "open('/etc/passwd')",
        "_secret",
    ],
)
def test_hostile_expressions_are_refused_before_running(expression: str) -> None:
    with pytest.raises(ExpressionError):
        check(expression)


@pytest.mark.parametrize("expression", ["'a' * 10**9", "9 ** 9 ** 9", "[1] * 10**8"])
def test_expressions_that_would_build_huge_values_stop_fast(expression: str) -> None:
    started = time.monotonic()
    with pytest.raises(ExpressionError):
        evaluate(expression, {})
    assert time.monotonic() - started < 0.5


def test_expressions_see_the_previous_output() -> None:
    out = {"error": "x", "count": 3, "items": ["a", "b"]}
    assert evaluate("'error' in keys", out) is True
    assert evaluate("count > 2 and len(items) == 2", out) is True
    assert evaluate("items[0] == 'a' or missing_is_never_reached", out) is True
    assert evaluate("'ok' in keys", out) is False
    with pytest.raises(ExpressionError, match="not in the previous output"):
        evaluate("nope == 1", out)


# -- the YAML guard --------------------------------------------------------------------------

THREE_STATES = """\
assistants:
  - id: generic
    model: gpt-4.1-mini
    system_prompt: Answer user queries
tools:
  - id: tree
    tool: get_file_tree
states:
  - id: generate_colors
    assistant_id: generic
    task: Generate a list of 3 colors
    output_schema: '{"colors": ["orange","blue"]}'
    next: {state_id: describe, iter_key: colors}
  - id: describe
    assistant_id: generic
    task: Generate a text about a color
    next: {state_id: merge}
  - id: merge
    assistant_id: generic
    task: Merge all texts into one
    next:
      condition: {expression: "'error' in keys", then: fix, otherwise: end}
  - id: fix
    tool_id: tree
    next: {state_id: end}
"""


def test_the_spec_example_parses() -> None:
    config = parse(THREE_STATES)
    assert [s.id for s in config.states] == ["generate_colors", "describe", "merge", "fix"]


def test_unknown_keys_and_bad_references_name_the_line_and_key() -> None:
    with pytest.raises(ConfigError) as err:
        parse(THREE_STATES.replace("    task: Merge all", "    colour: red\n    task: Merge all"))
    assert "line 20" in str(err.value) and "states[2].colour" in str(err.value) and "unknown key" in str(err.value)
    with pytest.raises(ConfigError, match=r"line 17, states\[1\].next.state_id: no state with id 'mrge'"):
        parse(THREE_STATES.replace("{state_id: merge}", "{state_id: mrge}"))
    with pytest.raises(ConfigError, match=r"line 22, states\[2\].next.condition.expression: attribute access"):
        parse(THREE_STATES.replace("'error' in keys", "keys.__class__"))


def test_yaml_bombs_and_huge_yaml_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    started = time.monotonic()
    with pytest.raises(ConfigError, match="expands to more than"):
        parse(bomb)
    assert time.monotonic() - started < 2
    with pytest.raises(ConfigError, match="larger than"):
        parse("states: []\n" + "# padding\n" * 500_000)
    with pytest.raises(ConfigError, match="not valid"):
        parse("states: [\n")
    with pytest.raises(ConfigError, match="Autonomous"):
        service.check_mode("Autonomous")


# -- the engine ------------------------------------------------------------------------------


class Scripted:
    """A stand-in agent runtime: answers by state task; records every call."""

    def __init__(self, answers: dict[str, Any], *, block: threading.Event | None = None) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str]] = []
        self.block = block

    def run(self, call: AssistantCall, cancel: threading.Event) -> AssistantReply:
        self.calls.append((call.task, call.input))
        if self.block is not None:
            self.block.set()
            cancel.wait(10)
            raise RuntimeError("cancelled")
        answer = self.answers[call.task]
        text = answer(call) if callable(answer) else answer
        return AssistantReply(text=text, input_tokens=10, output_tokens=5)


class FailingTools:
    def __init__(self) -> None:
        self.calls = 0

    def run(self, tool: Any, args: dict[str, Any], input: str, cancel: threading.Event) -> str:
        self.calls += 1
        raise InvalidInput(f"{tool.tool} broke")


class EchoTools:
    def run(self, tool: Any, args: dict[str, Any], input: str, cancel: threading.Event) -> str:
        return f"tool {tool.tool} saw {input}"


def _answers(merged: str) -> dict[str, Any]:
    return {
        "Generate a list of 3 colors": json.dumps({"colors": ["red", "green", "blue"]}),
        "Generate a text about a color": lambda call: f"text about {call.input}",
        "Merge all texts into one": merged,
    }


@pytest.mark.backends
def test_fan_out_condition_and_tool_state_make_the_expected_transitions(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="colors", project="demo", yaml_config=THREE_STATES)
    ex = service.start_execution(db, wf, user_input="go", created_by={"user_id": "u"})
    runner = Scripted(_answers(json.dumps({"error": "too short"})))
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == SUCCEEDED
    done = db.get_execution(ex.public_id)
    assert done is not None and done.status == SUCCEEDED
    assert done.input_tokens == 50 and done.output_tokens == 25  # 5 assistant turns
    assert [(t.from_state_id, t.to_state_id) for t in db.transitions(ex.id)] == [
        ("generate_colors", "describe"),
        ("describe", "merge"),  # once, after the last of the three iterations
        ("merge", "fix"),
        ("fix", "end"),
    ]
    states = db.states(ex.id)
    assert [(s.state_id, s.iteration, s.status, s.runs) for s in states] == [
        ("generate_colors", 0, SUCCEEDED, 1),
        ("describe", 1, SUCCEEDED, 1),
        ("describe", 2, SUCCEEDED, 1),
        ("describe", 3, SUCCEEDED, 1),
        ("merge", 0, SUCCEEDED, 1),
        ("fix", 0, SUCCEEDED, 1),
    ]
    assert json.loads(runner.calls[4][1]) == ["text about red", "text about green", "text about blue"]
    assert done.output is not None and done.output.startswith("tool get_file_tree saw")
    # The other branch of the condition ends the execution at merge.
    ex2 = service.start_execution(db, wf, user_input="go", created_by={})
    assert Engine(db, Scripted(_answers('{"ok": true}')), EchoTools()).run(ex2.public_id) == SUCCEEDED
    assert [t.to_state_id for t in db.transitions(ex2.id)][-1] == "end"
    assert [s.state_id for s in db.states(ex2.id)][-1] == "merge"


class Meeting:
    """A runner whose fan-out branches must all be in flight at once: each waits at a barrier
    that only opens when ``parties`` calls are running together."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=2)
        self.merged: list[str] = []
        self.most = 0
        self.running = 0
        self.lock = threading.Lock()

    def run(self, call: AssistantCall, cancel: threading.Event) -> AssistantReply:
        if call.task == "Generate a text about a color":
            with self.lock:
                self.running += 1
                self.most = max(self.most, self.running)
            self.barrier.wait()  # raises BrokenBarrierError if the branches ran one by one
            time.sleep(0.05 if call.input != "red" else 0.3)  # red, the first item, finishes last
            with self.lock:
                self.running -= 1
            return AssistantReply(text=f"text about {call.input}")
        if call.task == "Merge all texts into one":
            self.merged.append(call.input)
        return AssistantReply(text=_answers('{"ok": 1}')[call.task])


@pytest.mark.backends
def test_fan_out_runs_branches_in_parallel_up_to_max_concurrency_and_joins_in_item_order(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="parallel", project="demo", yaml_config="max_concurrency: 3\n" + THREE_STATES)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    runner = Meeting(3)
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == SUCCEEDED
    assert runner.most == 3
    describe = [s for s in db.states(ex.id) if s.state_id == "describe"]
    assert sorted((s.iteration, s.status, s.runs) for s in describe) == [(i, SUCCEEDED, 1) for i in (1, 2, 3)]
    merge = db.get_state(ex.id, "merge")
    assert merge is not None and merge.status == SUCCEEDED
    assert [(t.from_state_id, t.to_state_id) for t in db.transitions(ex.id)].count(("describe", "merge")) == 1
    # The join hands the items' outputs in item order, whichever branch finished first.
    assert [json.loads(m) for m in runner.merged] == [["text about red", "text about green", "text about blue"]]
    # With a limit of 2, three branches cannot all meet: the barrier breaks and the state fails.
    wf2 = service.create_workflow(db, name="two", project="demo", yaml_config="max_concurrency: 2\n" + THREE_STATES)
    ex2 = service.start_execution(db, wf2, user_input="go", created_by={})
    assert Engine(db, Meeting(3), EchoTools()).run(ex2.public_id) == FAILED


def test_a_failing_tool_is_retried_then_fails_with_the_error_in_its_state(services: Services) -> None:
    db = services.store
    yaml_config = THREE_STATES.replace(
        "  - id: fix\n    tool_id: tree\n",
        "  - id: fix\n    tool_id: tree\n    retry_policy: {max_attempts: 3, initial_interval: 0.01, backoff_factor: 2}\n",
    )
    wf = service.create_workflow(db, name="fails", project="demo", yaml_config=yaml_config)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    tools = FailingTools()
    assert Engine(db, Scripted(_answers('{"error": 1}')), tools).run(ex.public_id) == FAILED
    assert tools.calls == 3
    failed = db.get_state(ex.id, "fix")
    assert failed is not None and failed.status == FAILED and "get_file_tree broke" in failed.error
    done = db.get_execution(ex.public_id)
    assert done is not None and done.status == FAILED and "get_file_tree broke" in done.error


def test_interrupt_before_pauses_and_resume_continues_with_user_input(services: Services) -> None:
    db = services.store
    yaml_config = THREE_STATES.replace("    task: Merge all texts", "    interrupt_before: true\n    task: Merge all texts")
    wf = service.create_workflow(db, name="pause", project="demo", yaml_config=yaml_config)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    runner = Scripted(_answers('{"ok": 1}'))
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == INTERRUPTED
    paused = db.get_execution(ex.public_id)
    assert paused is not None and paused.status == INTERRUPTED
    assert db.get_state(ex.id, "merge").status == INTERRUPTED  # type: ignore[union-attr]
    with pytest.raises(InvalidInput):
        service.set_output(db, paused, state_id="generate_colors", output="x")  # not what merge reads
    service.set_output(db, paused, state_id="describe", output="edited by a human")
    paused = db.get_execution(ex.public_id)
    assert paused is not None
    service.resume(db, paused, user_input="be brief")
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == SUCCEEDED
    assert runner.calls[-1] == ("Merge all texts into one", "edited by a human")
    assert [s.runs for s in db.states(ex.id) if s.state_id == "merge"] == [1]


def test_abort_stops_the_running_call_and_stays_aborted(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="abort", project="demo", yaml_config=THREE_STATES)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    started = threading.Event()
    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(Engine(db, Scripted({}, block=started), EchoTools()).run(ex.public_id))
    )
    thread.start()
    assert started.wait(5)
    t0 = time.monotonic()
    assert service.abort(db, db.get_execution(ex.public_id))  # type: ignore[arg-type]
    thread.join(10)
    assert result == [ABORTED] and time.monotonic() - t0 < 3
    assert db.get_execution(ex.public_id).status == ABORTED  # type: ignore[union-attr]
    assert [s.status for s in db.states(ex.id)] == [ABORTED]
    # An aborted execution never resumes and is never overwritten.
    assert Engine(db, Scripted(_answers("{}")), EchoTools()).run(ex.public_id) == ABORTED
    assert not service.abort(db, db.get_execution(ex.public_id))  # type: ignore[arg-type]


def test_cli_creates_lists_runs_and_aborts_a_workflow(run_cli: Any, tmp_path: Any) -> None:
    good = tmp_path / "colors.yaml"
    good.write_text(THREE_STATES)
    bad = tmp_path / "bad.yaml"
    bad.write_text(THREE_STATES.replace("{state_id: merge}", "{state_id: mrge}"))
    refused = run_cli("workflow", "create", "bad", "--file", str(bad))
    assert refused.returncode != 0 and "line 17, states[1].next.state_id" in refused.stderr
    run_cli("workflow", "create", "colors", "--file", str(good), check=True)
    assert "colors" in run_cli("workflow", "list", check=True).stdout
    started = run_cli("workflow", "run", "colors", "--input", "go", "--json", check=True)
    execution = json.loads(started.stdout)
    assert execution["overall_status"] == "Not Started"  # no server here: queued for one
    aborted = run_cli("workflow", "abort", execution["execution_id"], check=True)
    assert "aborted" in aborted.stdout
    again = run_cli("workflow", "abort", execution["execution_id"])
    assert again.returncode != 0 and "already Aborted" in again.stderr


# -- routing: switch, state_ids, recursion_limit ---------------------------------------------


class ByTask:
    """A runner that answers each task with ``answers[task](call)`` and records the calls made,
    as (task, input, context) in the order they started."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def run(self, call: AssistantCall, cancel: threading.Event) -> AssistantReply:
        with self.lock:
            self.calls.append((call.task, call.input, call.context))
        answer = self.answers[call.task]
        return AssistantReply(text=answer(call) if callable(answer) else answer)


SWITCH = """\
assistants:
  - id: a
states:
  - id: triage
    assistant_id: a
    task: triage
    next:
      switch:
        cases:
          - {condition: "severity >= 3", state_id: page}
          - {condition: "'docs' in keys", state_id: write}
        default: log
  - id: page
    assistant_id: a
    task: page
    next: {state_id: end}
  - id: write
    assistant_id: a
    task: write
    next: {state_id: end}
  - id: log
    assistant_id: a
    task: log
    next: {state_id: end}
"""


@pytest.mark.parametrize(
    ("triage", "chosen"),
    [
        ({"severity": 5, "docs": 1}, "page"),  # the first true case wins, though the second is true too
        ({"severity": 1, "docs": 1}, "write"),
        ({"severity": 1}, "log"),  # no case is true: the default
    ],
)
def test_switch_takes_the_first_true_case_or_the_default(services: Services, triage: Any, chosen: str) -> None:
    db = services.store
    wf = service.create_workflow(db, name="switch", project="demo", yaml_config=SWITCH)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    runner = ByTask({"triage": json.dumps(triage), "page": "paged", "write": "written", "log": "logged"})
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == SUCCEEDED
    assert [c[0] for c in runner.calls] == ["triage", chosen]
    assert [(t.from_state_id, t.to_state_id) for t in db.transitions(ex.id)] == [("triage", chosen), (chosen, "end")]


def test_a_switch_over_an_output_without_the_key_fails_the_state_with_the_reason(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="switch-bad", project="demo", yaml_config=SWITCH)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    # Not JSON: ``severity`` is no variable. Routing fails, and the execution with it (no hang).
    runner = ByTask({"triage": "plain words"})
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == FAILED
    triage = db.get_state(ex.id, "triage")
    assert triage is not None and triage.status == FAILED
    assert "routing failed" in triage.error and "severity" in triage.error


BRANCHES = """\
max_concurrency: 2
assistants:
  - id: a
states:
  - id: plan
    assistant_id: a
    task: plan
    next: {state_ids: [frontend, backend]}
  - id: frontend
    assistant_id: a
    task: frontend
    next: {state_id: report}
  - id: backend
    assistant_id: a
    task: backend
    next: {state_id: report}
  - id: report
    assistant_id: a
    task: report
    next: {state_id: end}
"""


@pytest.mark.backends
def test_state_ids_run_named_branches_in_parallel_and_their_common_successor_once(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="branches", project="demo", yaml_config=BRANCHES)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    meet = threading.Barrier(2, timeout=5)  # breaks (and fails the state) unless both branches run at once

    def branch(name: str, delay: float) -> Any:
        def answer(call: AssistantCall) -> str:
            meet.wait()
            time.sleep(delay)
            return json.dumps({name: f"{name} done after {call.input}"})

        return answer

    runner = ByTask(
        {
            "plan": "the plan",
            "frontend": branch("frontend", 0.3),  # the first branch finishes last
            "backend": branch("backend", 0.0),
            "report": lambda call: f"report of {call.input}",
        }
    )
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == SUCCEEDED
    assert [c[0] for c in runner.calls].count("report") == 1
    report_call = next(c for c in runner.calls if c[0] == "report")
    # The join hands on the branches' outputs in the order state_ids names them.
    assert json.loads(report_call[1]) == [
        {"frontend": "frontend done after the plan"},
        {"backend": "backend done after the plan"},
    ]
    assert report_call[2] == {"frontend": "frontend done after the plan", "backend": "backend done after the plan"}
    report = db.get_state(ex.id, "report")
    assert report is not None and report.status == SUCCEEDED and sorted(report.preceding) == ["backend", "frontend"]
    pairs = [(t.from_state_id, t.to_state_id) for t in db.transitions(ex.id)]
    assert pairs[:2] == [("plan", "frontend"), ("plan", "backend")]
    assert sorted(pairs[2:4]) == [("backend", "report"), ("frontend", "report")] and pairs[4:] == [("report", "end")]
    done = db.get_execution(ex.public_id)
    assert done is not None and done.output is not None and done.output.startswith("report of")


LOOP = """\
recursion_limit: 5
assistants:
  - id: a
states:
  - id: ask
    assistant_id: a
    task: ask
    next: {state_id: check}
  - id: check
    assistant_id: a
    task: check
    next:
      condition: {expression: "done", then: end, otherwise: ask}
"""


def test_a_loop_past_recursion_limit_fails_with_a_clear_error(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="loop", project="demo", yaml_config=LOOP)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    runner = ByTask({"ask": "asked", "check": '{"done": false}'})
    started = time.monotonic()
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == FAILED
    assert time.monotonic() - started < 10
    assert len(runner.calls) == 5  # ask, check, ask, check, ask: the sixth state is not run
    states = db.states(ex.id)
    assert [s.status for s in states] == [SUCCEEDED] * 5 + [FAILED]
    assert states[-1].state_id == "check" and "recursion_limit" in states[-1].error
    done = db.get_execution(ex.public_id)
    assert done is not None and done.status == FAILED and "ran 5 states (recursion_limit)" in done.error
    # Within the limit the same loop ends normally.
    ex2 = service.start_execution(db, wf, user_input="go", created_by={})
    answers = iter(['{"done": false}', '{"done": true}'])
    assert Engine(db, ByTask({"ask": "asked", "check": lambda call: next(answers)}), EchoTools()).run(ex2.public_id) == (
        SUCCEEDED
    )
    assert [s.state_id for s in db.states(ex2.id)] == ["ask", "check", "ask", "check"]


# -- the context store -----------------------------------------------------------------------

CONTEXT = """\
assistants:
  - id: a
states:
  - id: facts
    assistant_id: a
    task: facts
    next: {state_id: named}
  - id: named
    assistant_id: a
    task: named
    next: {state_id: hidden, output_key: summary, reset_keys_in_context_store: [secret]}
  - id: hidden
    assistant_id: a
    task: hidden
    next: {state_id: fresh, store_in_context: false}
  - id: fresh
    assistant_id: a
    task: fresh
    next: {state_id: wiped, clear_context_store: keep_current}
  - id: wiped
    assistant_id: a
    task: wiped
    next: {state_id: last, clear_context_store: true}
  - id: last
    assistant_id: a
    task: last
    next: {state_id: end}
"""


def test_context_store_flags_shape_what_later_states_see(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="context", project="demo", yaml_config=CONTEXT)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    runner = ByTask(
        {
            "facts": '{"owner": "geo team", "secret": "s3"}',  # an object: stored key by key
            "named": '{"words": 12}',  # stored under output_key; `secret` reset
            "hidden": '{"noise": 1}',  # store_in_context: false
            "fresh": '{"kept": true}',  # keep_current: the store is cleared, this output kept
            "wiped": '{"gone": true}',  # true: cleared, this output too
            "last": "done",
        }
    )
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == SUCCEEDED
    seen = {task: context for task, _, context in runner.calls}
    assert seen["facts"] == {}
    assert seen["named"] == {"owner": "geo team", "secret": "s3"}
    assert seen["hidden"] == {"owner": "geo team", "summary": {"words": 12}}
    assert seen["fresh"] == {"owner": "geo team", "summary": {"words": 12}}
    assert seen["wiped"] == {"kept": True}
    assert seen["last"] == {}
    # Transitions record the store as it was after each state.
    stores = [t.context["context_store"] for t in db.transitions(ex.id)]
    assert stores[0] == {"owner": "geo team", "secret": "s3"} and stores[4] == {}


APPEND = """\
assistants:
  - id: a
states:
  - id: list
    assistant_id: a
    task: list
    next: {state_id: item, iter_key: items, include_in_iterator_context: [topic]}
  - id: item
    assistant_id: a
    task: item
    next: {state_id: sum, output_key: notes, append_to_context: true}
  - id: sum
    assistant_id: a
    task: sum
    next: {state_id: end}
"""


def test_append_to_context_collects_iterations_and_iterator_context_filters_keys(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="append", project="demo", yaml_config=APPEND)
    ex = service.start_execution(db, wf, user_input="go", created_by={})
    runner = ByTask(
        {
            "list": '{"items": ["a", "b", "c"], "topic": "letters", "private": "x"}',
            "item": lambda call: f"note on {call.input}",
            "sum": "summed",
        }
    )
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == SUCCEEDED
    items = [c for c in runner.calls if c[0] == "item"]
    assert [c[2] for c in items] == [{"topic": "letters"}] * 3  # only the keys the map shows its items
    summed = next(c for c in runner.calls if c[0] == "sum")
    assert summed[2]["notes"] == ["note on a", "note on b", "note on c"]  # appended, not overwritten
    assert summed[2]["private"] == "x"  # the store itself keeps every key


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("    next: {state_id: end, include_in_llm_history: false}", "states[0].next.include_in_llm_history"),
        ("    next: {state_id: end, clear_prior_messages: true}", "states[0].next.clear_prior_messages"),
        ("    next: {state_id: end, override_task: true}", "states[0].next.override_task"),
        ("    next: {state_id: end, keep_history: true}", "states[0].next.keep_history"),
        ("    result_as_human_message: true\n    next: {state_id: end}", "states[0].result_as_human_message"),
        ("    next: {state_id: end, include_in_iterator_context: [a]}", "states[0].next.include_in_iterator_context"),
    ],
)
def test_codemie_flags_this_server_cannot_honour_are_refused_not_ignored(line: str, key: str) -> None:
    yaml_config = f"assistants:\n  - id: a\nstates:\n  - id: one\n    assistant_id: a\n    task: t\n{line}\n"
    with pytest.raises(ConfigError) as err:
        parse(yaml_config)
    assert f"line 6, {key}" in str(err.value) or f"line 7, {key}" in str(err.value), str(err.value)
    # The defaults, written out, are accepted: a CodeMie export that spells them still loads.
    parse(
        "assistants:\n  - id: a\nstates:\n  - id: one\n    assistant_id: a\n    task: t\n"
        "    next: {state_id: end, include_in_llm_history: true, clear_prior_messages: false}\n"
    )


# -- output_schema ---------------------------------------------------------------------------

SCHEMA = """\
assistants:
  - id: a
states:
  - id: classify
    assistant_id: a
    task: classify
    retry_policy: {max_attempts: 2, initial_interval: 0.01}
    output_schema: |
      {"type": "object", "properties": {"kind": {"enum": ["bug", "feature"]}}, "required": ["kind"]}
    next:
      condition: {expression: "kind == 'bug'", then: fix, otherwise: end}
  - id: fix
    assistant_id: a
    task: fix
    next: {state_id: end}
"""


def test_output_schema_answers_are_parsed_and_mismatches_retried_then_failed(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="schema", project="demo", yaml_config=SCHEMA)
    ok = service.start_execution(db, wf, user_input="go", created_by={})
    # A fenced answer is parsed; the state's output is the JSON value, and the condition reads it.
    fenced = '```json\n{"kind": "bug"}\n```'
    runner = ByTask({"classify": fenced, "fix": lambda call: f"fixing {call.input}"})
    assert Engine(db, runner, EchoTools()).run(ok.public_id) == SUCCEEDED
    assert db.get_state(ok.id, "classify").output == '{"kind": "bug"}'  # type: ignore[union-attr]
    assert runner.calls[-1][:2] == ("fix", '{"kind": "bug"}')
    # A wrong answer, then a right one: the retry policy gives the state its second attempt.
    answers = iter(['{"kind": "question"}', '{"kind": "feature"}'])
    retried = service.start_execution(db, wf, user_input="go", created_by={})
    assert Engine(db, ByTask({"classify": lambda call: next(answers)}), EchoTools()).run(retried.public_id) == SUCCEEDED
    assert db.get_state(retried.id, "classify").output == '{"kind": "feature"}'  # type: ignore[union-attr]
    # Wrong every time: the state fails, saying what did not match and what the answer was.
    bad = service.start_execution(db, wf, user_input="go", created_by={})
    runner = ByTask({"classify": "I think it is a bug"})
    assert Engine(db, runner, EchoTools()).run(bad.public_id) == FAILED
    assert len(runner.calls) == 2
    failed = db.get_state(bad.id, "classify")
    assert failed is not None and failed.status == FAILED
    assert "the answer is not JSON" in failed.error and "I think it is a bug" in failed.error


def test_an_example_output_schema_requires_its_keys_and_types() -> None:
    config = parse(THREE_STATES)
    schema = config.states[0].output_schema
    assert schema is not None
    as_schema = schema_of(schema)
    assert parse_answer('{"colors": ["red"]}', as_schema).value == {"colors": ["red"]}
    assert "colors" in parse_answer('{"colours": ["red"]}', as_schema).error
    assert parse_answer('{"colors": "red"}', as_schema).error
    with pytest.raises(ConfigError, match=r"states\[0\].output_schema: output_schema is not a valid JSON Schema"):
        parse(THREE_STATES.replace("""'{"colors": ["orange","blue"]}'""", """'{"type": 12}'"""))
    with pytest.raises(ConfigError, match="must be a JSON object"):
        parse(THREE_STATES.replace("""'{"colors": ["orange","blue"]}'""", "'[1, 2]'"))


def test_the_readme_workflow_examples_are_valid_definitions() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Workflows", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        parse(block)


class JsonTools:
    def run(self, tool: Any, args: dict[str, Any], input: str, cancel: threading.Event) -> str:
        return json.dumps({"items": [{"title": "first/one", "n": 1}, {"title": "second", "n": 2}], "a/b": {"c": 3}})


@pytest.mark.parametrize(
    ("pointer", "picked"),
    [("/items/0/title", "first/one"), ("/items/1", '{"title": "second", "n": 2}'), ("/a~1b/c", "3"), ("", None)],
)
def test_tool_result_json_pointer_picks_part_of_a_json_result(services: Services, pointer: str, picked: str | None) -> None:
    db = services.store
    yaml_config = (
        f"tools:\n  - id: t\n    tool: get_data_sources\n    tool_result_json_pointer: '{pointer}'\n"
        "states:\n  - id: s\n    tool_id: t\n    next: {state_id: end}\n"
    )
    wf = service.create_workflow(db, name="pointer", project="demo", yaml_config=yaml_config)
    ex = service.start_execution(db, wf, user_input="", created_by={})
    assert Engine(db, Scripted({}), JsonTools()).run(ex.public_id) == SUCCEEDED
    whole = JsonTools().run(None, {}, "", threading.Event())
    assert db.get_execution(ex.public_id).output == (whole if picked is None else picked)  # type: ignore[union-attr]


def test_a_json_pointer_that_finds_nothing_fails_the_tool_state(services: Services) -> None:
    db = services.store
    yaml_config = (
        "tools:\n  - id: t\n    tool: get_data_sources\n    tool_result_json_pointer: /items/7\n"
        "states:\n  - id: s\n    tool_id: t\n    next: {state_id: end}\n"
    )
    wf = service.create_workflow(db, name="pointer-miss", project="demo", yaml_config=yaml_config)
    ex = service.start_execution(db, wf, user_input="", created_by={})
    assert Engine(db, Scripted({}), JsonTools()).run(ex.public_id) == FAILED
    assert "has nothing at '7'" in db.get_state(ex.id, "s").error  # type: ignore[union-attr]
    assert (
        Engine(db, Scripted({}), EchoTools()).run(service.start_execution(db, wf, user_input="", created_by={}).public_id)
        == FAILED
    )  # a result that is not JSON
    with pytest.raises(ConfigError, match=r"line 4, tools\[0\].tool_result_json_pointer: a JSON pointer starts with /"):
        parse(yaml_config.replace("/items/7", "items"))


DYNAMIC = """\
assistants:
  - id: a
states:
  - id: facts
    assistant_id: a
    task: facts
    next: {state_id: use}
  - id: use
    assistant_id: a
    task: "Write to {{ owner }} about {{items}}"
    resolve_dynamic_values_in_prompt: true
    next: {state_id: end}
"""


def test_resolve_dynamic_values_in_prompt_fills_the_task_from_the_context_store(services: Services) -> None:
    db = services.store
    wf = service.create_workflow(db, name="dynamic", project="demo", yaml_config=DYNAMIC)
    ex = service.start_execution(db, wf, user_input="", created_by={})
    runner = ByTask({"facts": '{"owner": "geo team", "items": [1, 2]}', "Write to geo team about [1, 2]": "sent"})
    assert Engine(db, runner, EchoTools()).run(ex.public_id) == SUCCEEDED
    assert [c[0] for c in runner.calls] == ["facts", "Write to geo team about [1, 2]"]
    # A key the store does not have fails the state, naming it (no placeholder reaches the model).
    missing = service.start_execution(db, wf, user_input="", created_by={})
    runner = ByTask({"facts": '{"owner": "geo team"}'})
    assert Engine(db, runner, EchoTools()).run(missing.public_id) == FAILED
    assert "{{items}}, which is not in the context store" in db.get_state(missing.id, "use").error  # type: ignore[union-attr]
    assert len(runner.calls) == 1
