"""Batch throughput: items answered per second by a real ``repolens serve`` (embedded SQLite) with
1 and 4 item slots, against the test suite's stand-in model with a set time to first token.

    python bench/batches.py                        # 200 items, 1 and 4 slots, 0.25 s model latency
    python bench/batches.py --items 500 --latency 1.0 --slots 1,4,8 --out /tmp/batches.md

Each run starts a fresh server (its own data dir), makes one agent, submits one batch and waits
for it to complete; the figure is items / (submit to completed). The model's latency dominates a
real batch, so the stand-in waits ``--latency`` seconds before each answer, which is what slots
overlap. The machine's load average is read before and after each run: on a shared machine other
work takes the cores the server needs, and the figures mean little without it. A benchmark, not a
test: it writes a Markdown report (``--out``, bench/BATCHES.md) and fails on nothing but errors.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from load import git_commit, machine_line  # noqa: E402

from llmserver import standin_llm  # noqa: E402  # the suite's stand-in model, after the path is set
from server import start_server  # noqa: E402

POLL_S = 0.1
DEFAULT_OUT = REPO / "bench" / "BATCHES.md"


def run_once(items: int, slots: int, llm_url: str) -> float:
    """Items per second for one batch on a fresh server with ``slots`` item slots."""
    import httpx

    home = Path(tempfile.mkdtemp(prefix="batchbench-")) / "home"
    env = {"REPOLENS_LLM_BASE_URL": llm_url, "REPOLENS_LLM_MODEL": "standin-1", "REPOLENS_BATCH_SLOTS": str(slots)}
    server = start_server(home, env=env)
    try:
        with server.client() as c:
            made = c.post(
                "/code-assistant-api/v1/assistants",
                json={"name": "Bench", "description": "d", "system_prompt": "REPLY_WITH: ok {question}", "project": "b"},
            )
            agent = made.json()["assistantId"]
            requests = [{"custom_id": f"r{n}", "message": f"question {n}"} for n in range(items)]
            started = time.monotonic()
            batch = c.post("/api/v1/batches", json={"agent_id": agent, "requests": requests}).json()["data"]
            while True:
                got = c.get(f"/api/v1/batches/{batch['id']}").json()["data"]
                if got["status"] == "completed":
                    break
                time.sleep(POLL_S)
            elapsed = time.monotonic() - started
            if got["completed_requests"] != items:
                raise SystemExit(f"only {got['completed_requests']} of {items} items completed: {got}")
    except httpx.HTTPError as exc:
        raise SystemExit(f"server error: {exc}") from exc
    finally:
        server.stop()
    return items / elapsed


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def report(args: argparse.Namespace, command: str, rows: list[tuple[int, float, str, str]]) -> str:
    """The Markdown report of one invocation."""
    day = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Batch throughput",
        "",
        f"`{command}` on {day}, commit {git_commit()}.",
        "",
        f"- Machine: {machine_line()}; {os.cpu_count()} cores shared with whatever else runs on it.",
        f"- Items: {args.items} per batch, one batch per run, a fresh `repolens serve` (embedded SQLite) per run.",
        f"- Model: the test suite's stand-in (`tests/llmserver.py`) waiting {args.latency:g} s before each answer "
        "(a model's time to first token), so the model-bound ideal is slots / latency items/s.",
        "- Figure: items / seconds from submit to `completed` (polled every 0.1 s).",
        "- Load: the 1 / 5 / 15 minute load averages before and after each run; above the core count, other "
        "processes were competing for the CPU the server and its job process need.",
        "",
        "| slots | items/s | ideal (slots / latency) | load before | load after |",
        "|---:|---:|---:|---|---|",
    ]
    for slots, rate, before, after in rows:
        ideal = f"{slots / args.latency:.1f}" if args.latency else "n/a"
        lines.append(f"| {slots} | {rate:.2f} | {ideal} | {before} | {after} |")
    for slots, rate, _, _ in rows:
        if slots == 1:
            # One slot answers items one after another: what each takes beyond the model's wait
            # is the server's own work per item.
            lines += [
                "",
                f"With 1 slot each item took {1 / rate:.3f} s, {1 / rate - args.latency:.3f} s beyond the model's "
                "wait: the server's own work per item (the agent turn around the model call, recording the chat, "
                "the job's claim and finish writes). More slots overlap the waits; on a machine this small they "
                "then compete for the same two cores.",
            ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--slots", default="1,4", help="comma-separated slot counts")
    parser.add_argument("--latency", type=float, default=0.25, help="the stand-in model's seconds before each answer")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the Markdown report goes")
    args = parser.parse_args()
    command = "python bench/batches.py " + " ".join(sys.argv[1:])
    rows: list[tuple[int, float, str, str]] = []
    with standin_llm() as (llm_url, recorder):
        recorder.latency_s = args.latency
        for slots in (int(s) for s in args.slots.split(",")):
            before = load()
            rate = run_once(args.items, slots, llm_url)
            rows.append((slots, rate, before, load()))
    text = report(args, command.strip(), rows)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
