"""Git, run as a subprocess with every guard that a hostile URL calls for.

* A URL must be a plain ``https://host/path`` (ssh or http only when configured): no
  ``ext::``/``fd::`` transports, no ``file://``, nothing that starts with ``-``.
* ``--`` separates options from the URL, so ``--upload-pack=...`` can never become an option.
* No submodules, no hooks, no terminal prompts, and a timeout on every call.
* Credentials never travel in the URL: a token comes from the environment and reaches git
  through ``GIT_CONFIG_*`` variables, and any userinfo in a message is scrubbed.
* The host must resolve to public addresses only (no loopback, private or link-local
  targets: a server must not become a proxy into its own network), unless the operator
  lists it; for http(s) the checked address is pinned for git, so a second DNS answer
  cannot swap it for an internal one.
* A clone larger than the configured cap is deleted and refused.
* A URL that does not parse (a port outside 1-65535, a broken IPv6 literal) is ``InvalidInput``,
  never a ``ValueError`` from ``urllib`` escaping as a server error.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from repolens.domain import DIRTY_SUFFIX
from repolens.errors import InvalidInput, SourceError, UnsafeSource

LOCAL_STATUS_TIMEOUT_S = 30  # `git status` on a large work tree with a cold disk cache

_SCP_LIKE = re.compile(r"^(?P<user>[A-Za-z0-9._-]+)@(?P<host>[A-Za-z0-9.-]+):(?P<path>[^:].*)$")
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")
_SAFE_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^\[[0-9A-Fa-f:]+\]$")
MAX_PORT = 65_535  # TCP ports are 16-bit; 0 means "any" to the OS, never a server to clone from
_GIT_SAFETY = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "protocol.file.allow=never",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "submodule.recurse=false",
    "-c",
    "core.symlinks=false",
    "-c",
    "advice.detachedHead=false",
)


def scrub(text: str) -> str:
    """Remove any ``user:password@`` from URLs inside ``text``."""
    return _USERINFO.sub("***@", text)


def looks_like_url(location: str) -> bool:
    """Whether a source location is meant as a remote (not a local path)."""
    return "://" in location or "::" in location or bool(_SCP_LIKE.match(location))


def validate_git_url(url: str, *, allowed_schemes: tuple[str, ...]) -> str:
    """Return ``url`` if it is safe to hand to git, or raise ``UnsafeSource`` saying why."""
    if url.lstrip().startswith("-"):
        raise UnsafeSource(f"refusing option-shaped git URL {scrub(url)!r}")
    if "::" in url.split("://", 1)[0] or url.lower().startswith(("ext::", "fd::")):
        raise UnsafeSource("git remote helpers such as 'ext::' are not allowed")
    if not url or url != url.strip() or any(c in url for c in "\n\r\t\0 "):
        raise UnsafeSource("git URL must be a single token without whitespace")
    scp = _SCP_LIKE.match(url)
    if scp and "://" not in url:
        if "ssh" not in allowed_schemes:
            raise UnsafeSource("ssh URLs are disabled; use https or set REPOLENS_GIT_SCHEMES=https,ssh")
        if scp.group("path").startswith("-"):
            raise UnsafeSource("refusing option-shaped path in ssh URL")
        return url
    parts = split_url(url)
    scheme = parts.scheme.lower()
    if scheme not in allowed_schemes:
        allowed = ", ".join(allowed_schemes)
        raise UnsafeSource(f"git URL scheme {scheme or '(none)'!r} is not allowed (allowed: {allowed})")
    if parts.username is not None or parts.password is not None:
        raise UnsafeSource("credentials in the URL are refused; set REPOLENS_GIT_TOKEN instead so they stay out of logs")
    host = parts.hostname or ""
    if not host or not _SAFE_HOST.match(parts.netloc.rsplit(":", 1)[0] if _port(parts, url) else parts.netloc):
        raise UnsafeSource(f"git URL has no valid host: {url!r}")
    if host.startswith("-") or parts.path.startswith("/-"):
        raise UnsafeSource(f"refusing option-shaped git URL {url!r}")
    if not parts.path.strip("/"):
        raise UnsafeSource(f"git URL has no repository path: {url!r}")
    return url


def split_url(url: str) -> SplitResult:
    """``urlsplit(url)``, with the ``ValueError`` it raises for a malformed IPv6 literal
    (``https://[::1/x``, ``https://[zz]/r``) turned into ``InvalidInput``."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise InvalidInput(f"malformed git URL {scrub(url)!r}: {exc}") from None
    _port(parts, url)
    return parts


def _port(parts: SplitResult, url: str) -> int | None:
    """The URL's explicit port; ``InvalidInput`` unless it is 1 to 65535."""
    try:
        port = parts.port  # urlsplit parses the port lazily and raises here for 99999 or -1
    except ValueError:
        port = 0
    if port is not None and not 1 <= port <= MAX_PORT:
        raise InvalidInput(f"git URL {scrub(url)!r} has an invalid port: use 1 to {MAX_PORT}, or none")
    return port


@dataclass(frozen=True, slots=True)
class HostPin:
    """A checked address for a host, handed to git so it does not resolve the name again."""

    host: str
    port: int
    address: str

    def curl_resolve(self) -> str:
        """The ``http.curloptResolve`` entry: ``host:port:address``."""
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.host}:{self.port}:{address}"


def _host_and_port(url: str) -> tuple[str, int, bool]:
    scp = _SCP_LIKE.match(url)
    if scp and "://" not in url:
        return scp.group("host"), 22, False
    parts = split_url(url)
    scheme = parts.scheme.lower()
    default = {"https": 443, "http": 80, "ssh": 22}.get(scheme, 443)
    return (parts.hostname or ""), (parts.port or default), scheme in ("http", "https")


