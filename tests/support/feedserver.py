"""A real HTTP server on 127.0.0.1 (port 0) in a thread, with scripted routes for ingest tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Route = Callable[["Handler"], None]


@dataclass
class Seen:
    """One request the server received."""

    path: str
    headers: dict[str, str]


@dataclass
class FeedServer:
    """Routes by path; every request is recorded; ``stop`` releases slow handlers."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[Seen] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    base: str = ""

    def url(self, path: str) -> str:
        """Return the absolute URL of ``path`` on this server."""
        return self.base + path

    def seen(self, path: str) -> list[Seen]:
        """Return the requests made for ``path``, oldest first."""
        return [request for request in self.requests if request.path == path]


class Handler(BaseHTTPRequestHandler):
    """Dispatch GET to the route registered for the path."""

    server: Any
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle's algorithm and
        # delayed ACKs hold each response back by 40 ms.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        feeds: FeedServer = self.server.feeds
        feeds.requests.append(Seen(self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = feeds.routes.get(self.path)
        if route is None:
            self.send_error(404, "Not Found")
            return
        # The client may give up (a timeout or a size cap): that is the point.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            route(self)

    def reply(self, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
        """Send a whole response with a Content-Length."""
        self.send_response(status)
        sent = {k.lower() for k in (headers or {})}
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if "content-length" not in sent:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


@contextmanager
def serve() -> Iterator[FeedServer]:
    """Run a FeedServer on 127.0.0.1 with an ephemeral port for the duration of a block."""
    feeds = FeedServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.feeds = feeds  # type: ignore[attr-defined]
    feeds.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield feeds
    finally:
        feeds.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def static(
    body: bytes,
    content_type: str = "application/rss+xml",
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    headers: dict[str, str] | None = None,
) -> Route:
    """A route answering 200 with ``body``, honouring If-None-Match / If-Modified-Since."""

    def route(handler: Handler) -> None:
        if etag and handler.headers.get("If-None-Match") == etag:
            handler.reply(b"", 304, {"ETag": etag})
            return
        if not etag and last_modified and handler.headers.get("If-Modified-Since") == last_modified:
            handler.reply(b"", 304)
            return
        sent = {"Content-Type": content_type, **(headers or {})}
        if etag:
            sent["ETag"] = etag
        if last_modified:
            sent["Last-Modified"] = last_modified
        handler.reply(body, 200, sent)

    return route


def redirect(target: str, status: int = 302) -> Route:
    """A route answering a redirect to ``target``."""
    return lambda handler: handler.reply(b"", status, {"Location": target})


@contextmanager
def stalled_listener() -> Iterator[str]:
    """Yield the base URL of a port on 127.0.0.1 where a TCP connect never completes.

    The socket listens with a backlog of 0 and nothing accepts: once its queue
    holds a connection (made here), the kernel drops every further SYN, so a
    client's connect waits until it gives up, as with a host that has vanished.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held: list[socket.socket] = []
    try:
        for _ in range(16):  # fill the queue until a connect no longer completes
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.settimeout(0.5)
            try:
                client.connect(("127.0.0.1", port))
            except TimeoutError:
                client.close()
                break
            held.append(client)
        else:
            raise RuntimeError("connects to a listener nobody accepts on kept completing")
        yield f"http://127.0.0.1:{port}"
    finally:
        for client in held:
            client.close()
        listener.close()
