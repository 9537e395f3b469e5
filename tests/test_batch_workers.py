"""Batches on the scale-out shape: a server that only serves, ``repolens worker`` processes that
answer the items (PostgreSQL); kill -9 of the worker mid-batch, another worker finishes it with
every item answered once."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import psycopg

from llmserver import standin_llm
from pgcluster import PgCluster
from server import start_server
from test_codeer_batches import FAST_RETRIES, all_results, make_agent, submit, wait_for
from test_scaleout import Workers


def test_kill_9_of_a_worker_mid_batch_another_worker_finishes_each_item_once(pg_cluster: PgCluster, tmp_path: Path) -> None:
    url = pg_cluster.new_database()
    with standin_llm() as (llm_url, recorder):
        recorder.latency_s = 0.1
        env = {
            "REPOLENS_DATABASE_URL": url,
            "REPOLENS_INDEX_WORKERS": "0",  # this replica only serves: workers answer the items
            "REPOLENS_LLM_BASE_URL": llm_url,
            "REPOLENS_LLM_MODEL": "standin-1",
            **FAST_RETRIES,
        }
        server = start_server(tmp_path / "home", env=env)
        workers = Workers(server.env, tmp_path)
        try:
            with server.client() as c:
                agent = make_agent(c)
                messages = [f"worker question {n}" for n in range(40)]
                batch = submit(c, agent, messages)
                workers.start(1)
                deadline = time.monotonic() + 90
                while c.get(f"/api/v1/batches/{batch['id']}").json()["data"]["completed_requests"] < 8:
                    assert time.monotonic() < deadline, "the worker answered nothing"
                    time.sleep(0.05)
                victim = workers.procs[0]
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                workers.start(1)  # the job comes back to the new worker once its lease runs out
                done = wait_for(c, batch["id"], ("completed",), timeout=120)
                rows = all_results(c, batch["id"])
        finally:
            workers.stop()
            server.stop()
    assert done["completed_requests"] == 40 and done["failed_requests"] == 0
    assert [r["response"] for r in rows] == [f"answer to {m}" for m in messages]
    assert any(r["attempts"] == 2 for r in rows)  # in flight at the kill, answered again by the new worker
    with psycopg.connect(url) as conn:
        keys = Counter(
            str(r[0])
            for r in conn.execute(
                "SELECT message_id FROM messages WHERE role = 'assistant' AND message_id LIKE 'batch-item-%'"
            )
        )
        attempts = [int(r[0]) for r in conn.execute("SELECT attempts FROM jobs WHERE kind = 'batch'")]
    assert sorted(keys.values()) == [1] * 40  # every item's answer recorded once
    assert max(attempts) == 2  # the killed worker's job ran again, on the new worker
