"""Send over SMTP through a pool of reused connections, one recipient per transaction.

Each connection is a ``smtplib.SMTP`` (``SMTP_SSL`` for implicit TLS) that
says EHLO, upgrades with STARTTLS when configured (certificates are always
checked, against ``ca_file`` for a local relay with its own CA), logs in when
a user is configured, and then carries up to ``messages_per_connection``
transactions before it is replaced. When the relay offers PIPELINING (RFC
2920) MAIL, RCPT and DATA go in one write and their replies are read
together: two round trips per message instead of four. smtplib opens the
session; the transactions write to the socket and parse replies from their
own buffer (:meth:`SmtpConnection._read`), so pipelined replies that arrive
in one segment cost one system call.

Every reply is classified by its stage (:mod:`briefing.deliver.replies`). A
refused recipient comes back as a :class:`TransportResult`; a refused session
(connect, TLS, AUTH, sender, relaying) raises :class:`SessionError`, because
every further message would fail the same way. A connection that drops is
replaced after a backoff; one that drops after the final dot but before the
reply leaves the message's fate unknown, so it is reported deferred and its
retry is the one duplicate the ledger allows.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from briefing.config import SmtpConfig
from briefing.deliver.ratelimit import RateLimiter
from briefing.deliver.replies import Classified, Reply, Stage, classify
from briefing.deliver.transports.base import Transport, TransportResult
from briefing.domain.states import DeliveryState
from briefing.errors import SessionError
from briefing.pipeline.compose import ascii_address

logger = logging.getLogger(__name__)

_BAD_ADDRESS = re.compile(r"[\s<>\x00-\x1f\x7f]")
MAX_RECONNECT_WAIT = 30.0
_MAX_LINE = 8192  # the longest reply line taken, as smtplib
_RECEIVE = 65536


def envelope_problem(address: str, smtputf8: bool) -> str | None:
    """Say why ``address`` cannot go in an envelope, or None when it can."""
    if _BAD_ADDRESS.search(address) or address.count("@") < 1:
        return f"address {address!r} cannot be used in an SMTP envelope"
    if not address.isascii() and not smtputf8:
        return (
            f"address {address!r} has a non-ASCII local part and the relay does not offer SMTPUTF8"
        )
    return None


class _Dropped(Exception):
    """The connection broke during a transaction."""

    def __init__(self, stage: Stage, reason: str) -> None:
        super().__init__(reason)
        self.stage = stage
        self.reason = reason


class _ConnectFailed(Exception):
    """Opening a connection failed in a way worth retrying."""


_TAKEN = Classified(DeliveryState.SENT)


@dataclass(frozen=True)
class _Answer:
    stage: Stage
    reply: Reply
    classified: Classified


class SmtpConnection:
    """One open session with the relay: EHLO, STARTTLS, AUTH done; ready for transactions."""

    def __init__(
        self,
        settings: SmtpConfig,
        *,
        context: ssl.SSLContext | None,
        password: str | None,
        helo: str,
        rate_limit: float | None,
    ) -> None:
        self.settings = settings
        self.host = f"{settings.host}:{settings.port}"
        self.used = 0  # transactions begun, counted against messages_per_connection
        self.limiter = RateLimiter(rate_limit)
        self._context = context
        self._password = password
        self._helo = helo
        self._smtp: smtplib.SMTP | None = None
        # After the greeting, transactions talk to the socket directly: replies are parsed
        # from this buffer (bytes received and not yet read), not through smtplib's file.
        self._sock: socket.socket | None = None
        self._inbox = b""
        self.pipelining = False
        self.smtputf8 = False

    def open(self) -> None:
        """Connect, greet, secure and log in; raise SessionError or _ConnectFailed."""
        settings = self.settings
        try:
            if settings.security == "tls":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    settings.host,
                    settings.port,
                    local_hostname=self._helo,
                    timeout=settings.connect_timeout,
                    context=self._context,
                )
            else:
                smtp = smtplib.SMTP(
                    settings.host,
                    settings.port,
                    local_hostname=self._helo,
                    timeout=settings.connect_timeout,
                )
        except ssl.SSLError as exc:
            raise self._tls_error(exc) from exc
        except smtplib.SMTPConnectError as exc:
            reply = Reply(exc.smtp_code, _text(exc.smtp_error))
            if reply.code == 421 or 400 <= reply.code < 500:
                raise _ConnectFailed(f"greeting {reply}") from exc
            raise SessionError(self.host, "connect", f"the relay refused us: {reply}") from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise _ConnectFailed(_describe(exc)) from exc
        self._smtp = smtp
        try:
            self._set_timeout(settings.command_timeout)
            self._ehlo()
            if settings.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise SessionError(
                        self.host,
                        "starttls",
                        "the relay does not offer STARTTLS",
                        hint="Use security: tls for an implicit-TLS port (465), or none only "
                        "for a relay on this machine.",
                    )
                try:
                    smtp.starttls(context=self._context)
                except ssl.SSLError as exc:
                    raise self._tls_error(exc) from exc
                except smtplib.SMTPResponseException as exc:
                    raise SessionError(
                        self.host,
                        "starttls",
                        f"STARTTLS refused: {Reply(exc.smtp_code, _text(exc.smtp_error))}",
                    ) from exc
                self._set_timeout(settings.command_timeout)
                self._ehlo()
            if settings.username:
                self._login(settings.username, self._password or "")
            self.pipelining = smtp.has_extn("pipelining")
            self.smtputf8 = smtp.has_extn("smtputf8")
            self._take_socket()
        except (SessionError, _ConnectFailed):
            self.abandon()
            raise
        except (OSError, smtplib.SMTPException) as exc:
            self.abandon()
            raise _ConnectFailed(f"while greeting: {_describe(exc)}") from exc

    def _tls_error(self, exc: ssl.SSLError) -> SessionError:
        return SessionError(
            self.host,
            "tls",
            f"TLS failed: {exc}",
            hint="Check smtp.host matches the relay's certificate; for a relay with its own "
            "CA set smtp.ca_file.",
        )

    def _ehlo(self) -> None:
        assert self._smtp is not None
        code, text = self._smtp.ehlo()
        if not 200 <= code < 300:
            reply = Reply(code, _text(text))
            if code == 421 or 400 <= code < 500:
                raise _ConnectFailed(f"EHLO answered {reply}")
            raise SessionError(self.host, "ehlo", f"EHLO refused: {reply}")

    def _login(self, username: str, password: str) -> None:
        assert self._smtp is not None
        if not self._smtp.has_extn("auth"):
            raise SessionError(
                self.host,
                "auth",
                "the relay does not offer AUTH (after STARTTLS, if configured)",
                hint="Remove smtp.username for a relay that needs no login.",
            )
        try:
            self._smtp.login(username, password)
        except smtplib.SMTPAuthenticationError as exc:
            reply = Reply(exc.smtp_code, _text(exc.smtp_error))
            if reply.code == 421 or 400 <= reply.code < 500:
                raise _ConnectFailed(f"AUTH answered {reply}") from exc
            raise SessionError(
                self.host,
                "auth",
                f"AUTH refused for {username!r}: {reply}",
                hint="Check smtp.username and BRIEFING_SMTP_PASSWORD.",
            ) from exc
        except smtplib.SMTPException as exc:
            raise SessionError(self.host, "auth", f"AUTH failed: {_describe(exc)}") from exc

    def _take_socket(self) -> None:
        # smtplib greeted, secured and logged in; its reader holds nothing more, since a
        # server says nothing unasked. From here on replies are read from the socket here.
        assert self._smtp is not None
        reader = self._smtp.file
        if reader is not None:
            self._smtp.file = None
            with contextlib.suppress(OSError, ValueError):
                reader.close()  # closes the reader only; the socket stays open
        self._sock = self._smtp.sock
        self._inbox = b""

    def _set_timeout(self, seconds: float) -> None:
        sock = self._sock
        if sock is None and self._smtp is not None:
            sock = self._smtp.sock
        if sock is not None:
            sock.settimeout(seconds)

    def _write(self, stage: Stage, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            raise _Dropped(stage, "connection already closed")
        try:
            sock.sendall(data)
        except OSError as exc:
            raise _Dropped(stage, f"connection lost while sending: {_describe(exc)}") from exc

    def _read(self, stage: Stage) -> Reply:
        """Read one reply, all its lines, from the buffer and the socket (RFC 5321 4.2.1)."""
        code, text = self._read_raw(stage)
        return Reply(code, _text(text))

    def _read_raw(self, stage: Stage) -> tuple[int, bytes]:
        """Read one reply: its code and its lines' texts as received, joined by spaces.

        Pipelined replies usually arrive in one segment: the first read fills the
        buffer and the next replies are parsed from it without a system call. The
        text is decoded (:func:`_text`) only for a reply that is kept or reported.
        """
        sock = self._sock
        if sock is None:
            raise _Dropped(stage, "connection lost waiting for the reply: connection closed")
        inbox = self._inbox
        start = 0
        texts: list[bytes] = []
        while True:
            end = inbox.find(b"\n", start)
            if end < 0:
                if len(inbox) - start > _MAX_LINE:
                    self._inbox = b""
                    raise _Dropped(stage, "the relay sent a reply line over 8,192 bytes")
                try:
                    chunk = sock.recv(_RECEIVE)
                except OSError as exc:
                    raise _Dropped(
                        stage, f"connection lost waiting for the reply: {_describe(exc)}"
                    ) from exc
                if not chunk:
                    raise _Dropped(
                        stage, "connection lost waiting for the reply: connection closed"
                    )
                inbox = inbox[start:] + chunk
                start = 0
                continue
            line = inbox[start:end]
            start = end + 1
            if len(line) > _MAX_LINE:
                self._inbox = b""
                raise _Dropped(stage, "the relay sent a reply line over 8,192 bytes")
            texts.append(line[4:].strip(b" \t\r"))
            code = line[:3]
            if not code.isdigit():  # not SMTP: a code no stage expects (smtplib's -1), all said
                self._inbox = inbox[start:]
                return -1, b" ".join([*texts[:-1], line])
            if line[3:4] != b"-":
                self._inbox = inbox[start:]
                return int(code), texts[0] if len(texts) == 1 else b" ".join(texts)

    def transact(self, sender: str, recipient: str, payload: bytes) -> _Answer:
        """Run one MAIL / RCPT / DATA transaction; ``payload`` is the message in DATA form + ``.``."""
        self.used += 1
        utf8 = b" SMTPUTF8" if self.smtputf8 and not (sender + recipient).isascii() else b""
        mail = b"MAIL FROM:<" + sender.encode() + b">" + utf8 + b"\r\n"
        rcpt = b"RCPT TO:<" + recipient.encode() + b">\r\n"
        stages: tuple[tuple[Stage, bytes], ...] = (
            ("mail", mail),
            ("rcpt", rcpt),
            ("data", b"DATA\r\n"),
        )
        replies: list[tuple[Stage, int, bytes]] = []
        if self.pipelining:
            self._write("mail", mail + rcpt + b"DATA\r\n")
            for stage, _ in stages:
                replies.append((stage, *self._read_raw(stage)))
        else:
            for stage, command in stages:
                self._write(stage, command)
                replies.append((stage, *self._read_raw(stage)))
                if not 200 <= replies[-1][1] < 400:
                    break
        for stage, code, text in replies:
            expected = 354 if stage == "data" else 250
            if code != expected and not (stage != "data" and 200 <= code < 300):
                reply = Reply(code, _text(text))
                answer = _Answer(stage, reply, classify(stage, reply))
                if code == 354:  # DATA accepted although RCPT was refused: end it empty
                    self._write("data-end", b".\r\n")
                    self._read_raw("data-end")
                self._reset(answer)
                return answer
        self._set_timeout(self.settings.data_timeout)
        self._write("data", payload)
        reply = self._read("data-end")
        self._set_timeout(self.settings.command_timeout)
        # A 2xx to the final dot: sent (classify's first rule, without its work per message).
        classified = _TAKEN if 200 <= reply.code < 300 else classify("data-end", reply)
        answer = _Answer("data-end", reply, classified)
        if classified.verdict != DeliveryState.SENT:
            self._reset(answer)
        return answer

    def _reset(self, answer: _Answer) -> None:
        # After a refused transaction the server may keep state; RSET clears it.
        if answer.classified.close:
            return
        try:
            self._write("mail", b"RSET\r\n")
            reply = self._read("mail")
        except _Dropped:
            self.abandon()
            return
        if reply.code != 250:
            self.abandon()

    @property
    def usable(self) -> bool:
        """Tell whether the connection is still open."""
        return self._sock is not None and self._smtp is not None and self._smtp.sock is not None

    def quit(self) -> None:
        """Say QUIT and close, ignoring a relay that already hung up."""
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
        self.abandon()

    def abandon(self) -> None:
        """Close the socket without a word (after a drop, a 421 or a session failure)."""
        if self._smtp is not None:
            with contextlib.suppress(OSError):
                self._smtp.close()
        self._smtp = None
        self._sock = None
        self._inbox = b""


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or exc.__class__.__name__


class SmtpTransport(Transport):
    """A pool of up to ``pool_size`` SMTP connections shared by the engine's workers."""

    name = "smtp"
    wire_form = True  # send() takes messages dot-stuffed with CRLF line ends (to_wire)

    def __init__(
        self,
        settings: SmtpConfig,
        *,
        password: str | None = None,
        ca_file: Path | None = None,
        rate_limit: float | None = None,
        connection_rate_limit: float | None = None,
        slow_down_period: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        bounce_sender: str | None = None,
    ) -> None:
        self.settings = settings
        # The envelope sender when smtp.envelope_sender is unset: bounces+{token}@<bounce domain>.
        self.bounce_sender = bounce_sender
        self.connections = settings.pool_size
        self.host = f"{settings.host}:{settings.port}"
        self.limiter = RateLimiter(rate_limit, slow_down_period=slow_down_period)
        self._connection_rate = connection_rate_limit
        self._password = password
        self._sleep = sleep
        self._helo = settings.helo_name or socket.getfqdn()
        self._context: ssl.SSLContext | None = None
        if settings.security != "none":
            self._context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._lock = threading.Lock()
        self._idle: list[SmtpConnection] = []
        self._drops_in_row = 0
        self.opened = 0

    def send(self, sender: str, recipient: str, message: bytes) -> TransportResult:
        """Send one message, in DATA form (:func:`to_wire`), to one recipient over the pool."""
        self.limiter.acquire()
        connection = self._checkout()
        recipient = ascii_address(recipient)
        if (problem := envelope_problem(recipient, connection.smtputf8)) or (
            problem := envelope_problem(sender, connection.smtputf8)
        ):
            self._checkin(connection)
            return TransportResult(DeliveryState.FAILED, reply=problem, stage="rcpt")
        connection.limiter.acquire()
        try:
            answer = connection.transact(sender, recipient, message + b".\r\n")
        except _Dropped as dropped:
            connection.abandon()
            self._dropped()
            logger.info("SMTP %s: %s at %s; reconnecting", self.host, dropped.reason, dropped.stage)
            return TransportResult(
                DeliveryState.DEFERRED, reply=dropped.reason, stage=dropped.stage
            )
        verdict, reply = answer.classified.verdict, answer.reply
        if not isinstance(verdict, DeliveryState):  # the session is refused
            connection.abandon()
            hint = None
            if reply.code == 530:
                hint = "The relay wants a login: set smtp.username and BRIEFING_SMTP_PASSWORD."
            elif answer.stage == "rcpt":
                hint = "The relay will not relay for us: check its relay rules or smtp.username."
            else:
                hint = "Check site.from_address / smtp.envelope_sender with the relay."
            raise SessionError(self.host, answer.stage, str(reply), hint=hint)
        if answer.classified.slow_down:
            rate = self.limiter.slow_down()
            logger.warning(
                "SMTP %s asked to slow down (%s): %.1f messages/s for %.0f s",
                self.host,
                reply,
                rate,
                self.limiter.slow_down_period,
            )
        if answer.classified.close or not connection.usable:
            connection.abandon()
            self._dropped()
        else:
            if verdict == DeliveryState.SENT:
                with self._lock:
                    self._drops_in_row = 0
            self._checkin(connection)
        return TransportResult(
            verdict,
            code=reply.code,
            reply=str(reply),
            stage=answer.stage,
            slow_down=answer.classified.slow_down,
        )

    def _dropped(self) -> None:
        with self._lock:
            self._drops_in_row += 1

    def _checkout(self) -> SmtpConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            drops = self._drops_in_row
        if drops:
            # Back off before reconnecting so a relay that is shedding load gets air.
            self._sleep(_backoff(self.settings.reconnect_backoff, drops))
        last = ""
        for attempt in range(1, self.settings.connect_attempts + 1):
            connection = SmtpConnection(
                self.settings,
                context=self._context,
                password=self._password,
                helo=self._helo,
                rate_limit=self._connection_rate,
            )
            try:
                connection.open()
            except _ConnectFailed as exc:
                last = str(exc)
                logger.warning(
                    "SMTP %s: connection attempt %d failed: %s", self.host, attempt, last
                )
                if attempt < self.settings.connect_attempts:
                    self._sleep(_backoff(self.settings.reconnect_backoff, attempt))
                continue
            with self._lock:
                self.opened += 1
            return connection
        raise SessionError(
            self.host,
            "connect",
            f"cannot open a connection after {self.settings.connect_attempts} attempt(s): {last}",
            hint="Check smtp.host and smtp.port, and that the relay is running and reachable.",
        )

    def _checkin(self, connection: SmtpConnection) -> None:
        if connection.used >= self.settings.messages_per_connection:
            connection.quit()
            return
        with self._lock:
            self._idle.append(connection)

    def describe(self) -> str:
        """Name the relay: ``host:port``."""
        return self.host

    def envelope_sender(
        self, from_address: str, *, briefing: str, recipient: str, token: str | None = None
    ) -> str:
        """Return ``smtp.envelope_sender`` (or the bounce address) filled in, else the From address.

        ``{token}`` is the delivery's signed token; without one (a message
        that names no delivery) the From address is used rather than an
        address whose bounces could not be traced.
        """
        template = self.settings.envelope_sender or self.bounce_sender
        if not template or ("{token}" in template and not token):
            return from_address
        local, _, domain = recipient.rpartition("@")
        return template.format(briefing=briefing, recipient=f"{local}={domain}", token=token)

    def close(self) -> None:
        """QUIT every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.quit()


def _backoff(base: float, failures: int) -> float:
    """Return base x 2^(failures-1), capped, with +-50% jitter so connections do not stampede."""
    return min(MAX_RECONNECT_WAIT, base * 2.0 ** max(failures - 1, 0)) * random.uniform(0.5, 1.5)
