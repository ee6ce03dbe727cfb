"""Read returned mail from an IMAP folder (``briefing bounces poll``) and move what was handled.

Each message goes through :func:`~briefing.audience.bounces.take`, the same
classify-and-act path as ``bounces import`` and ``briefing inbound``, in its
own transaction; only once that is committed is the message moved to
``handled_folder`` (a message that cannot be read as mail goes to
``failed_folder``, with a warning naming its UID). Moves go in groups of
:data:`GROUP` messages, so a run killed between a commit and its move reads
those messages again next time, and the ``bounce_events`` fingerprint records
each report once. A dry run opens the folder read-only, changes nothing in
the database and moves nothing.
"""

from __future__ import annotations

import imaplib
import logging
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imap_tools import BaseMailBox, MailBox, MailBoxStartTls, MailBoxUnencrypted, MailMessage
from imap_tools.errors import ImapToolsError

from briefing.audience.bounces import Handled, take
from briefing.config import Config, ImapConfig
from briefing.domain.tokens import Signer
from briefing.errors import BriefingError
from briefing.store import Database

logger = logging.getLogger(__name__)

# Messages fetched per IMAP command, and moved per group once handled.
GROUP = 50
TIMEOUT_SECONDS = 60.0


class _RawMessage(MailMessage):
    """imap-tools' message, keeping the bytes as the server sent them (the classifier reads bytes)."""

    def __init__(self, fetch_data: list[Any]) -> None:
        super().__init__(fetch_data)
        self.raw: bytes = self._get_message_data_parts(fetch_data)[0]


@dataclass(frozen=True)
class Polled:
    """One message read from the folder: its UID and what the intake made of it."""

    uid: str
    handled: Handled


def _where(settings: ImapConfig) -> str:
    return f"IMAP {settings.user}@{settings.host}:{settings.port_number}"


@contextmanager
def _errors(settings: ImapConfig, doing: str) -> Iterator[None]:
    """Turn the IMAP library's and the socket's errors into one that names server and step."""
    try:
        yield
    except (OSError, imaplib.IMAP4.error, ImapToolsError) as exc:
        raise BriefingError(
            f"{_where(settings)}: {doing} failed: {exc}",
            hint="Check bounces.imap (host, port, security, user, folders) and "
            "BRIEFING_IMAP_PASSWORD; messages not yet moved are read again next time.",
        ) from exc


def _open(settings: ImapConfig, password: str) -> BaseMailBox:
    host, port = settings.host, settings.port_number
    box: BaseMailBox
    with _errors(settings, "connecting"):
        if settings.security == "ssl":
            box = MailBox(
                host, port, timeout=TIMEOUT_SECONDS, ssl_context=ssl.create_default_context()
            )
        elif settings.security == "starttls":
            box = MailBoxStartTls(
                host, port, timeout=TIMEOUT_SECONDS, ssl_context=ssl.create_default_context()
            )
        else:
            box = MailBoxUnencrypted(host, port, timeout=TIMEOUT_SECONDS)
    with _errors(settings, "logging in"):
        box.login(settings.user, password, initial_folder=None)
    box.email_message_class = _RawMessage
    return box


def poll(
    config: Config,
    database: Database,
    signer: Signer,
    password: str,
    *,
    now: datetime,
    dry_run: bool = False,
) -> Iterator[Polled]:
    """Read every message in ``bounces.imap.folder``, act on each, and move it when handled."""
    settings = config.bounces.imap
    if settings is None:
        raise BriefingError(
            "bounces.imap is not set in config.yaml",
            hint="Add bounces.imap with host, user and folder (see docs/configuration.md).",
        )
    source = f"imap {settings.folder}"
    box = _open(settings, password)
    handled: list[str] = []
    failed: list[str] = []

    def move() -> None:
        for uids, folder in ((handled, settings.handled_folder), (failed, settings.failed_folder)):
            if uids and not dry_run:
                with _errors(settings, f"moving {len(uids)} message(s) to {folder}"):
                    box.move(list(uids), folder)
            uids.clear()

    try:
        if not dry_run:
            for folder in (settings.handled_folder, settings.failed_folder):
                with _errors(settings, f"creating folder {folder}"):
                    if not box.folder.exists(folder):
                        box.folder.create(folder)
                        logger.info("%s: created folder %s", _where(settings), folder)
        with _errors(settings, f"opening folder {settings.folder}"):
            box.folder.set(settings.folder, readonly=dry_run)
        with _errors(settings, f"reading folder {settings.folder}"):
            messages = box.fetch("ALL", mark_seen=False, bulk=GROUP)
            for message in messages:
                assert isinstance(message, _RawMessage)
                uid = message.uid or "?"
                name = f"{settings.folder} UID {uid}"
                outcome = take(
                    config,
                    database,
                    signer,
                    name,
                    message.raw,
                    source=source,
                    now=now,
                    dry_run=dry_run,
                )
                if outcome.problem is not None:
                    logger.warning(
                        "%s: %s: not handled: %s; moved to %s",
                        _where(settings),
                        name,
                        outcome.problem,
                        settings.failed_folder,
                    )
                    failed.append(uid)
                else:
                    handled.append(uid)
                yield Polled(uid, outcome)
                if len(handled) + len(failed) >= GROUP:
                    move()
    finally:
        # What was committed is moved even when a later message failed to store: the rest
        # stays in the folder and is read again next time.
        try:
            move()
        finally:
            with _errors(settings, "logging out"):
                box.logout()
