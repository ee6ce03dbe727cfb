"""Fetch a feed over HTTP: bounded in time, size and redirects; cheap when unchanged.

One :class:`Fetcher` (one ``httpx.AsyncClient``, so connections are reused)
serves a whole ingest run, many fetches at once on one event loop. Each fetch

- sends a User-Agent naming the project and its version, ``Accept`` for feed
  types and ``Accept-Encoding: gzip, deflate``;
- sends the stored ``ETag`` / ``Last-Modified`` as ``If-None-Match`` /
  ``If-Modified-Since``, so an unchanged feed costs a ``304 Not Modified``;
- follows at most ``max_redirects`` redirects itself, naming a loop when a URL
  comes round again, and notes a permanent move so the config can be fixed;
- gives up after the connect or read timeout, and whatever happens after the
  total timeout: a hard wall-clock deadline (``asyncio.timeout``) around the
  whole fetch, connect, headers, redirects and body alike, enforced from
  outside the read loop, so a server trickling its headers or body one byte
  at a time is cut at the deadline and named with the phase it was in;
- refuses a body larger than ``max_bytes`` after decompression, from its
  Content-Length when it sends one, else while streaming, never reading more.

Every failure is a :class:`SourceError` with a reason a person can act on (a
missed deadline is a :class:`FetchTimeout`, which names the phase). No
database transaction is open while this runs: callers read the validators
first, fetch, then store in a new short transaction.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import httpx

from briefing import __version__
from briefing.config import Config, IngestConfig
from briefing.errors import SourceError
from briefing.ingest.decode import charset_from_content_type

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/feed+json, "
    "application/xml;q=0.9, text/xml;q=0.9, application/json;q=0.8, */*;q=0.5"
)
REDIRECTS = {301, 302, 303, 307, 308}
PERMANENT = {301, 308}

Phase = Literal["connect", "headers", "redirect", "body"]
PHASES: dict[str, str] = {
    "connect": "connecting",
    "headers": "waiting for the response headers",
    "redirect": "following a redirect",
    "body": "reading the body",
}


def default_user_agent(config: Config) -> str:
    """Return the User-Agent: the configured one, else the project, version and site."""
    return config.ingest.user_agent or f"briefing/{__version__} (+{config.site.base_url})"


class FetchTimeout(SourceError):
    """A fetch that missed its total deadline, with the phase it was cut in."""

    def __init__(self, source: str, reason: str, phase: Phase) -> None:
        super().__init__(source, reason)
        self.phase = phase


@dataclass(frozen=True)
class Validators:
    """What the server said identifies the last version we read."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass
class Fetched:
    """The outcome of one successful fetch: a body, or word that nothing changed."""

    url: str
    status: int
    content: bytes = b""
    content_type: str | None = None
    validators: Validators = field(default_factory=Validators)
    warnings: list[str] = field(default_factory=list)

    @property
    def not_modified(self) -> bool:
        """Tell whether the server answered 304: the feed is as we last read it."""
        return self.status == 304

    @property
    def charset(self) -> str | None:
        """Return the charset the Content-Type header declares, if any."""
        return charset_from_content_type(self.content_type)


def _seconds(value: timedelta) -> float:
    return max(value.total_seconds(), 0.001)


@dataclass
class _Progress:
    """Where one fetch is, kept up to date by httpcore's trace events."""

    phase: Phase = "connect"
    hop: int = 0  # 0 for the configured URL, n for the n-th redirect target
    current: str = ""

    async def trace(self, event: str, _info: dict[str, Any]) -> None:
        if event.startswith(("connection.connect_tcp", "connection.start_tls")):
            self.phase = "connect"
        elif event.startswith(("http11.send_request", "http2.send_request")):
            self.phase = "headers"
        elif event in (
            "http11.receive_response_headers.complete",
            "http2.receive_response_headers.complete",
        ):
            self.phase = "body"

    @property
    def named(self) -> Phase:
        """The phase to report: a cut on a redirect target before its body is a redirect."""
        if self.hop and self.phase != "body":
            return "redirect"
        return self.phase


class HostTurns:
    """At most ``per_host`` requests to one host (scheme-less ``host:port``) at a time."""

    def __init__(self, per_host: int) -> None:
        self.per_host = max(per_host, 1)
        self._limits: dict[str, asyncio.Semaphore] = {}

    def limit(self, url: str) -> asyncio.Semaphore:
        """Return the semaphore of the host of ``url``."""
        host = urlsplit(url).netloc.lower()
        if host not in self._limits:
            self._limits[host] = asyncio.Semaphore(self.per_host)
        return self._limits[host]

    def turn(self) -> HostTurn:
        """Return a new, empty place in the hosts' queues for one fetch."""
        return HostTurn(self)


