"""The web UI (issue 22) in a real browser: Playwright driving Debian's chromium against a real
``repolens serve`` on an indexed fixture, plus the security properties over plain HTTP.

Chromium is the system one (``/usr/bin/chromium``, installed by ``.ci/run``); Playwright's own
browser downloads are never used. axe-core comes from the npm registry into a temp dir and is
injected into pages of a context that bypasses the CSP (the page's own policy would block it, as
it blocks every inline script).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from conftest import GEO_CODE, REPO_ROOT, commit_tree
from llmserver import standin_llm
from repolens.access.identity import MAX_FAILED_SIGN_INS
from server import Server, running_server, signed_in_client, start_server, wait_for_job

CHROMIUM = "/usr/bin/chromium"
AXE_VERSION = "4.14.1"
# The two screenshots the README shows are rewritten only when asked for (they differ on every
# run: the fixture's commit hash and times); otherwise they go to a temp dir like the others.
UPDATE_SCREENSHOTS = os.environ.get("REPOLENS_UPDATE_SCREENSHOTS") == "1"
README_SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
FIRST_PAGE_BUDGET = 150_000  # bytes transferred for the first page, everything it loads included
TIMEOUT_MS = 20_000  # per Playwright wait: generous for a loaded 2-core CI machine
PHONE = {"width": 390, "height": 844}
expect.set_options(timeout=TIMEOUT_MS)
LAPTOP = {"width": 1366, "height": 900}

# A file whose text tries every way into the page: it must show as text and run nothing.
XSS_CODE = {
    "web/evil.js": (
        '// <img src=x onerror="window.__pwned = 1">\n'
        'const payload = "<script>window.__pwned = 2</script>";\n'
        "function render() {\n"
        "  return '<svg onload=\"window.__pwned = 3\"></svg>';\n"
        "}\n"
    ),
    "web/README.md": "# Evil\n\n<script>window.__pwned = 4</script>\n\n[click](javascript:window.__pwned=5)\n",
}
OTHER_CODE = {
    "vault/secret.py": 'def launch_codes() -> str:\n    """Only the other tenant sees this."""\n    return "0000"\n'
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    """A server with ``geo`` (+ the XSS file) and ``vault`` indexed; local paths allowed under ``repos``."""
    base = tmp_path_factory.mktemp("webui")
    repos = base / "repos"
    commit_tree(repos / "geo", {**GEO_CODE, **XSS_CODE})
    commit_tree(repos / "vault", OTHER_CODE)
    commit_tree(repos / "extra", {"extra/tool.py": "def helper() -> int:\n    return 42\n"})
    with (base / "server.log").open("w") as log:  # its JSON log, the access log with it
        server = start_server(base / "home", env={"REPOLENS_ALLOWED_ROOTS": str(repos)}, stderr=log)
        try:
            with server.client() as c:
                for name in ("geo", "vault"):
                    made = c.post("/api/datasources", json={"path": str(repos / name), "name": name})
                    assert made.status_code == 202, made.text
                    assert wait_for_job(c, made.json()["job"]["id"])["state"] == "Ready"
            yield server, repos
        finally:
            server.stop()


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM)
    yield browser
    browser.close()


class Console:
    """What the page reported: CSP violations and script errors must stay empty."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=LAPTOP)
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


CONSOLES: dict[int, Console] = {}


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    console = CONSOLES[id(page)] = Console(page)
    yield page
    del CONSOLES[id(page)]
    assert console.problems == [], console.problems


def expect_error_page(page: Page, status: int) -> None:
    """The browser logs an error page's status as a console error: this one was asked for."""
    problems = CONSOLES[id(page)].problems
    wanted = f"status of {status}"
    problems[:] = [p for p in problems if wanted not in p]


def sign_in(page: Page, server: Server, key: str | None = None, *, to: str = "/ui/search") -> None:
    page.goto(f"{server.url}{to}")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.get_by_label("API key").fill(key or server.admin_key)
    page.get_by_role("button", name="Sign in with the key").click()
    expect(page).to_have_url(re.compile(re.escape(to)))


def shot(page: Page, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=False)


def readme_shot(page: Page, name: str, tmp_path: Path) -> None:
    """A screenshot the README shows: into docs/ with REPOLENS_UPDATE_SCREENSHOTS=1, else a temp dir."""
    shot(page, (README_SCREENSHOTS if UPDATE_SCREENSHOTS else tmp_path) / name)


# -- the flows -------------------------------------------------------------------------------------


