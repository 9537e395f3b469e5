"""codeer-cli 0.1.17, unchanged, against a real ``repolens serve`` with the scripted stand-in
model: scope, models, knowledge bases (upload a folder, list, files, export; the vendor's own
export and download checks), agents (apply, list, get, versions, diff, publish, impact) and
histories (create with a streamed answer, send, list, get, conversations).

The CLI is installed by the suite in a venv of its own (Python 3.12, ``tests/clients.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clients import client_venv
from llmserver import standin_llm
from server import Server, running_server

pytestmark = pytest.mark.backends

CLIENT = "codeer-cli==0.1.17"
CLIENT_PYTHON = "3.12"  # the CLI needs >= 3.11 (specs/clients.md)
COMMAND_TIMEOUT_S = 120  # `kb upload` polls every 3 s until the files are indexed
MODEL = "scripted-model"
FOLDER = {
    "guide.md": "# Handbook\n\nHow the team works.\n\n## Deploys\n\nDeploys run on Tuesdays after review.\n",
    "greeter.py": 'def greet(name: str) -> str:\n    """Say hello to someone."""\n    return f"hello {name}"\n',
    "prices.csv": "item,price\ncart,10\nbasket,4\n",
}


@pytest.fixture(scope="module")
def codeer() -> Path:
    """The ``codeer`` executable of the client's venv."""
    return client_venv("codeer-cli", [CLIENT], python=CLIENT_PYTHON) / "codeer"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, module_backend: str) -> Iterator[Server]:
    with standin_llm() as (llm_url, _):
        env = {"REPOLENS_LLM_PROVIDER": "openai", "REPOLENS_LLM_BASE_URL": llm_url, "REPOLENS_LLM_MODEL": MODEL}
        with running_server(tmp_path_factory.mktemp("codeer-cli") / "home", env=env) as running:
            yield running


