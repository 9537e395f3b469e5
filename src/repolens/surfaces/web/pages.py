"""The UI's pages. Each route reads its input, calls the application core (``operations``,
``catalog``, ``access``) and renders a template: no logic of its own beyond shaping for display."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from repolens import catalog, operations, views
from repolens.access import keys, sessions
from repolens.access.keys import Principal
from repolens.access.sessions import Session
from repolens.access.users import MAX_EMAIL_CHARS
from repolens.errors import Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized
from repolens.retrieval.search import MAX_LIMIT
from repolens.services import Services
from repolens.sources.git import looks_like_url
from repolens.surfaces.web import WEB_PREFIX
from repolens.surfaces.web.render import highlight_lines, render, stream
from repolens.surfaces.web.session import (
    CSRF_FIELD,
    LOGIN_COOKIE,
    LOGIN_PATH,
    SESSION_COOKIE,
    FormDep,
    SessionDep,
    login_token,
    read_form,
    services_of,
    set_login_cookie,
    set_session_cookie,
)

router = APIRouter()

RESULTS_PER_PAGE = 20
# The streamed search page is sent in three pieces: its top, as many results as fill a laptop's
# first screen (a result with its 12-line snippet is ~260 px high, so 3 and part of a 4th show at
# 900 px), then the rest. Fewer pieces than one per result: on a busy machine every piece is a
# task to schedule in the server, the browser's network service and its renderer.
FIRST_SCREEN_RESULTS = 4
SNIPPET_LINES = 12  # a hit's first lines: enough to recognise it without opening it
GREP_MATCH_LINES = 5  # matched lines shown per file in grep mode
SEARCH_MODES = ("auto", "hybrid", "lexical", "semantic", "grep")
MAX_QUERY_CHARS = 10_000
MAX_FIELD_CHARS = 4_000
ACTIVE_STATES = ("New", "Processing")
_WORD = re.compile(r"[A-Za-z0-9_]{2,}")
_LINES = re.compile(r"^(\d{1,7})(?:-(\d{1,7}))?$")

QueryText = Annotated[str, Query(max_length=MAX_QUERY_CHARS)]
Field = Annotated[str, Query(max_length=MAX_FIELD_CHARS)]


def _page_context(request: Request, session: Session | None, context: dict[str, Any]) -> dict[str, Any]:
    """What every template may use: the signed-in principal and its CSRF token for every form."""
    return {
        "request": request,
        "principal": session.principal if session else None,
        "csrf": session.csrf if session else "",
        "csrf_field": CSRF_FIELD,
        **context,
    }


def page(request: Request, session: Session | None, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A rendered page with the signed-in principal and its CSRF token in reach of every form."""
    return HTMLResponse(render(template, **_page_context(request, session, context)), status_code=status)


def streamed_page(request: Request, session: Session, template: str, **context: Any) -> StreamingResponse:
    """A page sent as it renders (cut at the template's ``{{ flush }}``): the browser commits the
    navigation, fetches the stylesheets and parses the first results while the server is still
    highlighting the later ones. Whatever can fail (the search itself) must have run before:
    once the first piece is out the status is 200."""
    return StreamingResponse(
        stream(template, **_page_context(request, session, context)), media_type="text/html; charset=utf-8"
    )


def see_other(url: str) -> RedirectResponse:
    """After a post: go to ``url`` with a GET (a reload does not post again)."""
    return RedirectResponse(url, status_code=303)