def test_sign_in_add_a_repository_and_watch_it_index(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, repos = world
    sign_in(page, server, to="/ui/sources")
    page.get_by_label("Git URL or local folder").fill(str(repos / "extra"))
    page.get_by_role("button", name="Add and index").click()
    row = page.locator("tr[data-source]", has_text="extra")
    expect(row).to_have_count(1)
    # The page is not reloaded: its script polls the progress and turns the state to Ready.
    expect(row.locator('[data-field="state"]')).to_have_text("Ready")
    expect(row.locator('[data-field="progress"]')).to_contain_text("100")
    expect(row.locator('[data-field="files"]')).to_have_text("1")
    shot(page, tmp_path / "sources.png")
    # a workspace over it
    page.get_by_label("Name", exact=True).last.fill("tools-and-geo")
    page.get_by_label("extra", exact=True).check()
    page.get_by_label("geo", exact=True).check()
    page.get_by_role("button", name="Create workspace").click()
    expect(page.locator("main")).to_contain_text("tools-and-geo")
    # re-sync queues a second job, which the jobs page lists
    row.get_by_role("button", name="Re-sync extra").click()
    expect(row.locator('[data-field="state"]')).to_have_text("Ready")
    page.goto(page.url.replace("/ui/sources", "/ui/admin/jobs"))
    expect(page.locator("table.jobs tr", has_text="extra")).to_have_count(2)
    # remove, after typing the name; a wrong name removes nothing
    page.go_back()
    row.get_by_role("link", name="Remove extra").click()
    expect(page.locator("h1")).to_contain_text("Remove repository")
    page.get_by_label("to confirm").fill("not-extra")
    page.get_by_role("button", name="Remove").click()
    expect(page.locator(".error")).to_contain_text("type the name")
    expect_error_page(page, 400)
    page.go_back()
    page.get_by_label("to confirm").fill("extra")
    page.get_by_role("button", name="Remove").click()
    expect(page).to_have_url(re.compile(r"/ui/sources$"))
    expect(page.locator("tr[data-source]", has_text="extra")).to_have_count(0)
    expect(page.locator("tr[data-source]", has_text="geo")).to_have_count(1)


def test_search_and_open_a_result_at_its_lines(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    sign_in(page, server)
    page.evaluate("() => document.activeElement.blur()")  # the box has autofocus; "/" must find it anyway
    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type("total_area")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"q=total_area"))  # the query is in the URL: shareable
    first = page.locator("#results .result").first
    expect(first.locator(".ident")).to_have_text("geo::geo/shapes.py::total_area")
    expect(first.locator(".kind")).to_have_text("Symbol")
    expect(first).to_contain_text("geo/shapes.py:21-23")
    expect(first.locator(".line.hit").first).to_contain_text("total_area")  # matched line marked
    page.locator("#results .result").nth(1).scroll_into_view_if_needed()
    readme_shot(page, "search.png", tmp_path)
    page.keyboard.press("j")  # select the first result, then open it
    expect(first).to_have_class(re.compile("selected"))
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/code\?id=geo%3A%3Ageo%2Fshapes.py%3A%3Atotal_area"))
    expect(page.locator("h1.path")).to_contain_text("total_area")
    marked = page.locator("#code tr.hit")
    expect(marked.first).to_have_attribute("id", "L21")
    expect(marked.first).to_contain_text("def total_area")
    expect(marked.first).to_be_in_viewport()


def _result_paths(page: Page) -> list[str]:
    """The ``path:lines`` line of every result on the page, in order."""
    heads = page.locator("#results .result > .muted").all_text_contents()
    return [h.split(":", 1)[0].strip() for h in heads]


def test_search_filters_narrow_the_results_and_k_moves_back(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    sign_in(page, server, to="/ui/search?q=area&source=geo")
    results = page.locator("#results .result")
    expect(results.first).to_be_visible()
    unfiltered = _result_paths(page)
    assert {"geo/shapes.py", "geo/report.py", "web/evil.js"} <= set(unfiltered), unfiltered
    # A path prefix, typed into the form: only files under it, and it is in the URL.
    page.get_by_label("Path prefix").fill("geo/report")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(re.compile(r"path=geo%2Freport"))
    expect(results.first.locator(".ident")).to_contain_text("geo/report.py")
    narrowed = _result_paths(page)
    assert narrowed and set(narrowed) == {"geo/report.py"} and len(narrowed) < len(unfiltered), narrowed
    # A language instead: the same query over JavaScript only finds the one .js file.
    page.get_by_label("Path prefix").fill("")
    page.get_by_label("Language").select_option("javascript")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(re.compile(r"lang=javascript"))
    expect(results.first.locator(".ident")).to_contain_text("web/evil.js")
    assert set(_result_paths(page)) == {"web/evil.js"}
    page.get_by_label("Language").select_option("python")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page).to_have_url(re.compile(r"lang=python"))
    expect(results.first).to_be_visible()
    assert "web/evil.js" not in _result_paths(page) and set(_result_paths(page)) <= {"geo/shapes.py", "geo/report.py"}
    shot(page, tmp_path / "search-filtered.png")
    # j moves down, k moves back up (and stops at the first), Enter opens the selected one.
    page.evaluate("() => document.activeElement.blur()")
    for _ in range(3):
        page.keyboard.press("j")
    expect(results.nth(2)).to_have_class(re.compile("selected"))
    page.keyboard.press("k")
    expect(results.nth(1)).to_have_class(re.compile("selected"))
    expect(results.nth(2)).not_to_have_class(re.compile("selected"))
    expect(results.nth(1).locator("a.ident")).to_be_focused()
    for _ in range(3):
        page.keyboard.press("k")
    expect(results.first).to_have_class(re.compile("selected"))
    expect(results.nth(1)).not_to_have_class(re.compile("selected"))
    page.keyboard.press("j")
    target = results.nth(1).get_attribute("data-href") or ""
    assert target.startswith("/ui/code?id=")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(target.split("#", 1)[0])))


