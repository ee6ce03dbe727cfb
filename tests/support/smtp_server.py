"""A real SMTP server for the tests: aiosmtpd on 127.0.0.1, port 0, told when to fail.

After Mailman's ``testing/mta.py``: it records every message it accepts,
counts connections and attempts per recipient, and follows per-recipient
:class:`Rule` s: reply 451 to the first try, 550 5.1.1 always, 421 and hang
up, hang up after the final dot without a reply, answer slowly. It can also
refuse AUTH, speak STARTTLS or implicit TLS, and advertise PIPELINING.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass
class Rule:
    """How the server treats one recipient (``times``: only the first N tries; None: always)."""

    rcpt: str | None = None  # reply to RCPT TO instead of 250
    data: str | None = None  # reply after the final dot instead of 250
    times: int | None = None
    close: bool = False  # hang up after the reply (with a 421)
    drop: bool = False  # after the final dot, keep the message and hang up without a reply
    delay: float = 0.0  # seconds before the reply to the final dot


@dataclass(frozen=True)
class Received:
    """One message the server accepted (or kept before hanging up)."""

    sender: str
    recipient: str
    data: bytes

    @property
    def message_id(self) -> str:
        """Return the Message-ID header."""
        return str(BytesHeaderParser().parsebytes(self.data)["Message-ID"])


@dataclass
class Handler:
    """The aiosmtpd handler: records, counts and applies the rules."""

    rules: dict[str, Rule] = field(default_factory=dict)
    default: Rule | None = None
    pipelining: bool = False
    received: list[Received] = field(default_factory=list)
    tries: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    on_message: Callable[[Received], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _rule(self, recipient: str) -> Rule | None:
        rule = self.rules.get(recipient, self.default)
        if rule is None:
            return None
        if rule.times is not None and self.tries[recipient] > rule.times:
            return None
        return rule

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        options: list[str],
    ) -> str:
        with self.lock:
            self.tries[address] += 1
        rule = self._rule(address)
        if rule is not None and rule.rcpt:
            if rule.close:
                _hang_up_soon(server)
            return rule.rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipient = envelope.rcpt_tos[0]
        rule = self._rule(recipient)
        data = envelope.original_content or b""
        message = Received(str(envelope.mail_from), recipient, data)
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None and rule.drop:
            self._keep(message)
            assert server.transport is not None
            server.transport.abort()
            return "250 never heard"
        if rule is not None and rule.data:
            if rule.close:
                _hang_up_soon(server)
            return rule.data
        self._keep(message)
        return "250 2.0.0 queued"

    def _keep(self, message: Received) -> None:
        with self.lock:
            self.received.append(message)
        if self.on_message is not None:
            self.on_message(message)

    def per_recipient(self) -> Counter[str]:
        """Count the messages kept for each recipient."""
        with self.lock:
            return Counter(message.recipient for message in self.received)


def _hang_up_soon(server: SMTP) -> None:
    # After the reply is written: aiosmtpd pushes it once the hook returns.
    assert server.transport is not None
    asyncio.get_running_loop().call_later(0.01, server.transport.close)


@dataclass
class Server:
    """A running server: where it listens and what it saw."""

    host: str
    port: int
    handler: Handler


def _refuse(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    return AuthResult(success=False, handled=False)


def _accept(user: str, password: str) -> Callable[..., AuthResult]:
    def check(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and (data.password.decode() == password)
        )
        return AuthResult(success=ok, handled=False)

    return check


@contextmanager
def smtp_server(
    handler: Handler | None = None,
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
    refuse_auth: bool = False,
    smtputf8: bool = False,
) -> Iterator[Server]:
    """Run an SMTP server on 127.0.0.1 on a free port in a thread, for the ``with`` block."""
    handler = handler or Handler()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def factory() -> SMTP:
        handler.connections += 1
        authenticator = _refuse if refuse_auth else _accept(*auth) if auth else None
        with warnings.catch_warnings():
            # AUTH without TLS is what these tests want, on the loopback interface.
            warnings.simplefilter("ignore", UserWarning)
            return SMTP(
                handler,
                hostname="test.smtp",
                tls_context=starttls,
                require_starttls=bool(starttls),
                authenticator=authenticator,
                auth_require_tls=False,
                auth_required=bool(auth or refuse_auth),
                loop=loop,
                data_size_limit=None,
                enable_SMTPUTF8=smtputf8,
            )

    def run() -> None:
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(
            loop.create_server(factory, "127.0.0.1", 0, ssl=implicit_tls)
        )
        holder["server"] = server
        holder["port"] = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()

    thread = threading.Thread(target=run, name="smtp-server", daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield Server("127.0.0.1", holder["port"], handler)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