def _duration(seconds: int) -> str:
    """A wait as a person reads it: "14 minutes", "40 seconds"."""
    if seconds >= 90:
        minutes = round(seconds / 60)
        return f"{minutes} minutes"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _safe_next(target: str) -> str:
    # Only our own pages: an absolute or protocol-relative URL would make sign-in an open redirect.
    if target.startswith(WEB_PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{WEB_PREFIX}/search"


# -- sign in and out ------------------------------------------------------------------------------


@router.get("/", include_in_schema=False)
def home() -> RedirectResponse:
    return RedirectResponse(f"{WEB_PREFIX}/search", status_code=302)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: Field = "", error: Field = "", email: Field = "") -> HTMLResponse:
    token = login_token(request)
    response = page(
        request, None, "login.html", next=_safe_next(next), error=error[:200], token=token, email=email[:MAX_EMAIL_CHARS]
    )
    set_login_cookie(response, request, token)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not sessions.csrf_matches(expected, form.get(CSRF_FIELD)):
        raise Forbidden("the sign-in form's security token is missing or stale; reload the page and try again")
    target = _safe_next(form.get("next"))
    services = services_of(request)
    email = form.get("email")
    try:
        if "email" in form.fields:  # the email and password form; the other one pastes a key
            secret, _ = await run_in_threadpool(
                sessions.sign_in_with_user, services.store, services.authenticator, email, form.get("password")
            )
        else:
            secret, _ = await run_in_threadpool(sessions.sign_in_with_key, services.store, form.get("key"))
    except RateLimited as exc:
        # Shown on the form itself (not a bare error page), with the wait, and as a 429 with
        # Retry-After for anything scripted.
        wait = f"Too many failed sign-ins for {email[:MAX_EMAIL_CHARS]}. Try again in {_duration(exc.retry_after)}."
        token = login_token(request)
        refusal = page(
            request, None, "login.html", status=429, next=target, error=wait, token=token, email=email[:MAX_EMAIL_CHARS]
        )
        refusal.headers["Retry-After"] = str(exc.retry_after)
        set_login_cookie(refusal, request, token)
        return refusal
    except (Unauthorized, Forbidden) as exc:
        fields = {"next": target, "error": str(exc)}
        if email:
            fields["email"] = email[:MAX_EMAIL_CHARS]
        return see_other(f"{WEB_PREFIX}/login?{urlencode(fields)}")
    # A browser that signs in again leaves its previous session behind: end it rather than let
    # it live on beside the new one.
    await run_in_threadpool(sessions.sign_out, services_of(request).store, request.cookies.get(SESSION_COOKIE))
    response = see_other(target)
    set_session_cookie(response, request, secret)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep, form: FormDep) -> Response:
    sessions.sign_out(services_of(request).store, request.cookies.get(SESSION_COOKIE))
    response = see_other(f"{WEB_PREFIX}/login")
    response.delete_cookie(SESSION_COOKIE, path=WEB_PREFIX)
    return response


# -- data sources ---------------------------------------------------------------------------------


def _progress(job: Any) -> dict[str, Any] | None:
    return views.job_json(job) if job is not None else None


def _source_rows(request: Request, session: Session) -> list[dict[str, Any]]:
    store = services_of(request).store
    rows = []
    for ds in catalog.list_data_sources(store, session.principal, type_filter="Repository"):
        assert ds.repository is not None
        source = ds.repository
        rows.append(
            {
                "source": source,
                "remote": looks_like_url(source.location),
                "job": _progress(catalog.latest_job(store, source)),
            }
        )
    return rows


@router.get("/sources", response_class=HTMLResponse)
def sources_page(request: Request, session: SessionDep, error: str = "") -> HTMLResponse:
    store = services_of(request).store
    workspaces = []
    every = {s.id: s for s in store.list_sources()}
    for ds in catalog.list_data_sources(store, session.principal, type_filter="Workspace"):
        assert ds.workspace is not None
        workspaces.append({"workspace": ds.workspace, "members": [every[i] for i in ds.workspace.source_ids if i in every]})
    roots = [str(r) for r in services_of(request).settings.allowed_roots]
    return page(
        request,
        session,
        "sources.html",
        rows=_source_rows(request, session),
        workspaces=workspaces,
        roots=roots,
        error=error[:500],
    )


@router.get("/sources/progress")
def sources_progress(request: Request, session: SessionDep) -> JSONResponse:
    """What the sources page polls while something indexes."""
    items = []
    for row in _source_rows(request, session):
        source = row["source"]
        items.append(
            {
                "id": source.public_id,
                "state": source.state,
                "stateReason": source.state_reason or "",
                "files": source.file_count,
                "job": row["job"],
            }
        )
    return JSONResponse({"sources": items}, headers={"Cache-Control": "no-store"})