def run(codeer: Path, server: Server, tmp: Path, *args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    """One CLI command outside any project, with a home of its own (no profiles read)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp / "home"),
        "CODEER_API_BASE": server.url,
        "CODEER_API_KEY": server.admin_key if key is None else key,
    }
    (tmp / "home").mkdir(exist_ok=True)
    return subprocess.run(
        [str(codeer), "--outside-project", *args],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def output(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, f"exit {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    return json.loads(done.stdout)


def test_check_resolves_workspace_and_organization(codeer: Path, server: Server, tmp_path: Path) -> None:
    report = output(run(codeer, server, tmp_path, "check", "--json"))
    with server.client() as client:
        profile = client.get("/api/v1/external/me").json()["data"]["profile"]
    assert report["status"] == "ok", report
    assert report["auth"]["ok"] is True
    assert report["workspace"] == {"ok": True, "id": profile["default_workspace_id"], "name": "default"}
    assert report["organization"] == {"ok": True, "id": profile["default_organization_id"]}


def test_a_bad_key_is_an_auth_failure(codeer: Path, server: Server, tmp_path: Path) -> None:
    done = run(codeer, server, tmp_path, "check", "--json", key="ca_1234567890123_" + "x" * 43)
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "fail" and report["auth"]["ok"] is False
    # Any other command: the CLI's AuthError (401/403), exit code 3.
    listed = run(codeer, server, tmp_path, "kb", "list", key="not-a-key")
    assert listed.returncode == 3, listed.stdout + listed.stderr
    assert "Invalid or missing API key" in listed.stderr


def test_model_list_shows_the_configured_model(codeer: Path, server: Server, tmp_path: Path) -> None:
    models = output(run(codeer, server, tmp_path, "model", "list"))
    assert models == [{"display_name": MODEL, "model_id": MODEL, "provider": "openai", "model_type": "text"}]
    assert output(run(codeer, server, tmp_path, "model", "list", "--type", "image")) == []


def test_kb_upload_list_files_export_and_download(codeer: Path, server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    for name, text in FOLDER.items():
        (folder / name).write_text(text)

    uploaded = output(run(codeer, server, tmp_path, "kb", "upload", "--dir", str(folder), "--name", "Handbook"))
    kb_id = uploaded["kb_id"]
    assert sorted(uploaded["name_to_id"]) == sorted(FOLDER)
    assert len(uploaded["node_ids"]) == len(FOLDER)

    bases = output(run(codeer, server, tmp_path, "kb", "list"))
    (base,) = [b for b in bases if b["name"] == "Handbook"]
    assert base["id"] == kb_id and base["type"] == "FOLDER" and base["children_count"] == len(FOLDER)

    files = output(run(codeer, server, tmp_path, "kb", "files", "--kb-id", kb_id))
    assert sorted(f["name"] for f in files) == sorted(FOLDER)
    assert {f["status"] for f in files} == {"READY"}, files
    assert all(f["type"] == "FILE" and isinstance(f["snapshot_object_id"], int) for f in files)

    out = tmp_path / "exported"
    exported = output(run(codeer, server, tmp_path, "kb", "export", "--node-id", kb_id, "--dir", str(out)))
    assert exported["complete"] is True and exported["exported_count"] == len(FOLDER), exported
    # The CLI names every snapshot *.md; the text is the uploaded text, byte for byte.
    for name, text in FOLDER.items():
        local = name if name.endswith(".md") else f"{name}.md"
        assert (out / local).read_text() == text

    # The vendor's own strict readers: export (one snapshot for metadata, text and FAQs) and
    # download (snapshot header, exact Content-Length, size and sha256 from the metadata).
    guide = uploaded["name_to_id"]["guide.md"]
    with server.client() as client:
        snapshot = client.get(f"/api/v1/external/knowledge-bases/files/{guide}").json()["data"]["snapshot_object_id"]
        faq = client.post(
            "/api/v1/external/context-object-faqs",
            json={"context_object_id": snapshot, "question": "When do deploys run?", "ranges": []},
        )
        assert faq.status_code == 200, faq.text
    script = (
        "import hashlib, json, sys\n"
        "from codeer_cli.client import CodeerClient\n"
        "from codeer_cli.resource_exports import knowledge, original\n"
        "client = CodeerClient.from_env()\n"
        "value = knowledge(client, sys.argv[1])\n"
        "content, receipt = original(client, value['metadata'], node_id=sys.argv[1])\n"
        "print(json.dumps({'faqs': [f['question'] for f in value['faqs']], 'sha': hashlib.sha256(content).hexdigest(),"
        " 'verification': receipt['verification'], 'text': value['snapshot']['content']}))\n"
    )
    done = subprocess.run(
        [str(codeer.with_name("python")), "-c", script, guide],
        env={"HOME": str(tmp_path), "CODEER_API_BASE": server.url, "CODEER_API_KEY": server.admin_key},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr
    checked = json.loads(done.stdout)
    assert checked["faqs"] == ["When do deploys run?"]
    assert checked["sha"] == hashlib.sha256(FOLDER["guide.md"].encode()).hexdigest()
    assert checked["verification"] == "size_digest_verified"
    assert checked["text"] == FOLDER["guide.md"]


def test_agents_and_histories_through_the_cli(codeer: Path, server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "leave.md").write_text("# Leave\n\n## Vacation\n\nEveryone gets twenty-eight vacation days a year.\n")
    kb_id = output(run(codeer, server, tmp_path, "kb", "upload", "--dir", str(folder), "--name", "Policies"))["kb_id"]

    # agent apply: create (version 1, a draft), then a full replacement (version 2, a draft)
    payload = tmp_path / "agent.json"
    tool = {"id": "kb-1", "type": "knowledge_base", "name": "Policies", "knowledge_node_ids": [kb_id]}
    agent = {"name": "Policy bot", "system_prompt": "Answer from the policies.", "unified_tools": [tool], "llm_model": MODEL}
    payload.write_text(json.dumps(agent))
    created = output(run(codeer, server, tmp_path, "agent", "apply", "--payload", str(payload)))
    agent_id = created["agent_id"]
    assert created["version_number"] == 1 and created["status"] == "draft"
    payload.write_text(json.dumps({**agent, "system_prompt": "Answer from the policies, briefly."}))
    updated = output(
        run(
            codeer,
            server,
            tmp_path,
            "agent",
            "apply",
            "--payload",
            str(payload),
            "--agent-id",
            agent_id,
            "--note",
            "briefer",
        )
    )
    assert updated == {"agent_id": agent_id, "history_id": updated["history_id"], "version_number": 2, "status": "draft"}

    listed = output(run(codeer, server, tmp_path, "agent", "list"))
    (row,) = [a for a in listed if a["id"] == agent_id]
    assert row["name"] == "Policy bot" and row["tool_count"] == 1 and row["latest_version_number"] == 2
    got = output(run(codeer, server, tmp_path, "agent", "get", agent_id, "--full"))
    assert got["system_prompt"] == "Answer from the policies, briefly." and got["unified_tools"] == [tool]
    versions = output(run(codeer, server, tmp_path, "agent", "versions", "--agent", agent_id))
    assert [(v["version_number"], v["status"], v["version_note"]) for v in versions] == [
        (2, "draft", "briefer"),
        (1, "draft", "created"),
    ]
    diff = run(codeer, server, tmp_path, "agent", "diff", "--agent", agent_id, "--from-version", "1", "--to-version", "2")
    assert diff.returncode == 0, diff.stderr
    assert "+Answer from the policies, briefly." in diff.stdout and "# tools unchanged" in diff.stdout
    dry = output(run(codeer, server, tmp_path, "agent", "publish", "--agent", agent_id, "--version", "2", "--dry-run"))
    assert dry["dry_run"] is True and dry["target"]["version_number"] == 2
    published = output(run(codeer, server, tmp_path, "agent", "publish", "--agent", agent_id, "--version", "2"))
    assert published["response"]["status"] == "published"
    assert output(run(codeer, server, tmp_path, "agent", "get", agent_id))["published_version_number"] == 2
    assert output(run(codeer, server, tmp_path, "agent", "impact", "--agent", agent_id))["downstream_agents"] == []

    # history create: a chat whose streamed answer searches the knowledge base and names its file
    question = 'How many vacation days?\nCALL semantic_search {"query": "vacation days"}'
    out = tmp_path / "created.json"
    made = output(
        run(
            codeer,
            server,
            tmp_path,
            "history",
            "create",
            "--agent",
            agent_id,
            "--message",
            question,
            "--user",
            "u-1",
            "--out",
            str(out),
        )
    )
    history_id = made["history_id"]
    assert isinstance(history_id, int) and made["message_count"] == 1 and made["part_count"] == 2
    artifact = json.loads(out.read_text())
    (turn,) = artifact["messages"]
    assert turn["completed"] is True and "leave.md" in turn["final_text"], turn["final_text"]
    assert [p["part_kind"] for p in artifact["conversation_parts"]] == ["user-prompt", "text"]

    sent = output(run(codeer, server, tmp_path, "history", "send", str(history_id), "--message", "Thanks, and sick days?"))
    assert sent["external_user_id"] == "u-1" and sent["agent_id"] == agent_id and sent["part_count"] == 4

    histories = output(run(codeer, server, tmp_path, "history", "list", "--agent", agent_id))
    assert [(h["id"], h["agent_id"], h["external_user_id"]) for h in histories] == [(history_id, agent_id, "u-1")]
    one = output(run(codeer, server, tmp_path, "history", "get", str(history_id)))
    assert one["id"] == history_id and one["agent_name"] == "Policy bot"
    parts_file = tmp_path / "parts.json"
    summary = output(run(codeer, server, tmp_path, "history", "conversations", str(history_id), "--out", str(parts_file)))
    assert summary["export_contract"] == "history-parts-v1" and summary["turn_count"] == 2
    kinds = [p["part_kind"] for p in summary["parts"]]
    assert kinds == ["user-prompt", "tool-call", "tool-return", "text", "user-prompt", "text"], kinds
    assert json.loads(parts_file.read_text())["part_revision"] == summary["part_revision"]