class HostTurn:
    """One fetch's place with the host it is talking to; it moves along with redirects.

    A fetch holds at most one host's turn at a time (it gives up the old host's
    before waiting for the new one's), so two fetches redirected across each
    other's hosts cannot wait for each other.
    """

    def __init__(self, turns: HostTurns) -> None:
        self._turns = turns
        self._held: asyncio.Semaphore | None = None

    async def move(self, url: str) -> None:
        """Wait for a turn with the host of ``url`` (at once if this fetch has it already)."""
        target = self._turns.limit(url)
        if target is self._held:
            return
        self.release()
        await target.acquire()
        self._held = target

    def release(self) -> None:
        """Give the turn back, if one is held."""
        if self._held is not None:
            self._held.release()
            self._held = None


class Fetcher:
    """Fetch feeds with one async client; ``await aclose()`` (or ``async with``) at the end.

    Make it inside the event loop that will use it.
    """

    def __init__(
        self,
        settings: IngestConfig,
        user_agent: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings
        timeout = httpx.Timeout(
            connect=_seconds(settings.connect_timeout),
            read=_seconds(settings.read_timeout),
            write=_seconds(settings.read_timeout),
            # Concurrency is bounded by the caller; waiting for a pooled connection
            # counts against the total deadline only.
            pool=None,
        )
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            headers={
                "User-Agent": user_agent,
                "Accept": ACCEPT,
                "Accept-Encoding": "gzip, deflate",
            },
            limits=httpx.Limits(
                max_connections=max(settings.concurrency, 1),
                max_keepalive_connections=max(settings.concurrency, 1),
            ),
            transport=transport,
        )

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._client.aclose()

    async def fetch(
        self, url: str, validators: Validators | None = None, *, turn: HostTurn | None = None
    ) -> Fetched:
        """Fetch ``url``, conditionally when ``validators`` are known, within the total timeout.

        With a ``turn``, every request (the first and each redirect's) waits for
        its host's turn first; waiting for a redirect target's host counts
        against the total timeout.
        """
        progress = _Progress(current=url)
        try:
            async with asyncio.timeout(_seconds(self.settings.total_timeout)):
                return await self._follow(url, validators, progress, turn)
        except TimeoutError as exc:
            seconds = self.settings.total_timeout.total_seconds()
            phase = progress.named
            where = "" if progress.current == url else f" (at {progress.current})"
            raise FetchTimeout(
                url,
                f"fetch took longer than {seconds:g}s in all (total timeout), "
                f"cut while {PHASES[phase]} [phase: {phase}]{where}",
                phase,
            ) from exc

    async def _follow(
        self,
        url: str,
        validators: Validators | None,
        progress: _Progress,
        turn: HostTurn | None,
    ) -> Fetched:
        headers = {}
        if validators and validators.etag:
            headers["If-None-Match"] = validators.etag
        if validators and validators.last_modified:
            headers["If-Modified-Since"] = validators.last_modified
        visited = [url]
        warnings: list[str] = []
        current = url
        while True:
            progress.current = current
            progress.hop = len(visited) - 1
            progress.phase = "connect"
            if turn is not None:
                await turn.move(current)
            try:
                outcome = await self._get(current, headers, progress)
            except httpx.TimeoutException as exc:
                raise SourceError(url, self._timeout_reason(exc, current, url)) from exc
            except (
                httpx.TooManyRedirects
            ) as exc:  # pragma: no cover - we follow redirects ourselves
                raise SourceError(url, str(exc)) from exc
            except httpx.InvalidURL as exc:
                raise SourceError(url, f"invalid URL {current}: {exc}") from exc
            except httpx.HTTPError as exc:
                raise SourceError(url, _network_reason(exc, current, url)) from exc
            if isinstance(outcome, Fetched):
                outcome.warnings[:0] = warnings
                return outcome
            status, location = outcome
            target = urljoin(current, location)
            if urlsplit(target).scheme not in ("http", "https"):
                raise SourceError(url, f"redirected to {target}, which is not an http(s) URL")
            if target in visited:
                loop = " -> ".join([*visited[visited.index(target) :], target])
                raise SourceError(url, f"redirect loop: {loop}")
            if len(visited) > self.settings.max_redirects:
                raise SourceError(
                    url, f"more than {self.settings.max_redirects} redirects (last to {target})"
                )
            if status in PERMANENT and len(visited) == 1:
                warnings.append(
                    f"moved permanently (HTTP {status}) to {target}; update config.yaml"
                )
            visited.append(target)
            current = target

    def _timeout_reason(self, exc: httpx.TimeoutException, current: str, url: str) -> str:
        where = "" if current == url else f" (at {current})"
        if isinstance(exc, httpx.ConnectTimeout):
            seconds = self.settings.connect_timeout.total_seconds()
            return f"no connection within {seconds:g}s{where}"
        if isinstance(exc, httpx.PoolTimeout):  # pragma: no cover - no pool timeout is set
            return "no free connection"
        seconds = self.settings.read_timeout.total_seconds()
        return f"the server sent nothing for {seconds:g}s (read timeout){where}"

    async def _get(
        self, url: str, headers: dict[str, str], progress: _Progress
    ) -> Fetched | tuple[int, str]:
        """GET one URL: a Fetched result, or (status, Location) for a redirect to follow."""
        request = self._client.build_request(
            "GET", url, headers=headers, extensions={"trace": progress.trace}
        )
        response = await self._client.send(request, stream=True)
        try:
            progress.phase = "body"
            status = response.status_code
            if status in REDIRECTS:
                location = response.headers.get("Location")
                if not location:
                    raise SourceError(url, f"HTTP {status} redirect without a Location header")
                return status, location
            validators = Validators(
                etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"),
            )
            if status == 304:
                return Fetched(url=url, status=304, validators=validators)
            if status != 200:
                raise SourceError(url, _status_reason(response))
            declared = response.headers.get("Content-Length")
            encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
            limit = self.settings.max_bytes
            if declared and declared.isdigit() and int(declared) > limit:
                raise SourceError(
                    url, f"response is {int(declared):,} bytes, over the {limit:,}-byte limit"
                )
            body = _Body(encoding, limit, url)
            try:
                async for chunk in response.aiter_raw():
                    body.feed(chunk)
            except httpx.RemoteProtocolError as exc:
                raise SourceError(
                    url, f"the connection closed before the whole body arrived ({exc})"
                ) from exc
            return Fetched(
                url=str(response.url),
                status=200,
                content=body.finish(),
                content_type=response.headers.get("Content-Type"),
                validators=validators,
            )
        finally:
            await response.aclose()