@router.post("/sources")
def add_source(request: Request, session: SessionDep, form: FormDep) -> Response:
    session.principal.require_admin()
    services = services_of(request)
    location = form.get("location").strip()
    is_url = looks_like_url(location)
    catalog.create_repository(
        services.store,
        services.settings,
        url=location if is_url else None,
        path=None if is_url else location,
        name=form.get("name").strip() or None,
        branch=form.get("branch").strip() or None,
        description=form.get("description"),
    )
    return see_other(f"{WEB_PREFIX}/sources")


@router.post("/sources/{source_id}/sync")
def sync_source(source_id: str, request: Request, session: SessionDep, form: FormDep) -> Response:
    session.principal.require_admin()
    store = services_of(request).store
    ds = catalog.get_data_source(store, session.principal, source_id)
    if ds.repository is not None:
        catalog.resync(store, ds.repository)
    else:
        assert ds.workspace is not None
        every = {s.id: s for s in store.list_sources()}
        for sid in ds.workspace.source_ids:
            if sid in every:
                catalog.resync(store, every[sid])
    return see_other(f"{WEB_PREFIX}/sources")


@router.get("/sources/{source_id}/remove", response_class=HTMLResponse)
def remove_source_page(source_id: str, request: Request, session: SessionDep) -> HTMLResponse:
    session.principal.require_admin()
    ds = catalog.get_data_source(services_of(request).store, session.principal, source_id)
    return page(request, session, "remove.html", ds=ds)


@router.post("/sources/{source_id}/remove")
def remove_source(source_id: str, request: Request, session: SessionDep, form: FormDep) -> Response:
    session.principal.require_admin()
    services = services_of(request)
    ds = catalog.get_data_source(services.store, session.principal, source_id)
    if form.get("confirm") != ds.name:
        raise InvalidInput(f"type the name {ds.name!r} to confirm the removal")
    if ds.workspace is not None:
        services.store.delete_workspace(ds.workspace.id)
    else:
        assert ds.repository is not None
        catalog.delete_repository(services.store, services.settings, ds.repository)
    return see_other(f"{WEB_PREFIX}/sources")


@router.post("/workspaces")
def add_workspace(request: Request, session: SessionDep, form: FormDep) -> Response:
    session.principal.require_admin()
    catalog.create_workspace(
        services_of(request).store,
        name=form.get("name"),
        description=form.get("description"),
        repositories=form.all("repository"),
    )
    return see_other(f"{WEB_PREFIX}/sources")


# -- search ---------------------------------------------------------------------------------------


def _marked(text: str, start: int, words: set[str]) -> set[int]:
    """Line numbers of ``text`` (starting at ``start``) that contain a query word."""
    if not words:
        return set()
    return {start + i for i, line in enumerate(text.split("\n")) if words & {w.lower() for w in _WORD.findall(line)}}


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    session: SessionDep,
    q: QueryText = "",
    source: Field = "",
    path: Field = "",
    lang: Field = "",
    mode: Field = "auto",
    regex: bool = False,
) -> Response:
    services = services_of(request)
    principal = session.principal
    chosen = mode if mode in SEARCH_MODES else "auto"
    form = {"q": q, "source": source, "path": path, "lang": lang, "mode": chosen, "regex": regex}
    choices = catalog.list_data_sources(services.store, principal)
    languages = sorted(operations.LANGUAGE_EXTENSIONS)
    results: list[dict[str, Any]] = []
    index: dict[str, Any] | None = None
    error = ""
    if q.strip():
        names = (source,) if source else ()
        paths = (path,) if path.strip() else ()
        try:
            extensions = operations.extensions_for_language(lang)
            if chosen == "grep":
                results = _grep_results(services, principal, q, names, paths, extensions, regex)
            else:
                results, index = _search_results(services, principal, q, names, paths, extensions, chosen)
        except InvalidInput as exc:
            error = str(exc)
    return streamed_page(
        request,
        session,
        "search.html",
        first_screen=FIRST_SCREEN_RESULTS,
        form=form,
        choices=choices,
        languages=languages,
        results=results,
        index=index,
        error=error,
    )


