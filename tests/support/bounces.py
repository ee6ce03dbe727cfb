"""Build returned mail as the RFCs show it: DSNs (RFC 3464), ARF reports (RFC 5965), replies."""

from __future__ import annotations

import mailbox
from pathlib import Path


def dsn(
    *,
    to: str,
    recipient: str,
    status: str,
    action: str = "failed",
    original_headers: str = "",
    message_id: str = "<dsn-1@mx.example.net>",
) -> bytes:
    """Return a delivery status notification in the form of RFC 3464's examples."""
    diagnostic = {"5": "550", "4": "452", "2": "250"}[status[0]]
    return (
        "From: Mail Delivery Subsystem <MAILER-DAEMON@mx.example.net>\r\n"
        f"To: {to}\r\n"
        "Subject: Returned mail: see transcript for details\r\n"
        f"Message-ID: {message_id}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="RAA14128"\r\n'
        "\r\n"
        "--RAA14128\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "The original message was received but could not be delivered.\r\n"
        "\r\n"
        "--RAA14128\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n"
        "Arrival-Date: Thu, 26 Nov 2026 07:00:05 +0000\r\n"
        "\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Final-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic} {status} mailbox problem\r\n"
        "\r\n"
        "--RAA14128\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"{original_headers}"
        "Subject: The Daily\r\n"
        "\r\n"
        "--RAA14128--\r\n"
    ).encode()


def arf(*, recipient: str, original: bytes, message_id: str = "<arf-1@fbl.example.net>") -> bytes:
    """Return an abuse report in the form of RFC 5965's example, the original message attached."""
    return (
        (
            "From: <abusedesk@example.net>\r\n"
            "Date: Thu, 26 Nov 2026 09:00:00 +0000\r\n"
            "Subject: FW: The Daily\r\n"
            "To: <briefing@news.example.org>\r\n"
            f"Message-ID: {message_id}\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=feedback-report;\r\n"
            '     boundary="part1_13d.2e68ed54_boundary"\r\n'
            "\r\n"
            "--part1_13d.2e68ed54_boundary\r\n"
            'Content-Type: text/plain; charset="US-ASCII"\r\n'
            "\r\n"
            "This is an email abuse report for an email message received from IP\r\n"
            "192.0.2.1 on Thu, 26 Nov 2026 07:00:05 +0000.\r\n"
            "\r\n"
            "--part1_13d.2e68ed54_boundary\r\n"
            "Content-Type: message/feedback-report\r\n"
            "\r\n"
            "Feedback-Type: abuse\r\n"
            "User-Agent: SomeGenerator/1.0\r\n"
            "Version: 1\r\n"
            f"Original-Rcpt-To: <{recipient}>\r\n"
            "Source-IP: 192.0.2.1\r\n"
            "\r\n"
            "--part1_13d.2e68ed54_boundary\r\n"
            "Content-Type: message/rfc822\r\n"
            "Content-Disposition: inline\r\n"
            "\r\n"
        ).encode()
        + original.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        + (b"\r\n--part1_13d.2e68ed54_boundary--\r\n")
    )


def auto_reply(*, sender: str, in_reply_to: str) -> bytes:
    """Return an out-of-office reply marked as RFC 3834 asks."""
    return (
        f"From: {sender}\r\n"
        "To: briefing@news.example.org\r\n"
        "Subject: Out of office: The Daily\r\n"
        "Message-ID: <ooo-1@example.com>\r\n"
        f"In-Reply-To: {in_reply_to}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "\r\n"
        "I am away until Monday.\r\n"
    ).encode()


def unsubscribe_mail(*, sender: str, to: str, subject: str) -> bytes:
    """Return the mail a client sends to a List-Unsubscribe mailto."""
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Message-ID: <unsub-1@example.com>\r\n\r\n\r\n"
    ).encode()


def maildir_of(folder: Path, messages: list[bytes]) -> Path:
    """Write ``messages`` into a new Maildir at ``folder``."""
    box = mailbox.Maildir(folder, create=True)
    for raw in messages:
        box.add(raw)
    return folder
