"""Web pages for knowledge bases: fetched with the guards of git clones, turned into text.

* Only ``http``/``https`` URLs without credentials, on ports 1-65535.
* The host must resolve to public addresses only, unless the operator lists it in
  ``REPOLENS_GIT_ALLOW_HOSTS`` (``git.check_host``, the very check clones pass). The checked
  address is the one connected to, so a second DNS answer cannot swap in an internal one.
* Redirects are followed by hand, each hop checked again, at most ``MAX_REDIRECTS``.
* Every response is read up to ``MAX_PAGE_BYTES`` and within ``FETCH_TIMEOUT_S``; only HTML and
  plain text are kept.

A crawl stays on the start URL's host (or its subdomains when asked), within a page limit and a
link depth, and never fetches a page twice.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit, urlunsplit

from repolens.errors import InvalidInput, RepolensError, SourceError, UnsafeSource
from repolens.sources import git

FETCH_TIMEOUT_S = 15  # one page; a crawl of MAX_CRAWL_PAGES is bounded by their sum
MAX_PAGE_BYTES = 1_000_000  # the indexer's own cap on a file (settings.DEFAULT_MAX_FILE_BYTES)
MAX_REDIRECTS = 5  # what browsers allow before calling it a loop is 20; sites need 1 or 2
MAX_CRAWL_PAGES = 200  # per run: a crawl runs inside one request, so it must end in minutes
MAX_CRAWL_DEPTH = 10  # links followed from the start page (Codeer's own maximum)
DEFAULT_CRAWL_PAGES = 20
DEFAULT_CRAWL_DEPTH = 2
MAX_URL_CHARS = 2_000
_SCHEMES = ("http", "https")
_TEXT_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/markdown")
_USER_AGENT = "repolens-crawler/1"


def check_url(url: str, *, allow_hosts: tuple[str, ...]) -> git.HostPin | None:
    """Refuse a URL that is not plain http(s) or whose host is not public; the address to use."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_CHARS:
        raise InvalidInput(f"a URL of 1 to {MAX_URL_CHARS} characters is required")
    if any(c in url for c in "\n\r\t\0 "):
        raise UnsafeSource("a URL must be a single token without whitespace")
    parts = git.split_url(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise UnsafeSource(f"only http and https URLs can be crawled, not {parts.scheme or '(none)'!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeSource("credentials in a crawl URL are refused")
    if not parts.hostname:
        raise UnsafeSource(f"URL has no host: {url!r}")
    return git.check_host(url, allow_hosts=allow_hosts)


@dataclass(frozen=True, slots=True)
class Page:
    """A fetched page as text."""

    url: str  # after redirects
    title: str
    text: str  # markdown-flavoured: headings as '#' lines
    links: tuple[str, ...]


def _connection(url: str, pin: git.HostPin | None) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme.lower() == "https"
    port = parts.port or (443 if https else 80)
    address = pin.address if pin is not None else host
    if https:
        context = ssl.create_default_context()

        class Pinned(http.client.HTTPSConnection):
            def connect(self) -> None:  # connect to the checked address, verify the name
                sock = socket.create_connection((address, port), timeout=FETCH_TIMEOUT_S)
                self.sock = context.wrap_socket(sock, server_hostname=host)

        return Pinned(host, port, timeout=FETCH_TIMEOUT_S, context=context)
    return http.client.HTTPConnection(address, port, timeout=FETCH_TIMEOUT_S)


def fetch(url: str, *, allow_hosts: tuple[str, ...]) -> tuple[str, str, bytes]:
    """(final URL, content type, body) of ``url``; ``SourceError`` for an HTTP failure."""
    for _ in range(MAX_REDIRECTS + 1):
        pin = check_url(url, allow_hosts=allow_hosts)
        parts = urlsplit(url)
        conn = _connection(url, pin)
        target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
        try:
            conn.request("GET", target, headers={"Host": parts.netloc, "User-Agent": _USER_AGENT, "Accept": "*/*"})
            response = conn.getresponse()
            if response.status in (301, 302, 303, 307, 308):
                location = response.getheader("Location") or ""
                if not location:
                    raise SourceError(f"{url}: redirect without a Location")
                url = urljoin(url, location)
                continue
            if response.status != 200:
                raise SourceError(f"{url}: HTTP {response.status}")
            body = response.read(MAX_PAGE_BYTES + 1)
            if len(body) > MAX_PAGE_BYTES:
                raise SourceError(f"{url}: page over {MAX_PAGE_BYTES} bytes")
            return url, (response.getheader("Content-Type") or "").lower(), body
        except (OSError, http.client.HTTPException) as exc:
            raise SourceError(f"{url}: {type(exc).__name__}: {exc}") from None
        finally:
            conn.close()
    raise SourceError(f"{url}: more than {MAX_REDIRECTS} redirects")


class _Text(HTMLParser):
    """HTML to readable text: headings become '#' lines, scripts and styles are dropped."""

    _SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    _BLOCK = frozenset({"p", "div", "section", "article", "li", "tr", "br", "pre", "blockquote", "ul", "ol", "table"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.links: list[str] = []
        self.title = ""
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        if tag == "title":
            self._in_title = True
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)
        if re.fullmatch(r"h[1-6]", tag):
            self.out.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self._BLOCK:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        if tag == "title":
            self._in_title = False
        if re.fullmatch(r"h[1-6]", tag) or tag in self._BLOCK:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._skip:
            self.out.append(data)


def page_of(url: str, content_type: str, body: bytes) -> Page:
    """The text and links of a fetched body."""
    text = body.decode("utf-8", errors="replace")
    if "html" not in content_type:
        return Page(url, "", text, ())
    parser = _Text()
    parser.feed(text)
    parser.close()
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip() for line in "".join(parser.out).splitlines()]
    compact = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = " ".join(parser.title.split())
    if title and not compact.startswith("# "):
        compact = f"# {title}\n\n{compact}"
    return Page(url, title, compact + "\n", tuple(parser.links))


@dataclass(frozen=True, slots=True)
class CrawlPlan:
    """What one crawl may fetch."""

    limit: int = DEFAULT_CRAWL_PAGES
    max_depth: int = DEFAULT_CRAWL_DEPTH
    include_paths: tuple[str, ...] = ()  # path prefixes; empty: any path
    exclude_paths: tuple[str, ...] = ()
    allow_subdomains: bool = False


@dataclass(slots=True)
class CrawlResult:
    """Pages fetched and URLs that failed (url, reason)."""

    pages: list[Page] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


def _normal(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, ""))


def crawl(
    start_url: str, plan: CrawlPlan, *, allow_hosts: tuple[str, ...], cancelled: Callable[[], bool] = lambda: False
) -> CrawlResult:
    """Breadth-first from ``start_url`` within ``plan``; the start URL itself must pass the guards
    (``UnsafeSource`` otherwise), later pages that fail are recorded, not raised."""
    check_url(start_url, allow_hosts=allow_hosts)
    home = (urlsplit(start_url).hostname or "").lower()
    result = CrawlResult()
    seen = {_normal(start_url)}
    queue: deque[tuple[str, int]] = deque([(start_url, 0)])
    while queue and len(result.pages) < plan.limit and not cancelled():
        url, depth = queue.popleft()
        try:
            final, content_type, body = fetch(url, allow_hosts=allow_hosts)
        except RepolensError as exc:
            if url == start_url and isinstance(exc, UnsafeSource):
                raise
            result.failures.append((url, str(exc)))
            continue
        if not content_type.startswith(_TEXT_TYPES):
            result.failures.append((url, f"not a text page ({content_type or 'no content type'})"))
            continue
        page = page_of(final, content_type, body)
        result.pages.append(page)
        if depth >= plan.max_depth:
            continue
        for href in page.links:
            link = urljoin(final, href.strip())
            parts = urlsplit(link)
            host = (parts.hostname or "").lower()
            if parts.scheme.lower() not in _SCHEMES:
                continue
            if host != home and not (plan.allow_subdomains and host.endswith("." + home)):
                continue
            path = parts.path or "/"
            if plan.include_paths and not any(path.startswith(p) for p in plan.include_paths):
                continue
            if any(path.startswith(p) for p in plan.exclude_paths):
                continue
            key = _normal(link)
            if key not in seen:
                seen.add(key)
                queue.append((link, depth + 1))
    return result