@dataclass(frozen=True)
class Snippet:
    """A hit's first lines as (number, HTML, marked), highlighted only when the streamed page gets
    to them: the results before it are on their way to the browser meanwhile."""

    text: str
    path: str
    start: int
    marks: frozenset[int]

    def __iter__(self) -> Iterator[tuple[int, Markup, bool]]:
        for i, html in enumerate(highlight_lines(self.text, self.path)):
            yield self.start + i, html, self.start + i in self.marks


def _search_results(
    services: Services,
    principal: Principal,
    q: str,
    names: tuple[str, ...],
    paths: tuple[str, ...],
    extensions: tuple[str, ...],
    mode: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    request = operations.SearchRequest(
        q,
        names=names,
        paths=paths,
        extensions=extensions,
        limit=RESULTS_PER_PAGE,
        mode=operations.search_mode(mode, param="mode"),
    )
    outcome, contents = operations.search_with_contents(services, principal, request)
    words = {w.lower() for w in _WORD.findall(q)}
    results = []
    for hit in outcome.hits:
        row = hit.artifact
        text = contents.get(row.id, "")
        shown = "\n".join(text.split("\n")[:SNIPPET_LINES])
        marks = _marked(shown, row.start_line, words)
        first = min(marks) if marks else row.start_line
        results.append(
            {
                "kind": row.kind,
                "identifier": row.identifier(hit.source.name),
                "path": row.path,
                "start": row.start_line,
                "end": row.end_line,
                "description": views.description(row),
                "lines": Snippet(shown, row.path, row.start_line, frozenset(marks)),
                "target": (first, first) if marks else (row.start_line, row.end_line),
                "source": hit.source.name,
            }
        )
    index = {"mode": outcome.mode, "vectorsReady": outcome.vectors_ready, "vectorsTotal": outcome.vectors_total}
    return results, index


def _grep_results(
    services: Services,
    principal: Principal,
    q: str,
    names: tuple[str, ...],
    paths: tuple[str, ...],
    extensions: tuple[str, ...],
    regex: bool,
) -> list[dict[str, Any]]:
    data = operations.grep(
        services,
        principal,
        q,
        names=names,
        paths=paths,
        extensions=extensions,
        regex=regex,
        limit=min(MAX_LIMIT, RESULTS_PER_PAGE * 2),
    )
    results = []
    for item in data["results"]:
        path = item["location"]["path"]
        matches = item["matches"][:GREP_MATCH_LINES]
        lines = [(m["lineNumber"], highlight_lines(m["lineText"], path)[0], True) for m in matches]
        first = matches[0]["lineNumber"] if matches else 1
        results.append(
            {
                "kind": "File",
                "identifier": item["identifier"],
                "path": path,
                "start": first,
                "end": matches[-1]["lineNumber"] if matches else 1,
                "description": f"{item['matchCount']} match{'es' if item['matchCount'] != 1 else ''}"
                + (" (file name)" if item.get("matchedByName") else ""),
                "lines": lines,
                "target": (first, first),
                "source": item["dataSource"]["name"],
            }
        )
    return results


# -- code -------------------------------------------------------------------------------------------


def _line_range(raw: str, last: int) -> tuple[int, int] | None:
    match = _LINES.match(raw.strip())
    if not match:
        return None
    start = max(1, min(int(match.group(1)), last))
    end = max(start, min(int(match.group(2) or start), last))
    return start, end


RELATION_TITLES = {
    "IncomingCalls": "Callers",
    "OutgoingCalls": "Callees",
    "Ancestors": "Ancestors",
    "Descendants": "Descendants",
    "References": "References",
}
# Where an item's ``line`` (the call or inheritance site) lies: in the item's own code for callers,
# descendants and references, so the link opens the item at that line; for callees and ancestors
# the site is in the symbol on the page, so the link opens the item at its own lines instead.
SITE_IN_ITEM = frozenset({"IncomingCalls", "Descendants", "References"})


@router.get("/code", response_class=HTMLResponse)
def code_page(request: Request, session: SessionDep, id: Field, lines: Field = "", commit: Field = "") -> HTMLResponse:
    services = services_of(request)
    view = operations.read_code(services, session.principal, id)
    text_lines = highlight_lines(view.content, view.artifact.path)
    artifact = view.artifact
    marked = _line_range(lines, len(text_lines)) if lines else None
    if marked is None and artifact.kind != "File":
        marked = (artifact.start_line, artifact.end_line)
    relations: list[dict[str, Any]] = []
    if artifact.kind == "Symbol":
        identifier = artifact.identifier(view.source.name)
        groups: list[dict[str, Any]] = []
        for profile in ("all", "references"):
            data = operations.relationships(services, session.principal, identifier, profile=profile)
            groups.extend(data.get("relationships", []))
        relations = [
            {
                "title": RELATION_TITLES.get(g["relationType"], g["relationType"]),
                "at_site": g["relationType"] in SITE_IN_ITEM,
                **g,
            }
            for g in groups
            if g["totalCount"]
        ]
    return page(
        request,
        session,
        "code.html",
        view=view,
        identifier=artifact.identifier(view.source.name),
        file_identifier=operations.file_identifier(view.source, artifact.path),
        lines=text_lines,
        marked=marked,
        relations=relations,
        asked_commit=commit,
    )


# -- admin: keys and jobs ---------------------------------------------------------------------------


def _keys_page(request: Request, session: Session, *, minted: str = "", status: int = 200) -> HTMLResponse:
    session.principal.require_admin()
    listing = keys.keys_with_usage(services_of(request).store)
    return page(
        request,
        session,
        "keys.html",
        status=status,
        keys=listing,
        minted=minted,
        plans=[*keys.PLANS, "custom"],
        iso=views.iso,
    )


@router.get("/admin/keys", response_class=HTMLResponse)
def keys_page(request: Request, session: SessionDep) -> HTMLResponse:
    return _keys_page(request, session)


@router.post("/admin/keys", response_class=HTMLResponse)
def create_key(request: Request, session: SessionDep, form: FormDep) -> HTMLResponse:
    session.principal.require_admin()
    plan_name = form.get("plan", "free")
    numbers = {k: int(v) for k in ("requests_per_hour", "concurrency") if (v := form.get(k).strip()).isdigit()}
    plan = keys.plan_for(plan_name, **numbers)
    days = form.get("expires_days").strip()
    if days and not days.isdigit():
        raise InvalidInput("expiry must be a whole number of days")
    minted = keys.create_key(
        services_of(request).store,
        name=form.get("name"),
        plan=plan,
        role="admin" if form.get("admin") == "on" else "member",
        scopes=tuple(s.strip() for s in form.get("scopes").split(",") if s.strip()),
        expires_at=time.time() + int(days) * 86400 if days else None,
    )
    # Shown in this response only: the page is not cached and a reload does not show it again.
    return _keys_page(request, session, minted=minted.token, status=201)


@router.post("/admin/keys/{key_id}/revoke")
def revoke_key(key_id: str, request: Request, session: SessionDep, form: FormDep) -> Response:
    session.principal.require_admin()
    if not services_of(request).store.revoke_key(key_id):
        raise NotFound(f"unknown key {key_id!r}")
    return see_other(f"{WEB_PREFIX}/admin/keys")


@router.get("/admin/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, session: SessionDep) -> HTMLResponse:
    jobs = [
        (source, views.job_json(job)) for source, job in catalog.recent_jobs(services_of(request).store, session.principal)
    ]
    return page(request, session, "jobs.html", jobs=jobs)


__all__ = ["router"]
