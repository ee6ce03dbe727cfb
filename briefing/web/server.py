"""Run the web application on uvicorn: listen where the config says, behind a proxy.

The socket is bound here, before uvicorn starts, so a port already in use is
reported as a plain error with a hint rather than a log line and an exit.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence

import uvicorn

from briefing.config import Config
from briefing.errors import BriefingError
from briefing.store import Database
from briefing.web.app import create_app


def bind(host: str, port: int) -> socket.socket:
    """Open a listening socket on ``host:port``, or raise a BriefingError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise BriefingError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another address with --host/--port or web.host/web.port in config.yaml",
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(
    config: Config,
    database: Database,
    keys: Sequence[bytes],
    *,
    sock: socket.socket,
    log_level: int = logging.INFO,
) -> None:
    """Serve the endpoints on an open socket until interrupted."""
    settings = uvicorn.Config(
        create_app(config, database, keys),
        proxy_headers=True,
        forwarded_allow_ips=config.web.trusted_proxies,
        access_log=False,  # the URLs hold tokens; the app logs what it does without them
        log_level=log_level,
        server_header=False,
        lifespan="on",  # runs the transactional mail drain
    )
    uvicorn.Server(settings).run(sockets=[sock])
