"""Remote sources: hostile URLs are refused before git runs; real clones are shallow and safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MakeRepo, git
from gitserver import serve_git
from repolens.errors import NotFound, UnsafeSource
from repolens.indexing.pipeline import clone_dir, index_source
from repolens.services import build_services
from repolens.settings import Settings
from repolens.sources.git import name_from_url, scrub, validate_git_url

HTTPS = ("https",)


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c touch% /tmp/pwned",
        "EXT::sh -c id",
        "fd::3",
        "file:///etc",
        "--upload-pack=touch /tmp/pwned",
        "-oProxyCommand=id",
        "https://user:hunter2@example.com/o/r.git",
        "http://example.com/o/r.git",
        "ssh://git@example.com/o/r.git",
        "git@example.com:o/r.git",
        "https://example.com/-oProxyCommand",
        "https://",
        "https://example.com/",
        "https://exa mple.com/o/r",
        "https://example.com/o/r\n--upload-pack=x",
    ],
)
def test_hostile_git_urls_are_refused(url: str) -> None:
    """Transports, option-shaped values, credentials and disabled schemes never reach git."""
    with pytest.raises(UnsafeSource):
        validate_git_url(url, allowed_schemes=HTTPS)


def test_ssh_is_accepted_only_when_configured() -> None:
    """ssh URLs pass once the operator enables ssh."""
    assert validate_git_url("git@example.com:o/r.git", allowed_schemes=("https", "ssh"))
    assert validate_git_url("https://github.com/o/r.git", allowed_schemes=HTTPS)


def test_names_come_from_urls_and_credentials_are_scrubbed() -> None:
    """owner/repo is derived from the URL; userinfo never survives into a message."""
    assert name_from_url("https://github.com/pallets/flask.git") == "pallets/flask"
    assert name_from_url("git@github.com:pallets/flask.git") == "pallets/flask"
    assert scrub("fatal: https://u:secret@host/x failed") == "fatal: https://***@host/x failed"


def test_missing_and_non_directory_paths_are_clear_errors(tmp_path: Path) -> None:
    """A path that does not exist, or is a file, is refused with a message naming it."""
    svc = build_services(Settings(home=tmp_path / "home", embedder="none"))
    with pytest.raises(NotFound, match="no such directory"):
        index_source(svc.store, svc.settings, str(tmp_path / "nope"))
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(Exception, match="not a directory"):
        index_source(svc.store, svc.settings, str(tmp_path / "f.txt"))
    svc.close()


def test_a_real_clone_over_http_indexes_and_updates(make_repo: MakeRepo, tmp_path: Path) -> None:
    """Clone from a git server on 127.0.0.1 (http enabled for the test), then pull a new commit."""
    work = make_repo({"lib.py": "def alpha():\n    return 1\n"}, name="work")
    served = tmp_path / "served"
    served.mkdir()
    git(served, "clone", "-q", "--bare", str(work), "acme/tool.git")
    settings = Settings(
        home=tmp_path / "home", embedder="none", allowed_git_schemes=("https", "http"), git_allow_hosts=("127.0.0.1",)
    )
    svc = build_services(settings)
    hooks_marker = tmp_path / "hook-ran"
    try:
        with serve_git(served) as base:
            url = f"{base}/acme/tool.git"
            source, report = index_source(svc.store, settings, url)
            assert source.name == "acme/tool"
            assert report.commit == git(work, "rev-parse", "HEAD").strip()
            assert svc.searcher.search("alpha").hits[0].artifact.name == "alpha"
            clone = clone_dir(settings, source)
            assert clone.parent == settings.clones_dir and clone.name == source.public_id
            assert git(clone, "rev-parse", "--is-shallow-repository").strip() == "true"

            (work / "lib.py").write_text("def beta():\n    return 2\n")
            git(work, "commit", "-qam", "second")
            git(work, "push", "-q", str(served / "acme/tool.git"), "main")
            source, report = index_source(svc.store, settings, url)
            assert report.files_changed == 1
            names = [h.artifact.name for h in svc.searcher.search("beta").hits]
            assert names[0] == "beta"
            assert all(h.artifact.name != "alpha" for h in svc.searcher.search("alpha").hits)
        assert not hooks_marker.exists()
    finally:
        svc.close()


def test_clone_errors_do_not_leak_credentials(tmp_path: Path) -> None:
    """A token passed out of band (a setting, never in the URL) never shows up in an error message."""
    settings = Settings(
        home=tmp_path / "home",
        embedder="none",
        allowed_git_schemes=("http",),
        git_allow_hosts=("127.0.0.1",),
        git_token="tok-SECRET-123",
    )
    svc = build_services(settings)
    try:
        with pytest.raises(Exception) as info:
            index_source(svc.store, settings, "http://127.0.0.1:9/o/r.git")
        assert "tok-SECRET-123" not in str(info.value)
        assert "tok-SECRET-123" not in repr(settings)
    finally:
        svc.close()
