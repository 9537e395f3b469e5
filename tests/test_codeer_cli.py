"""codeer-cli 0.1.17, unchanged, against a real ``repolens serve``: scope, models and knowledge
bases (upload a folder, list, files, export; the vendor's own export and download checks).

The CLI is installed by the suite in a venv of its own (Python 3.12, ``tests/clients.py``).
Agents, chats and histories are not served yet, so their commands are not run here.
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
    env = {"REPOLENS_LLM_PROVIDER": "openai", "REPOLENS_LLM_BASE_URL": "http://127.0.0.1:9/v1", "REPOLENS_LLM_MODEL": MODEL}
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
