"""The SMTP transport's own reply reader against a relay on a raw socket.

aiosmtpd writes each reply whole and well formed; a real relay may split a
reply across segments, answer in several lines, hang up halfway through a
reply, or answer with something that is not SMTP. This relay says exactly
the bytes a test gives it, in the pieces the test chooses.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from briefing.config import SmtpConfig
from briefing.deliver.transports import SmtpTransport, TransportResult
from briefing.domain.states import DeliveryState

MESSAGE = b"Subject: hello\r\n\r\n..a line that starts with a dot, stuffed\r\nbody\r\n"
HANG_UP = b""  # in a script: close the connection here


@dataclass
class Relay:
    """Answer MAIL, RCPT, DATA and the final dot from a script; everything else plainly."""

    # Verb (or "." for the end of the message) -> the pieces of its reply, sent one by one.
    script: dict[str, list[bytes]]
    pipelining: bool = True
    received: list[bytes] = field(default_factory=list)  # message bodies taken
    commands: list[bytes] = field(default_factory=list)

    def serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(b"220 relay.test ESMTP\r\n")
        while True:
            line = reader.readline()
            if not line:
                return
            self.commands.append(line)
            verb = line[:4].upper().decode("ascii", "replace").strip()
            if verb == "EHLO":
                extensions = b"250-PIPELINING\r\n" if self.pipelining else b""
                conn.sendall(b"250-relay.test\r\n" + extensions + b"250 8BITMIME\r\n")
            elif verb == "QUIT":
                conn.sendall(b"221 2.0.0 bye\r\n")
                return
            elif verb == "RSET":
                conn.sendall(b"250 2.0.0 reset\r\n")
            else:
                default = b"354 go ahead\r\n" if verb == "DATA" else b"250 2.1.0 ok\r\n"
                if not self._say(conn, self.script.get(verb, [default])):
                    return
                if verb == "DATA" and self.script.get("DATA", [b"354"])[0].startswith(b"354"):
                    body = b""
                    while not body.endswith(b"\r\n.\r\n"):
                        piece = reader.readline()
                        if not piece:
                            return
                        body += piece
                    self.received.append(body)
                    if not self._say(conn, self.script.get(".", [b"250 2.0.0 queued\r\n"])):
                        return

    def _say(self, conn: socket.socket, pieces: list[bytes]) -> bool:
        for piece in pieces:
            if piece == HANG_UP:
                conn.close()
                return False
            conn.sendall(piece)
            time.sleep(0.002)  # a segment of its own
        return True


@contextmanager
def relay(
    script: dict[str, list[bytes]], *, pipelining: bool = True
) -> Iterator[tuple[Relay, int]]:
    server = Relay(script, pipelining=pipelining)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def run() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn, suppress(OSError):
                server.serve(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield server, port
    finally:
        listener.close()
        thread.join(timeout=5)


def transport(port: int) -> SmtpTransport:
    settings = SmtpConfig(
        host="127.0.0.1",
        port=port,
        security="none",
        command_timeout=5,
        connect_attempts=1,
        reconnect_backoff=0.01,
    )
    return SmtpTransport(settings, sleep=lambda _: None)


def send_one(
    script: dict[str, list[bytes]], *, pipelining: bool = True
) -> tuple[TransportResult, Relay]:
    with relay(script, pipelining=pipelining) as (server, port):
        smtp = transport(port)
        try:
            result = smtp.send("news@example.org", "ann@example.com", MESSAGE)
        finally:
            smtp.close()
    return result, server


def test_a_multi_line_reply_split_into_single_bytes_is_read_whole() -> None:
    reply = b"250-2.0.0 accepted,\r\n250-held for\r\n250 2.0.0 queued as ABC\r\n"
    result, server = send_one({".": [bytes([b]) for b in reply]})
    assert result.outcome == DeliveryState.SENT
    assert (result.code, result.stage) == (250, "data-end")
    assert result.reply == "250 2.0.0 accepted, held for 2.0.0 queued as ABC"
    assert server.received == [MESSAGE + b".\r\n"]


def test_pipelined_commands_go_in_one_write_and_a_refused_recipient_ends_the_data() -> None:
    script = {
        "RCPT": [b"550-5.1.1 <ann@example.com>: no such\r\n550 5.1.1 user here\r\n"],
        "DATA": [b"554 5.5.1 no valid recipients\r\n"],
    }
    result, server = send_one(script)
    assert result.outcome == DeliveryState.BOUNCED
    assert (result.code, result.stage) == (550, "rcpt")
    assert result.reply == "550 5.1.1 <ann@example.com>: no such 5.1.1 user here"
    assert server.received == []
    verbs = [c[:4] for c in server.commands]
    assert verbs[1:4] == [b"MAIL", b"RCPT", b"DATA"] and b"RSET" in verbs


def test_lock_step_without_pipelining_stops_at_the_first_refusal() -> None:
    result, server = send_one({"MAIL": [b"451 4.3.0 try later\r\n"]}, pipelining=False)
    assert result.outcome == DeliveryState.DEFERRED
    assert (result.code, result.stage) == (451, "mail")
    assert [c[:4] for c in server.commands if c[:4] in (b"RCPT", b"DATA")] == []


def test_a_relay_that_hangs_up_halfway_through_the_final_reply_leaves_it_deferred() -> None:
    result, _ = send_one({".": [b"250-2.0.0 queu", HANG_UP]})
    assert result.outcome == DeliveryState.DEFERRED
    assert result.stage == "data-end"
    assert "connection lost waiting for the reply" in (result.reply or "")


def test_a_reply_that_is_not_smtp_is_deferred_and_the_connection_dropped() -> None:
    with relay({".": [b"hello there\r\n"]}) as (_, port):
        smtp = transport(port)
        try:
            result = smtp.send("news@example.org", "ann@example.com", MESSAGE)
            assert result.outcome == DeliveryState.DEFERRED
            assert result.stage == "data-end" and "hello there" in (result.reply or "")
            assert smtp._idle == []  # not reused
        finally:
            smtp.close()


def test_a_reply_line_over_the_limit_is_a_dropped_connection_not_a_hang() -> None:
    result, _ = send_one({".": [b"250 " + b"x" * 9000 + b"\r\n"]})
    assert result.outcome == DeliveryState.DEFERRED
    assert "over 8,192 bytes" in (result.reply or "")


def test_consecutive_messages_on_one_connection_read_their_own_replies() -> None:
    script = {".": [b"250 2.0.0 queued\r\n"]}
    with relay(script) as (server, port):
        smtp = transport(port)
        try:
            results = [
                smtp.send("news@example.org", f"r{n}@example.com", MESSAGE) for n in range(5)
            ]
        finally:
            smtp.close()
    assert [r.outcome for r in results] == [DeliveryState.SENT] * 5
    assert smtp.opened == 1 and len(server.received) == 5