class _Body:
    """Collect a response body, decompressing gzip or deflate ourselves, within the cap.

    httpx would decompress too, but it accepts a truncated gzip stream silently
    and cannot stop a small compressed body from expanding without bound; here
    the output is limited as it is produced and a cut stream is named.
    """

    def __init__(self, encoding: str, limit: int, url: str) -> None:
        self.encoding = encoding
        self.limit = limit
        self.url = url
        self.size = 0
        self.parts: list[bytes] = []
        self.raw_deflate = False
        if encoding in ("gzip", "x-gzip"):
            self.decompressor: Any = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.decompressor = zlib.decompressobj()
        elif encoding in ("identity", ""):
            self.decompressor = None
        else:
            raise SourceError(
                url, f"the body is compressed with {encoding!r}, which was not asked for"
            )

    def feed(self, chunk: bytes) -> None:
        """Take the next raw bytes of the body."""
        if self.decompressor is None:
            self._keep(chunk)
            return
        try:
            data = self.decompressor.decompress(chunk, self.limit - self.size + 1)
        except zlib.error as exc:
            if self.encoding == "deflate" and not self.size and not self.raw_deflate:
                # Some servers send raw deflate without the zlib wrapper.
                self.raw_deflate = True
                self.decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
                self.feed(chunk)
                return
            raise SourceError(self.url, f"the {self.encoding} body is corrupt ({exc})") from exc
        self._keep(data)
        while self.decompressor.unconsumed_tail:
            more = self.decompressor.decompress(
                self.decompressor.unconsumed_tail, self.limit - self.size + 1
            )
            self._keep(more)

    def _keep(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise SourceError(
                self.url, f"response is larger than the {self.limit:,}-byte limit (stopped reading)"
            )
        self.parts.append(data)

    def finish(self) -> bytes:
        """Return the whole body; a compressed stream must have reached its end."""
        if self.decompressor is not None:
            self._keep(self.decompressor.flush())
            if not self.decompressor.eof:
                raise SourceError(
                    self.url, f"the {self.encoding} body is truncated (the stream ends early)"
                )
        return b"".join(self.parts)


def _status_reason(response: httpx.Response) -> str:
    status = response.status_code
    phrase = response.reason_phrase or ""
    reason = f"HTTP {status} {phrase}".rstrip()
    if status == 410:
        return reason + ": the feed was removed; drop it from config.yaml"
    if status in (401, 403):
        return reason + ": the server refuses this client"
    if status == 404:
        return reason + ": no feed at this URL"
    if status in (429, 503) and response.headers.get("Retry-After"):
        return reason + f" (Retry-After: {response.headers['Retry-After']})"
    return reason


def _network_reason(exc: httpx.HTTPError, current: str, url: str) -> str:
    where = "" if current == url else f" (at {current})"
    detail = str(exc) or exc.__class__.__name__
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {detail}{where}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the server broke the HTTP protocol: {detail}{where}"
    return f"{exc.__class__.__name__}: {detail}{where}"