def check_host(url: str, *, allow_hosts: tuple[str, ...]) -> HostPin | None:
    """Refuse a URL whose host resolves to a non-public address; return the address to pin.

    Hosts in ``allow_hosts`` (the operator's own servers) skip the check and are not pinned.
    """
    host, port, pinnable = _host_and_port(url)
    if host.lower().strip("[]") in allow_hosts or host.lower() in allow_hosts:
        return None
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise SourceError(f"cannot resolve git host {host!r}") from None
    addresses = sorted({str(info[4][0]) for info in infos})
    for raw in addresses:
        addr = ipaddress.ip_address(raw.split("%", 1)[0])
        mapped = getattr(addr, "ipv4_mapped", None)
        if mapped is not None:
            addr = mapped
        if not addr.is_global or addr.is_multicast:
            raise UnsafeSource(
                f"git host {host!r} resolves to a private, loopback or link-local address ({raw}); "
                "if it is your own server, add it to REPOLENS_GIT_ALLOW_HOSTS"
            )
    if not addresses:
        raise SourceError(f"cannot resolve git host {host!r}")
    return HostPin(host.strip("[]"), port, addresses[0]) if pinnable else None


def directory_bytes(path: Path) -> int:
    """Total size of the regular files under ``path`` (symlinks not followed)."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def name_from_url(url: str) -> str:
    """``owner/repo`` from a remote URL (``https://host/owner/repo.git`` → ``owner/repo``)."""
    scp = _SCP_LIKE.match(url)
    path = scp.group("path") if scp and "://" not in url else split_url(url).path
    parts = [p for p in path.strip("/").split("/") if p]
    if not parts:
        return "repository"
    parts[-1] = parts[-1].removesuffix(".git")
    return "/".join(parts[-2:])


def _git_env(token: str = "") -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_ASKPASS="/bin/false",
        GIT_ALLOW_PROTOCOL="https:ssh:http",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_PROTOCOL_FROM_USER="0",
    )
    if token:
        # Passed as config through the environment: never on the command line or in the URL.
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="http.extraHeader",
            GIT_CONFIG_VALUE_0=f"Authorization: Bearer {token}",
        )
    return env


def run_git(
    args: list[str], *, cwd: Path | None = None, timeout: float = 60, pin: HostPin | None = None, token: str = ""
) -> str:
    """Run ``git`` with safety options (and ``token`` as a bearer header for http(s) remotes);
    return stdout or raise ``SourceError``."""
    pinned = ["-c", f"http.curloptResolve={pin.curl_resolve()}"] if pin is not None else []
    cmd = ["git", *_GIT_SAFETY, *pinned, *args]
    try:
        result = subprocess.run(
            cmd,
            cwd=cwd,
            env=_git_env(token),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise SourceError("git is not installed or not on PATH") from None
    except subprocess.TimeoutExpired:
        raise SourceError(f"git {args[0]} timed out after {timeout:.0f}s") from None
    if result.returncode != 0:
        message = scrub(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "failed")
        raise SourceError(f"git {args[0]} failed: {message}")
    return result.stdout


def clone_or_update(
    url: str,
    dest: Path,
    *,
    branch: str | None,
    timeout: float,
    pin: HostPin | None = None,
    max_bytes: int | None = None,
    token: str = "",
) -> str:
    """Bring ``dest`` to the tip of ``branch`` (default branch if None); return the commit."""
    if branch is not None and (branch.startswith("-") or not branch.strip() or any(c in branch for c in " \n\r\t\0")):
        raise UnsafeSource(f"refusing branch name {branch!r}")
    if (dest / ".git").is_dir():
        ref = branch or "HEAD"
        run_git(
            ["fetch", "--depth", "1", "--no-recurse-submodules", "origin", "--", ref],
            cwd=dest,
            timeout=timeout,
            pin=pin,
            token=token,
        )
        run_git(["checkout", "--force", "--detach", "FETCH_HEAD"], cwd=dest, timeout=timeout)
    else:
        dest.parent.mkdir(parents=True, exist_ok=True)
        args = ["clone", "--depth", "1", "--single-branch", "--no-recurse-submodules"]
        if branch:
            args += ["--branch", branch]
        run_git([*args, "--", url, str(dest)], timeout=timeout, pin=pin, token=token)
    if max_bytes is not None:
        size = directory_bytes(dest)
        if size > max_bytes:
            shutil.rmtree(dest, ignore_errors=True)
            raise SourceError(
                f"repository is {size / 1e6:.0f} MB, over the {max_bytes / 1e6:.0f} MB cap (REPOLENS_MAX_REPO_MB)"
            )
    return run_git(["rev-parse", "HEAD"], cwd=dest).strip()


def local_commit(path: Path) -> str:
    """The checked-out commit of a local repository ('' when it is not one), with
    ``DIRTY_SUFFIX`` when the work tree has changes or untracked files the index will see."""
    if not (path / ".git").exists():
        return ""
    try:
        sha = run_git(["rev-parse", "HEAD"], cwd=path, timeout=10).strip()
        changes = run_git(["status", "--porcelain", "--ignore-submodules"], cwd=path, timeout=LOCAL_STATUS_TIMEOUT_S)
    except SourceError:
        return ""
    return sha + DIRTY_SUFFIX if changes.strip() else sha


def local_branch(path: Path) -> str | None:
    """The checked-out branch of a local repository (None when detached or not a repository)."""
    if not (path / ".git").exists():
        return None
    try:
        branch = run_git(["rev-parse", "--abbrev-ref", "HEAD"], cwd=path, timeout=10).strip()
    except SourceError:
        return None
    return branch if branch and branch != "HEAD" else None