def test_grep_mode_with_a_regex(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    sign_in(page, server)
    page.goto(f"{server.url}/ui/search?q=def%20%5Cw%2B_area&mode=grep&regex=true")
    results = page.locator("#results .result")
    expect(results.first.locator(".ident")).to_have_text("geo::geo/shapes.py")
    expect(results.first.locator(".line.hit")).to_contain_text("def total_area")
    expect(results.first).to_contain_text("geo/shapes.py:21")
    shot(page, tmp_path / "grep.png")


def test_follow_a_caller_in_the_relations_panel(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    sign_in(page, server, to="/ui/code?id=geo%3A%3Ageo%2Fshapes.py%3A%3Atotal_area")
    callers = page.locator('.rel-group[data-relation="IncomingCalls"]')
    expect(callers.locator("h3")).to_contain_text("Callers")
    expect(page.locator(".outline")).to_contain_text("Circle")
    expect(page.locator(".code-head")).to_contain_text("commit")
    readme_shot(page, "code.png", tmp_path)
    callers.get_by_role("link", name="report").click()
    expect(page).to_have_url(re.compile(r"geo%2Freport.py%3A%3Areport"))
    call_site = page.locator("#code tr.hit")
    expect(call_site).to_have_count(1)
    expect(call_site).to_contain_text("total_area([Circle(1.0)")
    # A permalink for a line range: click a line, shift-click another.
    page.locator('#code a[data-line="4"]').click()
    page.locator('#code a[data-line="6"]').click(modifiers=["Shift"])
    expect(page.locator("#code tr.hit")).to_have_count(3)
    expect(page).to_have_url(re.compile(r"lines=4-6"))
    permalink = page.locator("#permalink").get_attribute("href") or ""
    assert "lines=4-6" in permalink and "commit=" in permalink
    page.goto(f"{server.url}{permalink}")
    expect(page.locator("#code tr.hit")).to_have_count(3)
    shot(page, tmp_path / "relations.png")


def test_relations_panel_opens_callees_ancestors_and_descendants(
    world: tuple[Server, Path], page: Page, tmp_path: Path
) -> None:
    server, _ = world
    # ``report`` calls ``Circle`` and ``total_area``: a callee opens at its own lines, not at the
    # line of the call (which is in report.py).
    sign_in(page, server, to="/ui/code?id=geo%3A%3Ageo%2Freport.py%3A%3Areport")
    callees = page.locator('.rel-group[data-relation="OutgoingCalls"]')
    expect(callees.locator("h3")).to_contain_text("Callees")
    expect(callees.get_by_role("link")).to_have_text(["Circle", "total_area"])
    callees.get_by_role("link", name="total_area").click()
    expect(page).to_have_url(re.compile(r"geo%2Fshapes.py%3A%3Atotal_area"))
    marked = page.locator("#code tr.hit")
    expect(marked).to_have_count(3)
    expect(marked.first).to_have_attribute("id", "L21")
    expect(marked.first).to_contain_text("def total_area")
    # ``Circle(Shape)``: its ancestor opens at ``class Shape``, and Shape's descendant at ``class Circle``.
    page.goto(f"{server.url}/ui/code?id=geo%3A%3Ageo%2Fshapes.py%3A%3ACircle")
    ancestors = page.locator('.rel-group[data-relation="Ancestors"]')
    expect(ancestors.locator("h3")).to_contain_text("Ancestors")
    expect(page.locator('.rel-group[data-relation="Descendants"]')).to_have_count(0)  # nothing derives from Circle
    shot(page, tmp_path / "ancestors.png")
    ancestors.get_by_role("link", name="Shape").click()
    expect(page).to_have_url(re.compile(r"geo%2Fshapes.py%3A%3AShape$"))
    expect(page.locator("h1.path")).to_contain_text("Shape")
    expect(page.locator("#code tr.hit").first).to_have_attribute("id", "L4")
    expect(page.locator("#code tr.hit").first).to_contain_text("class Shape")
    expect(page.locator('.rel-group[data-relation="Ancestors"]')).to_have_count(0)  # Shape derives from nothing
    descendants = page.locator('.rel-group[data-relation="Descendants"]')
    expect(descendants.locator("h3")).to_contain_text("Descendants")
    descendants.get_by_role("link", name="Circle").click()
    expect(page).to_have_url(re.compile(r"geo%2Fshapes.py%3A%3ACircle&lines=11"))
    expect(page.locator("#code tr.hit")).to_have_count(1)
    expect(page.locator("#code tr.hit")).to_contain_text("class Circle(Shape)")
    shot(page, tmp_path / "descendants.png")


def _ask(page: Page, question: str) -> None:
    answered = page.locator("#turns .answer.markdown")
    before = answered.count()
    page.get_by_label("Question").fill(question)
    page.get_by_role("button", name="Ask").click()
    expect(answered).to_have_count(before + 1)  # streamed as text, then replaced by the rendering


def test_chat_retrieval_only_and_open_a_citation(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    sign_in(page, server, to="/ui/chat")
    _ask(page, "how is the total area of shapes computed?")
    answer = page.locator("#turns .answer").last
    expect(answer).to_contain_text("Retrieval-only answer")
    expect(page).to_have_url(re.compile(r"/ui/chat/[0-9a-f]{24}$"))
    shot(page, tmp_path / "chat-retrieval.png")
    cite = answer.locator("a.cite").first
    target = cite.get_attribute("href") or ""
    lines = re.search(r"lines=(\d+)-(\d+)", target)
    assert lines, target
    cite.click()
    expect(page).to_have_url(re.compile(r"/ui/code\?"))
    expect(page.locator("#code tr.hit").first).to_have_attribute("id", f"L{lines.group(1)}")


def test_chat_with_a_model_streams_markdown_and_citations(tmp_path: Path, browser: Browser) -> None:
    repos = tmp_path / "repos"
    commit_tree(repos / "geo", GEO_CODE)
    with standin_llm() as (llm_url, recorder):
        env = {"REPOLENS_ALLOWED_ROOTS": str(repos), "REPOLENS_LLM_BASE_URL": llm_url, "REPOLENS_LLM_MODEL": "standin-1"}
        with running_server(tmp_path / "home", env=env) as server:
            with server.client() as c:
                made = c.post("/api/datasources", json={"path": str(repos / "geo"), "name": "geo"})
                assert wait_for_job(c, made.json()["job"]["id"])["state"] == "Ready"
            context = browser.new_context(viewport=LAPTOP)
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            console = Console(page)
            sign_in(page, server, to="/ui/chat")
            _ask(page, "Where is the total area computed?")
            answer = page.locator("#turns .answer").last
            expect(answer).to_contain_text("The answer to")
            expect(answer.locator("code").first).to_be_visible()  # markdown: `identifier` became <code>
            assert "[99]" in (answer.text_content() or "")  # a number never in the prompt is not linked
            expect(answer.locator("a.cite")).to_have_count(2)
            assert recorder.requests, "the model was asked"
            # a follow-up continues the conversation
            _ask(page, "And who calls it?")
            expect(page.locator("#turns .turn.user")).to_have_count(2)
            page.reload()
            expect(page.locator("#turns .turn.user")).to_have_count(2)
            expect(page.locator(".conversations li.current")).to_contain_text("Where is the total area computed?")
            shot(page, tmp_path / "chat-llm.png")
            # rename, then delete
            page.get_by_text("Rename or delete").click()
            page.get_by_label("New title").fill("Areas <b>bold</b>")
            page.get_by_role("button", name="Rename").click()
            expect(page.locator(".conversations li.current")).to_have_text("Areas <b>bold</b>")
            page.locator("#turns .answer").last.locator("a.cite").first.click()
            expect(page.locator("#code tr.hit").first).to_be_visible()
            page.go_back()
            page.get_by_text("Rename or delete").click()
            page.get_by_role("button", name="Delete this conversation").click()
            expect(page).to_have_url(re.compile(r"/ui/chat$"))
            expect(page.locator(".conversations")).not_to_contain_text("Areas")
            assert console.problems == [], console.problems
            context.close()


def test_chat_works_without_script(world: tuple[Server, Path]) -> None:
    server, _ = world
    with signed_in_client(server) as (client, csrf):
        asked = client.post("/ui/chat/ask", data={"csrf": csrf, "question": "where is total_area?", "source": "geo"})
        assert asked.status_code == 303 and re.fullmatch(r"/ui/chat/[0-9a-f]{24}", asked.headers["location"])
        page = client.get(asked.headers["location"])
        assert page.status_code == 200 and "Retrieval-only answer" in page.text and 'class="cite"' in page.text
        assert client.post("/ui/chat/ask", data={"question": "no token"}).status_code == 403
        other = client.get("/ui/chat/0123456789abcdef01234567")
        assert other.status_code == 404


def test_create_and_revoke_a_key_then_sign_out(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    sign_in(page, server, to="/ui/admin/keys")
    page.get_by_label("Name", exact=True).fill("ui-made")
    page.get_by_label("Plan", exact=True).select_option("pro")
    page.get_by_role("button", name="Create key").click()
    minted = page.locator("#minted-key").input_value()
    assert re.fullmatch(r"ca_\d+_[A-Za-z0-9_-]{43}", minted)
    shot(page, tmp_path / "keys.png")
    assert httpx.get(f"{server.url}/api/datasources/all", headers={"Authorization": f"Bearer {minted}"}).status_code == 200
    key_id = minted.split("_")[1]
    page.goto(f"{server.url}/ui/admin/keys")
    assert page.locator("#minted-key").count() == 0  # shown once
    row = page.locator(f'tr[data-key="{key_id}"]')
    row.get_by_role("button", name="Revoke key ui-made").click()
    expect(row).to_contain_text("revoked")
    assert httpx.get(f"{server.url}/api/datasources/all", headers={"Authorization": f"Bearer {minted}"}).status_code == 401
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(f"{server.url}/ui/search")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def cli(server: Server, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``repolens ARGS`` on the server's data (its environment)."""
    exe = Path(sys.executable).with_name("repolens")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "repolens"]
    return subprocess.run([*cmd, *args], env=server.env, input=stdin, capture_output=True, text=True, timeout=120)


def sign_in_as(page: Page, email: str, password: str) -> None:
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_a_local_user_signs_in_searches_and_signs_out(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    made = cli(server, "users", "create", "ada@example.com", "--password-stdin", stdin="ada's password\n")
    assert made.returncode == 0, made.stderr
    page.goto(f"{server.url}/ui/search?q=total_area")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    sign_in_as(page, "ada@example.com", "not ada's password")
    expect(page.get_by_role("alert")).to_have_text("Invalid email or password")
    expect(page.get_by_label("Email")).to_have_value("ada@example.com")  # kept: only the password is retyped
    sign_in_as(page, "ada@example.com", "ada's password")
    expect(page).to_have_url(re.compile(r"/ui/search\?q=total_area$"))  # back where the link pointed
    expect(page.locator(".who")).to_have_text("ada@example.com")
    expect(page.locator("#results .result").first.locator(".ident")).to_have_text("geo::geo/shapes.py::total_area")
    expect(page.get_by_role("link", name="Keys")).to_have_count(0)  # a member, not an admin
    shot(page, tmp_path / "user-search.png")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(f"{server.url}/ui/search")
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))


def test_disabling_a_user_ends_the_session_and_refuses_sign_in(
    world: tuple[Server, Path], page: Page, tmp_path: Path
) -> None:
    server, _ = world
    made = cli(server, "users", "create", "bob@example.com", "--password-stdin", stdin="bob's password\n")
    assert made.returncode == 0, made.stderr
    page.goto(f"{server.url}/ui/sources")
    sign_in_as(page, "bob@example.com", "bob's password")
    expect(page).to_have_url(re.compile(r"/ui/sources$"))
    assert cli(server, "users", "disable", "bob@example.com").returncode == 0
    page.goto(f"{server.url}/ui/search")  # the very next page: the user row is read on every request
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    sign_in_as(page, "bob@example.com", "bob's password")
    expect(page.get_by_role("alert")).to_contain_text("disabled")
    expect(page).to_have_url(re.compile(r"/ui/login\?"))
    shot(page, tmp_path / "disabled-user.png")


def test_failed_sign_ins_are_throttled_with_a_readable_message(world: tuple[Server, Path]) -> None:
    server, _ = world
    with httpx.Client(base_url=server.url, timeout=30) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
        assert token
        form = {"csrf": token.group(1), "email": "mallory@example.com", "password": "guess guess", "next": "/ui/search"}
        answers = [client.post("/ui/login", data=form) for _ in range(MAX_FAILED_SIGN_INS + 1)]
    assert [a.status_code for a in answers[:-1]] == [303] * MAX_FAILED_SIGN_INS
    refused = answers[-1]
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert "Too many failed sign-ins for mallory@example.com. Try again in 15 minutes." in refused.text
    assert 'role="alert"' in refused.text and 'id="email"' in refused.text  # the form, not a bare error
    assert "repolens_session" not in refused.headers.get("set-cookie", "")


def _access_log_line(server: Server, request_id: str) -> dict[str, Any]:
    """The access log's line for ``request_id`` (written just after the response: waited for)."""
    log = server.home.parent / "server.log"
    deadline = time.monotonic() + 10
    while True:
        for line in log.read_text().splitlines():
            if line.startswith("{") and (entry := json.loads(line)).get("request_id") == request_id:
                return dict(entry)
        assert time.monotonic() < deadline, f"no access log line for {request_id}"
        time.sleep(0.05)


def test_the_access_log_names_the_account_a_ui_request_ran_as(world: tuple[Server, Path]) -> None:
    server, _ = world
    made = cli(server, "users", "create", "carol@example.com", "--password-stdin", stdin="carol's password\n")
    assert made.returncode == 0, made.stderr
    user_id = re.search(r"id (\S+)\)", made.stdout)
    assert user_id, made.stdout
    with httpx.Client(base_url=server.url, timeout=30) as client:
        token = re.search(r'name="csrf" value="([^"]+)"', client.get("/ui/login").text)
        assert token
        form = {"csrf": token.group(1), "email": "carol@example.com", "password": "carol's password"}
        assert client.post("/ui/login", data=form, headers={"x-request-id": "ui-user-login"}).status_code == 303
        assert client.get("/ui/search", params={"q": "area"}, headers={"x-request-id": "ui-user-page"}).status_code == 200
        progress = client.get("/ui/sources/progress", headers={"x-request-id": "ui-user-poll"})  # not counted, still named
        assert progress.status_code == 200
    with signed_in_client(server) as (client, _):
        assert client.get("/ui/search", headers={"x-request-id": "ui-key-page"}).status_code == 200
    for request_id in ("ui-user-page", "ui-user-poll"):
        entry = _access_log_line(server, request_id)
        assert entry["key_id"] == f"user-{user_id.group(1)}" and entry["status"] == 200, entry
    assert _access_log_line(server, "ui-key-page")["key_id"] == server.admin_key.split("_")[1]
    assert _access_log_line(server, "ui-user-login")["key_id"] is None  # not signed in yet when it arrived


def test_open_an_assistant_and_stream_a_conversation_with_it(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    assistant = {
        "name": "Geo <b>helper</b>",  # escaped like everything else on the page
        "description": "Answers about geo",
        "system_prompt": "Prefer short answers.",
        "context": [{"context_type": "code", "name": "geo"}],
        "toolkits": [{"toolkit": "Code", "tools": [{"name": "semantic_search"}, {"name": "fetch_artifacts"}]}],
        "shared": True,
    }
    with server.client() as api:
        made = api.post("/code-assistant-api/v1/assistants", json=assistant)
        assert made.status_code == 200, made.text
        assistant_id = made.json()["assistantId"]
    sign_in(page, server, to="/ui/assistants")
    row = page.locator(f'tr[data-assistant="{assistant_id}"]')
    expect(row).to_contain_text("Answers about geo")
    row.get_by_role("link", name="Geo <b>helper</b>").click()
    expect(page.locator("h1")).to_have_text("Geo <b>helper</b>")
    page.get_by_label("Message").fill("total_area of shapes")
    page.get_by_role("button", name="Send").click()
    # Retrieval-only here (no model configured): the turn still streams and ends with citations.
    answer = page.locator("#turns .turn.assistant .answer").last
    expect(answer).to_have_class(re.compile("markdown"))
    expect(page).to_have_url(re.compile(rf"/ui/assistants/{assistant_id}\?conversation=[0-9a-f-]+$"))
    cite = page.locator("#turns a.cite").filter(has_text="total_area").first
    expect(cite).to_be_visible()
    shot(page, tmp_path / "assistant.png")
    page.reload()  # the conversation is stored: the page shows it again
    expect(page.locator("#turns .turn.user .said")).to_have_text("total_area of shapes")
    page.locator("#turns a.cite").filter(has_text="total_area").first.click()
    expect(page).to_have_url(re.compile(r"/ui/code\?id=geo"))
    with server.client() as api:
        assert api.delete(f"/code-assistant-api/v1/assistants/{assistant_id}").status_code == 200
    page.goto(f"{server.url}/ui/assistants/{assistant_id}")
    expect_error_page(page, 404)
    expect(page.locator("h1")).to_have_text("404 · Not found")


PAUSING_FLOW = """\
tools:
  - id: sources
    tool: get_data_sources
states:
  - id: look
    tool_id: sources
    next: {state_id: check}
  - id: check
    tool_id: sources
    interrupt_before: true
    next: {state_id: end}
"""
CODEMIE = "/code-assistant-api/v1"
RUN_TIMEOUT_MS = 60_000  # an execution is a queued job: it waits for the runner's next poll


def test_run_a_workflow_watch_it_pause_and_resume_it(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    with server.client() as api:
        made = api.post(
            f"{CODEMIE}/workflows",
            json={
                "project": "default",
                "name": "Look <i>around</i>",
                "description": "Lists the sources",
                "yaml_config": PAUSING_FLOW,
                "mode": "Sequential",
            },
        )
        assert made.status_code == 200, made.text
        workflow_id = made.json()["data"]["id"]
    sign_in(page, server, to="/ui/workflows")
    row = page.locator(f'tr[data-workflow="{workflow_id}"]')
    expect(row).to_contain_text("Lists the sources")
    row.get_by_role("link", name="Look <i>around</i>").click()
    expect(page.locator("h1")).to_have_text("Look <i>around</i>")
    page.get_by_label("Input").fill("check the <b>sources</b>")
    page.get_by_role("button", name="Run").click()
    expect(page).to_have_url(re.compile(rf"/ui/workflows/{workflow_id}/executions/[0-9a-f-]+$"))
    # The page reloads itself while the execution runs, and stops once it pauses.
    expect(page.locator("#status")).to_have_text("Interrupted", timeout=RUN_TIMEOUT_MS)
    expect(page.locator('li[data-state="look"] .output')).to_contain_text("geo")
    expect(page.locator("pre.said")).to_have_text("check the <b>sources</b>")
    assert page.locator('meta[http-equiv="refresh"]').count() == 0
    shot(page, tmp_path / "execution-paused.png")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#status")).to_have_text("Succeeded", timeout=RUN_TIMEOUT_MS)
    expect(page.locator('li[data-state="check"]')).to_contain_text("Succeeded")
    expect(page.get_by_role("button", name="Abort")).to_have_count(0)
    page.get_by_role("link", name="Look <i>around</i>").click()
    expect(page.locator("table.executions tbody tr").first).to_contain_text("Succeeded")
    with signed_in_client(server) as (client, _csrf):
        forged = client.post(f"/ui/workflows/{workflow_id}/run", data={"input": "no token"})
        assert forged.status_code == 403
        assert client.get("/ui/workflows/not-a-workflow").status_code == 404


def test_layout_at_phone_width_and_in_dark_mode(world: tuple[Server, Path], browser: Browser, tmp_path: Path) -> None:
    server, _ = world
    context = browser.new_context(viewport=PHONE, color_scheme="dark")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    sign_in(page, server, to="/ui/search?q=area")
    expect(page.locator("#results .result").first).to_be_visible()
    fits = page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, "the search page scrolls sideways at phone width"
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(13, 17, 23)", background
    shot(page, tmp_path / "phone-dark.png")
    page.goto(f"{server.url}/ui/code?id=geo%3A%3Ageo%2Fshapes.py%3A%3ACircle")
    fits = page.evaluate("() => document.body.scrollWidth <= window.innerWidth")
    assert fits, "the code page scrolls sideways at phone width (only the code itself may)"
    context.close()


def test_first_page_is_small(world: tuple[Server, Path], browser: Browser, tmp_path: Path) -> None:
    server, _ = world
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    page.goto(f"{server.url}/")
    page.wait_for_load_state("networkidle")
    # What crossed the wire (headers and encoded bodies), as the browser measured it.
    sizes: dict[str, int] = page.evaluate(
        """() => Object.fromEntries([...performance.getEntriesByType('navigation'),
                                      ...performance.getEntriesByType('resource')].map(e => [e.name, e.transferSize]))"""
    )
    assert any(u.endswith("/ui/static/app.css") for u in sizes) and any(u.endswith("/ui/static/app.js") for u in sizes), (
        sizes
    )
    assert all(size > 0 for size in sizes.values()), sizes
    assert sum(sizes.values()) < FIRST_PAGE_BUDGET, sizes
    shot(page, tmp_path / "login.png")
    context.close()


# -- accessibility ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def axe_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    npm = shutil.which("npm")
    assert npm, "npm is needed to fetch axe-core for the accessibility check (.ci/run installs it)"
    where = tmp_path_factory.mktemp("axe")
    subprocess.run(
        [npm, "install", "--prefix", str(where), "--no-audit", "--no-fund", "--silent", f"axe-core@{AXE_VERSION}"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    script = where / "node_modules" / "axe-core" / "axe.min.js"
    assert script.is_file()
    return script


def _violations(page: Page, axe: Path) -> list[dict[str, Any]]:
    page.add_script_tag(path=str(axe))
    found: list[dict[str, Any]] = page.evaluate(
        """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
             .map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map(n => n.html)}))"""
    )
    return [v for v in found if v["impact"] in ("serious", "critical")]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_accessibility_violations(
    world: tuple[Server, Path], browser: Browser, axe_script: Path, scheme: str, tmp_path: Path
) -> None:
    server, _ = world
    # The page's CSP rightly refuses the injected checker, so this context bypasses it.
    context = browser.new_context(viewport=LAPTOP, bypass_csp=True, color_scheme=scheme)  # type: ignore[arg-type]  # a Literal
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    with server.client() as api:  # a workflow and an execution of it, for their pages
        made = api.post(
            f"{CODEMIE}/workflows",
            json={"project": "default", "name": f"Axe {scheme}", "yaml_config": PAUSING_FLOW, "mode": "Sequential"},
        )
        workflow_id = made.json()["data"]["id"]
        execution_id = api.post(f"{CODEMIE}/workflows/{workflow_id}/executions", json={"user_input": "go"}).json()["id"]
        # Checked once paused: a running execution's page reloads itself (a meta refresh, which
        # axe rightly flags; the page says so and it stops once the execution pauses or ends).
        deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
        while (
            api.get(f"{CODEMIE}/workflows/{workflow_id}/executions/{execution_id}").json()["overall_status"] != "Interrupted"
        ):
            assert time.monotonic() < deadline, "the execution never paused"
            time.sleep(0.2)
    page.goto(f"{server.url}/ui/login")
    problems = {"login": _violations(page, axe_script)}
    sign_in(page, server, to="/ui/search?q=area")
    pages = [
        "/ui/workflows",
        f"/ui/workflows/{workflow_id}",
        f"/ui/workflows/{workflow_id}/executions/{execution_id}",
        "/ui/search?q=area",
        "/ui/search?q=area&mode=grep",
        "/ui/code?id=geo%3A%3Ageo%2Fshapes.py%3A%3Atotal_area",
        "/ui/sources",
        "/ui/chat",
        "/ui/assistants",
        "/ui/admin/keys",
        "/ui/admin/jobs",
    ]
    for path in pages:
        page.goto(f"{server.url}{path}")
        problems[path] = _violations(page, axe_script)
    shot(page, tmp_path / f"axe-{scheme}.png")  # the last page checked, in this scheme
    context.close()
    serious = {k: v for k, v in problems.items() if v}
    assert not serious, json.dumps(serious, indent=1)


# -- security ---------------------------------------------------------------------------------------


def test_repository_text_renders_inert(world: tuple[Server, Path], page: Page, tmp_path: Path) -> None:
    server, _ = world
    sign_in(page, server, to="/ui/code?id=geo%3A%3Aweb%2Fevil.js")
    expect(page.locator("#code")).to_contain_text('<img src=x onerror="window.__pwned = 1">')
    expect(page.locator("#code")).to_contain_text("<script>window.__pwned = 2</script>")
    shot(page, tmp_path / "xss.png")
    page.goto(f"{server.url}/ui/search?q=pwned&mode=grep")
    expect(page.locator("#results .result").first).to_contain_text("<script>")
    page.goto(f"{server.url}/ui/code?id=geo%3A%3Aweb%2FREADME.md")
    expect(page.locator("#code")).to_contain_text("javascript:window.__pwned=5")
    for path in ("/ui/code?id=geo%3A%3Aweb%2Fevil.js", "/ui/search?q=pwned&mode=grep", "/ui/search?q=onerror"):
        page.goto(f"{server.url}{path}")
        assert page.evaluate("() => window.__pwned") is None
        assert page.locator("main img, main svg, main script, main [onerror], main [onload]").count() == 0


def _login_cookie(client: httpx.Client, key: str, *, also: str = "") -> httpx.Response:
    login = client.get("/ui/login")
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token
    # sent by hand: over plain http a client keeps a Secure cookie to itself, as it should
    cookie = {"Cookie": "; ".join(c for c in (f"repolens_login={token.group(1)}", also) if c)}
    return client.post("/ui/login", data={"csrf": token.group(1), "key": key}, headers=cookie)


def _session_cookie(response: httpx.Response) -> str:
    return next(v for k, v in response.headers.multi_items() if k == "set-cookie" and v.startswith("repolens_session="))


def test_session_cookie_is_httponly_and_samesite(world: tuple[Server, Path]) -> None:
    server, _ = world
    with httpx.Client(base_url=server.url) as client:
        cookie = _session_cookie(_login_cookie(client, server.admin_key))
        first = cookie.split(";", 1)[0]
        _login_cookie(client, server.admin_key, also=first)  # signing in again ends the session before
        stale = client.get("/ui/sources", headers={"Cookie": first})
        assert stale.status_code == 303 and stale.headers["location"].startswith("/ui/login")
        assert client.get("/ui/sources").status_code == 200
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # plain http on loopback
    # Behind a TLS proxy that uvicorn trusts (loopback), the cookie is Secure.
    with httpx.Client(base_url=server.url, headers={"X-Forwarded-Proto": "https"}) as behind:
        assert "Secure" in _session_cookie(_login_cookie(behind, server.admin_key))
    # A wrong key is refused with the reason on the sign-in page, and no session.
    with httpx.Client(base_url=server.url) as bad:
        refused = _login_cookie(bad, "ca_1234567890123_" + "x" * 43)
    assert refused.status_code == 303 and "error=" in refused.headers["location"]
    assert "repolens_session" not in refused.headers.get("set-cookie", "")


def test_form_posts_without_the_csrf_token_are_refused(world: tuple[Server, Path]) -> None:
    server, repos = world
    with signed_in_client(server) as (client, csrf):
        before = client.get("/ui/sources/progress").json()["sources"]
        for form in (
            {"location": str(repos / "extra"), "name": "sneaky"},
            {"csrf": "forged", "location": str(repos / "extra")},
        ):
            refused = client.post("/ui/sources", data=form)
            assert refused.status_code == 403, refused.text
            assert "security token" in refused.text
        assert client.post("/ui/admin/keys", data={"name": "sneaky", "plan": "free"}).status_code == 403
        assert client.post("/ui/logout", data={"other": "1"}).status_code == 403
        assert client.get("/ui/sources/progress").json()["sources"] == before
        assert "sneaky" not in client.get("/ui/admin/keys").text
        # with the token the same post works
        assert client.post("/ui/logout", data={"csrf": csrf}).status_code == 303
        assert client.get("/ui/sources").status_code == 303  # signed out: sent to the sign-in form
    # The sign-in form has its own token: a cross-site post cannot sign a browser in.
    with httpx.Client(base_url=server.url) as fresh:
        assert fresh.post("/ui/login", data={"key": server.admin_key}).status_code == 403


# Every state-changing form but the ones above, each posted with no token and with a forged one.
CSRF_FORMS = ("rename", "delete", "remove-source", "re-sync", "revoke-key", "workflow-resume", "workflow-abort")


@pytest.fixture(scope="module")
def csrf_targets(world: tuple[Server, Path]) -> dict[str, str]:
    """What those forms act on: a conversation, a source, a key and a workflow execution."""
    server, _ = world
    with server.client() as api, signed_in_client(server) as (client, csrf):
        asked = client.post("/ui/chat/ask", data={"csrf": csrf, "question": "where is total_area?", "source": "geo"})
        conversation = asked.headers["location"].rsplit("/", 1)[1]
        source = next(s["id"] for s in api.get("/api/datasources/all").json() if s["name"] == "geo")
        key = api.post("/api/admin/keys", json={"name": "csrf-target", "plan": "free"}).json()["key"].split("_")[1]
        made = api.post(
            f"{CODEMIE}/workflows",
            json={"project": "default", "name": "CSRF target", "yaml_config": PAUSING_FLOW, "mode": "Sequential"},
        )
        workflow = made.json()["data"]["id"]
        execution = api.post(f"{CODEMIE}/workflows/{workflow}/executions", json={"user_input": "go"}).json()["id"]
    return {"conversation": conversation, "source": source, "key": key, "workflow": workflow, "execution": execution}


def _csrf_form(name: str, t: dict[str, str]) -> tuple[str, dict[str, str]]:
    execution = f"/ui/workflows/{t['workflow']}/executions/{t['execution']}"
    return {
        "rename": (f"/ui/chat/{t['conversation']}/rename", {"title": "renamed by a forger"}),
        "delete": (f"/ui/chat/{t['conversation']}/delete", {}),
        "remove-source": (f"/ui/sources/{t['source']}/remove", {"confirm": "geo"}),
        "re-sync": (f"/ui/sources/{t['source']}/sync", {}),
        "revoke-key": (f"/ui/admin/keys/{t['key']}/revoke", {}),
        "workflow-resume": (f"{execution}/resume", {"input": "forged"}),
        "workflow-abort": (f"{execution}/abort", {}),
    }[name]


@pytest.mark.parametrize("form", CSRF_FORMS)
def test_every_form_refuses_a_post_without_the_csrf_token(
    world: tuple[Server, Path], csrf_targets: dict[str, str], form: str
) -> None:
    server, _ = world
    path, fields = _csrf_form(form, csrf_targets)
    t = csrf_targets
    with signed_in_client(server) as (client, csrf), server.client() as api:

        def state() -> tuple[Any, ...]:
            """Everything the forms could change."""
            chat = client.get(f"/ui/chat/{t['conversation']}")
            geo = next(s for s in client.get("/ui/sources/progress").json()["sources"] if s["id"] == t["source"])
            listed = {k["id"]: k for k in api.get("/api/admin/keys").json()}
            execution = api.get(f"{CODEMIE}/workflows/{t['workflow']}/executions/{t['execution']}").json()
            jobs = client.get("/ui/admin/jobs").text.count("<tr")
            return (
                chat.status_code,
                "renamed by a forger" in chat.text,
                geo["state"],
                listed[t["key"]],
                execution["overall_status"] == "Aborted",
                jobs,
            )

        before = state()
        assert before[0] == 200 and before[2] == "Ready"
        for data in (fields, {**fields, "csrf": "forged-" + csrf[:8]}, {**fields, "csrf": ""}):
            # sent as a browser sends a form, even one with no field at all (a cross-site form can)
            form_type = {"Content-Type": "application/x-www-form-urlencoded"}
            refused = client.post(path, content=urlencode(data), headers=form_type)
            assert refused.status_code == 403, (form, refused.status_code, refused.text[:300])
            assert "security token" in refused.text
            assert "default-src 'none'" in refused.headers["content-security-policy"]
        assert state() == before, form  # nothing changed


def test_another_scope_source_is_404(world: tuple[Server, Path]) -> None:
    server, _ = world
    with server.client() as admin:
        made = admin.post("/api/admin/keys", json={"name": "geo-only", "plan": "pro", "scopes": ["geo"]})
        assert made.status_code == 201, made.text
        scoped = made.json()["key"]
    with signed_in_client(server, scoped) as (client, _):
        assert client.get("/ui/code", params={"id": "geo::geo/shapes.py"}).status_code == 200
        hidden = client.get("/ui/code", params={"id": "vault::vault/secret.py::launch_codes"})
        missing = client.get("/ui/code", params={"id": "nosuch::vault/secret.py::launch_codes"})
        assert hidden.status_code == missing.status_code == 404
        assert "0000" not in hidden.text and "Only the other tenant" not in hidden.text
        listing = client.get("/ui/search", params={"q": "launch codes"}).text
        assert 'value="vault"' not in listing and "secret.py" not in listing
        assert client.get("/ui/search", params={"q": "launch", "source": "vault"}).status_code == 404
        assert client.get("/ui/admin/keys").status_code == 403  # a member key manages nothing
        # Revoking the key ends its sessions at once: the next page asks to sign in again.
        with server.client() as admin:
            assert admin.delete(f"/api/admin/keys/{scoped.split('_')[1]}").status_code == 204
        gone = client.get("/ui/code", params={"id": "geo::geo/shapes.py"})
        assert gone.status_code == 303 and gone.headers["location"].startswith("/ui/login?next=")


def test_pages_count_against_the_keys_plan(world: tuple[Server, Path]) -> None:
    server, _ = world
    with server.client() as admin:
        made = admin.post("/api/admin/keys", json={"name": "tiny", "plan": "custom", "requestsPerHour": 4, "concurrency": 2})
        assert made.status_code == 201, made.text
        tiny = made.json()["key"]
    with signed_in_client(server, tiny) as (client, _):  # signing in is free; its landing page is 1 of 4
        assert [client.get("/ui/search", params={"q": "area"}).status_code for _ in range(3)] == [200] * 3
        refused = client.get("/ui/search", params={"q": "area"})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "default-src 'none'" in refused.headers["content-security-policy"]
        assert client.get("/ui/static/app.css").status_code == 200  # assets are not counted
    # one plan wherever the requests come from: the API is over it too
    assert httpx.get(f"{server.url}/api/datasources/all", headers={"Authorization": f"Bearer {tiny}"}).status_code == 429


def test_csp_and_security_headers_on_every_page(world: tuple[Server, Path]) -> None:
    server, _ = world
    with server.client() as api:
        convo = api.post(
            "/api/chat/completions", json={"messages": [{"role": "user", "content": "area"}], "stream": False}
        ).json()["conversationId"]
    paths = [
        "/ui/login",
        "/ui/search",
        "/ui/search?q=area",
        "/ui/search?q=area&mode=grep",
        "/ui/code?id=geo%3A%3Ageo%2Fshapes.py",
        "/ui/code?id=nosuch%3A%3Ax",
        "/ui/sources",
        "/ui/sources/progress",
        "/ui/chat",
        f"/ui/chat/{convo}",
        "/ui/assistants",
        "/ui/admin/keys",
        "/ui/admin/jobs",
        "/ui/no-such-page",
        "/ui/static/app.js",
        "/ui/pygments.css",
        "/",
    ]
    with signed_in_client(server) as (client, _):
        responses = {path: client.get(path) for path in paths}
    for path, response in responses.items():
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "default-src 'none'" in policy, path
        assert "unsafe-inline" not in policy and "http" not in policy, path
        assert response.headers.get("x-content-type-options") == "nosniff", path
        if response.headers.get("content-type", "").startswith("text/html"):
            # no inline script or style anywhere, so the policy costs the UI nothing
            assert not re.search(r"<script(?![^>]*\bsrc=)", response.text), path
            assert " style=" not in response.text and "<style" not in response.text, path
            assert not re.search(r"<[^>]+\son[a-z]+=", response.text), path
    # The search page is streamed (sent in pieces, results highlighted as they go): same headers.
    streamed = responses["/ui/search?q=area"]
    assert streamed.headers.get("transfer-encoding") == "chunked" and streamed.headers["cache-control"] == "no-store"
    assert streamed.text.count('<li class="result"') >= 2 and "<!--flush-->" not in streamed.text
