"""Receive returned mail over LMTP (or SMTP) and act on it as ``bounces import`` does.

A relay's transport map points the bounce domain (and the List-Unsubscribe
mailbox) at ``briefing inbound``. The receiver:

- accepts RCPT only for our addresses: ``<local_part>+<token>@<bounce domain>``
  whose delivery token verifies, the plain ``<local_part>@<bounce domain>``,
  and ``site.unsubscribe_mailto``; any other recipient gets ``550 5.1.1``;
- advertises SIZE ``inbound.max_bytes`` and refuses a larger message with 552;
- hands each accepted message, once per recipient, to :func:`take` (the same
  classify-and-act path as ``bounces import``), with a ``Delivered-To`` field
  naming the recipient put first, as a mailbox delivery would;
- replies only once the outcome is committed: a failure to store answers
  ``451`` so the relay keeps the message and tries again, and the same
  report read again is recorded once, so nothing is lost or doubled;
- with LMTP, replies once per recipient after the data (RFC 2033), even for
  the refusals aiosmtpd writes itself (too big, line too long).

The database work runs in a worker thread, never in the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from briefing.audience.bounces import take
from briefing.config import Config, InboundConfig
from briefing.domain.tokens import InertTokenError, Signer
from briefing.errors import BriefingError, TokenError
from briefing.store import Database

logger = logging.getLogger(__name__)

SOURCE = "inbound"
# How often the serving loop looks at the stop event (set by SIGTERM, SIGINT or a test).
STOP_POLL_SECONDS = 0.2
# How long a stop waits for messages being stored before it closes their connections.
STOP_GRACE_SECONDS = 30.0
# aiosmtpd's own reply when the data goes past the size limit.
_AIOSMTPD_TOO_MUCH = "552 Error: Too much mail data"

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Recipients:
    """Which envelope recipients are ours: bounce addresses and the unsubscribe mailbox."""

    signer: Signer
    local_part: str
    bounce_domain: str | None
    mailboxes: frozenset[str]

    @classmethod
    def from_config(cls, config: Config, signer: Signer) -> Recipients:
        """Read the bounce address and the List-Unsubscribe mailto from the config."""
        mailto = config.site.unsubscribe_mailto
        return cls(
            signer=signer,
            local_part=config.bounces.local_part.lower(),
            bounce_domain=config.bounces.domain.lower() if config.bounces.domain else None,
            mailboxes=frozenset({mailto.lower()} if mailto else ()),
        )

    def describe(self) -> str:
        """Name the accepted addresses for the start-up line."""
        names = []
        if self.bounce_domain:
            names.append(f"{self.local_part}[+<token>]@{self.bounce_domain}")
        names.extend(sorted(self.mailboxes))
        return ", ".join(names)

    def accepts(self, address: str) -> bool:
        """Tell whether ``address`` is one of ours (a bounce token must verify)."""
        address = address.strip().strip("<>").lower()
        if address in self.mailboxes:
            return True
        local, _, domain = address.rpartition("@")
        if not self.bounce_domain or domain != self.bounce_domain:
            return False
        if local == self.local_part:
            return True
        token = local.removeprefix(f"{self.local_part}+")
        if token == local:
            return False
        try:
            self.signer.verify_delivery(token)
        except InertTokenError:
            return True  # a test send's bounce: ours, and it acts on nobody
        except TokenError:
            return False
        return True


@dataclass
class InboundHandler:
    """The aiosmtpd handler: check recipients, store each message, reply per recipient."""

    config: Config
    database: Database
    signer: Signer
    recipients: Recipients
    lmtp: bool
    clock: Clock = _utc_now
    busy: int = 0
    handled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        """Accept our addresses; refuse every other one with 550 5.1.1."""
        if not self.recipients.accepts(address):
            logger.info("inbound: refused recipient <%s> from %s", address, _peer(session))
            return f"550 5.1.1 <{address}>: no such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Store the message once per recipient; LMTP gets one reply each, SMTP one in all."""
        raw = envelope.original_content or b""
        self.busy += 1
        try:
            replies = [
                await asyncio.to_thread(self.store, recipient, raw)
                for recipient in envelope.rcpt_tos
            ]
        finally:
            self.busy -= 1
        if self.lmtp:
            return "\r\n".join(replies)
        # One reply for the whole message: any failure to store makes the relay retry it,
        # and the recipients already stored are recorded once when it comes again.
        for code in ("451", "550"):
            failed = next((reply for reply in replies if reply.startswith(code)), None)
            if failed is not None:
                return failed
        return replies[0]

    def store(self, recipient: str, raw: bytes) -> str:
        """Hand one recipient's copy to the intake; return the reply for it."""
        # As a mailbox delivery would: the envelope recipient, which names the delivery's
        # token or the unsubscribe mailbox even where the message's own headers do not.
        copy = f"Delivered-To: {recipient}\r\n".encode("ascii", "replace") + raw
        try:
            handled = take(
                self.config,
                self.database,
                self.signer,
                f"<{recipient}>",
                copy,
                source=SOURCE,
                now=self.clock(),
            )
        except Exception as exc:  # whatever the store raised: the relay keeps it and retries
            logger.error(
                "inbound: could not store a message for <%s> (%s: %s); answered 451, the "
                "relay will try again",
                recipient,
                exc.__class__.__name__,
                exc,
            )
            logger.debug("inbound: store traceback", exc_info=True)
            return "451 4.3.0 could not store the message; try again later"
        if handled.problem is not None:
            logger.warning("inbound: refused a message for <%s>: %s", recipient, handled.problem)
            return "550 5.6.0 the message cannot be read as mail"
        with self.lock:
            self.handled += 1
        report = handled.report
        logger.info(
            "inbound: <%s>: %s%s %s: %s",
            recipient,
            report.kind,
            f" {report.status}" if report.status else "",
            ", ".join(report.recipients) or "-",
            "; ".join(handled.actions) or "-",
        )
        return f"250 2.0.0 <{recipient}> {report.kind}: handled"


def _peer(session: Session) -> str:
    peer = session.peer
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)


class _Lmtp(LMTP):
    """aiosmtpd's LMTP, replying once per recipient to a refused message too (RFC 2033 4.2)."""

    _recipients_at_data = 0
    max_bytes = 0

    async def smtp_DATA(self, arg: str) -> None:
        self._recipients_at_data = len(self.envelope.rcpt_tos) if self.envelope else 0
        try:
            await super().smtp_DATA(arg)
        finally:
            self._recipients_at_data = 0

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = _size_reply(status, self.max_bytes)
            count = self._recipients_at_data
            # aiosmtpd answers an oversize or malformed message once; an LMTP client waits
            # for one reply per accepted recipient. The handler's own replies come joined.
            if count > 1 and status[:1] in ("4", "5") and "\r\n" not in status:
                status = "\r\n".join([status] * count)
        await super().push(status)


class _Smtp(SMTP):
    """aiosmtpd's SMTP, with a size refusal that names the limit."""

    max_bytes = 0

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = _size_reply(status, self.max_bytes)
        await super().push(status)


def _size_reply(status: str, max_bytes: int) -> str:
    if status == _AIOSMTPD_TOO_MUCH:
        return f"552 5.3.4 message larger than {max_bytes} bytes"
    return status


@dataclass
class Receiver:
    """A running receiver: where it listens, what it speaks, and its handler."""

    host: str
    port: int
    protocol: str
    handler: InboundHandler


def run_receiver(
    config: Config,
    database: Database,
    signer: Signer,
    stop: threading.Event,
    *,
    settings: InboundConfig | None = None,
    on_ready: Callable[[Receiver], None] | None = None,
    clock: Clock = _utc_now,
) -> InboundHandler:
    """Listen until ``stop`` is set, then finish the messages being stored and close.

    ``on_ready`` is called with the bound address once the socket listens
    (port 0 picks a free one). Returns the handler, which counts what it did.
    """
    settings = settings or config.inbound
    recipients = Recipients.from_config(config, signer)
    if not recipients.bounce_domain and not recipients.mailboxes:
        raise BriefingError(
            "briefing inbound has no address to accept: neither bounces.domain nor "
            "site.unsubscribe_mailto is set",
            hint="Set bounces.domain (the envelope senders then carry each delivery's token) "
            "and point the relay's transport map for that domain at this receiver.",
        )
    lmtp = settings.protocol == "lmtp"
    handler = InboundHandler(config, database, signer, recipients, lmtp=lmtp, clock=clock)
    loop = asyncio.new_event_loop()
    sessions: list[SMTP] = []

    def factory() -> SMTP:
        protocol_class = _Lmtp if lmtp else _Smtp
        server = protocol_class(
            handler,
            hostname=config.bounces.domain or None,
            data_size_limit=settings.max_bytes,
            loop=loop,
            ident="briefing inbound",
        )
        server.max_bytes = settings.max_bytes
        sessions[:] = [
            s for s in sessions if s.transport is not None and not s.transport.is_closing()
        ]
        sessions.append(server)
        return server

    try:
        try:
            server = loop.run_until_complete(
                loop.create_server(factory, settings.host, settings.port)
            )
        except OSError as exc:
            raise BriefingError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
                hint="Choose another inbound.port, or stop what listens there.",
            ) from exc
        port = server.sockets[0].getsockname()[1]
        if on_ready is not None:
            on_ready(Receiver(settings.host, port, settings.protocol, handler))
        loop.run_until_complete(_wait_for(stop))
        server.close()
        loop.run_until_complete(_drain(handler))
        for session in sessions:
            if session.transport is not None:
                session.transport.close()
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    return handler


async def _wait_for(stop: threading.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(STOP_POLL_SECONDS)


async def _drain(handler: InboundHandler) -> None:
    """Let messages being stored finish (their replies go out) before connections close."""
    waited = 0.0
    while handler.busy and waited < STOP_GRACE_SECONDS:
        await asyncio.sleep(0.05)
        waited += 0.05
    await asyncio.sleep(0.05)  # the last replies are written after the handler returns
