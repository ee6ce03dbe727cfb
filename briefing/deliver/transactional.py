"""Send the ledger's transactional mail (confirmations) the way digests go out.

:func:`drain_transactional` claims due transactional rows, composes each
message at send time, signs it (DKIM) when configured, hands it to the
configured transport with the same envelope (bounce) address as a digest, and
records the outcome with the ledger's functions. A temporary failure leaves
the row ``deferred`` with a backoff (``delivery.retry``), never past the
message's own deadline, after which it is ``expired``. A pause of a briefing
does not hold these rows: a reader waiting for a confirmation link is there now.

Composing is left to the caller (a mapping of message kind to composer), so
this module knows the ledger and the transport, not what a confirmation says.
The message is composed at send time rather than stored at queue time: the
ledger keeps only the Message-ID, so a resend is the same message (only Date
differs), a fixed template or From address applies to mail still queued, and
no copy of the address or the link lives outside the sign-up it belongs to.

:class:`TransactionalDrainer` runs the drain in a background thread every
``interval`` seconds (the web process starts one); ``send`` and ``serve``
call :func:`drain_transactional` themselves.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from briefing.config import Config, signing_keys
from briefing.deliver.dkim import DkimSigner
from briefing.deliver.transports import Transport, TransportResult, make_transport
from briefing.deliver.transports.base import to_wire
from briefing.domain.states import DeliveryState
from briefing.domain.tokens import Signer
from briefing.errors import BriefingError, SessionError
from briefing.pipeline.personalise import DELIVERY_HEADER
from briefing.store import Database, ledger
from briefing.store.ledger import AttemptOutcome, new_owner
from briefing.store.messages import Composers, Queued, claim_transactional, load_transactional

logger = logging.getLogger(__name__)

BATCH = 50
DRAIN_INTERVAL = 1.5  # seconds between the web process's polls


def retry_at(config: Config, tries: int, now: datetime, deadline: datetime) -> datetime | None:
    """Return when to try again after ``tries`` temporary failures, or None once past deadline.

    The first ``retry.attempts_per_run`` tries back off like a delivery run
    (``backoff`` doubled each time, at most ``max_backoff``); later ones wait
    ``retry.later``.
    """
    if now >= deadline:
        return None
    retry = config.delivery.retry
    if tries < retry.attempts_per_run:
        delay = timedelta(seconds=min(retry.max_backoff, retry.backoff * 2 ** (tries - 1)))
    else:
        delay = retry.later
    return min(now + delay, deadline)


def drain_transactional(
    config: Config,
    database: Database,
    composers: Composers,
    *,
    transport: Transport | None = None,
    dkim: DkimSigner | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    owner: str | None = None,
    limit: int = BATCH,
    signer: Signer | None = None,
    take_over_local: bool = True,
) -> Counter[DeliveryState]:
    """Send every due transactional message once; count the states they were left in.

    ``transport`` is made from the config (and closed) only when something is
    due, so an idle poll opens no connection. ``signer`` (default: from the
    environment's keys) signs the delivery token of the bounce address and the
    ``X-Briefing-Delivery`` header. ``take_over_local=False`` (``briefing
    deliver`` workers) takes over other runs' claims only when their leases lapse.
    """
    if signer is None:
        try:
            signer = Signer(signing_keys())
        except BriefingError:
            signer = None  # the message names no delivery; composing will say what is missing
    owner = owner or new_owner()
    lease = timedelta(seconds=config.delivery.lease)
    counts: Counter[DeliveryState] = Counter()
    own_transport: Transport | None = None
    try:
        if take_over_local:
            with database.transaction() as session:
                ledger.release_dead_claims(session, clock())
        while True:
            now = clock()
            with database.transaction() as session:
                ids = claim_transactional(session, owner, now, limit, lease=lease)
                if not ids:
                    break
                queued, settled = load_transactional(session, ids, now)
                ledger.settle(session, owner, settled, now)
            for settlement in settled:
                counts[DeliveryState(settlement.status)] += 1
                logger.info(
                    "delivery %d: %s (%s)",
                    settlement.delivery_id,
                    settlement.status,
                    settlement.reason,
                )
            if queued and transport is None:
                transport = own_transport = make_transport(config)
            stopped = False
            for number, message in enumerate(queued):
                assert transport is not None
                try:
                    outcome = _send_one(config, composers, transport, dkim, message, clock, signer)
                except SessionError as exc:
                    logger.error("transactional mail held back: %s", exc.message)
                    with database.transaction() as session:
                        rest = [m.delivery_id for m in queued[number:]]
                        ledger.release(session, owner, rest, clock())
                    stopped = True
                    break
                with database.transaction() as session:
                    ledger.write_outcomes(session, owner, [outcome], clock(), lease)
                    # Keep the rest of the batch ours while a slow relay takes its time.
                    ledger.heartbeat(session, owner, clock(), lease)
                    if outcome.status == DeliveryState.BOUNCED:
                        ledger.suppress_bounce(
                            session, message.delivery_id, message.recipient, outcome.reply, now
                        )
                counts[DeliveryState(outcome.status)] += 1
            if stopped or len(ids) < limit:
                break
    finally:
        if own_transport is not None:
            own_transport.close()
    return counts


def _send_one(
    config: Config,
    composers: Composers,
    transport: Transport,
    dkim: DkimSigner | None,
    message: Queued,
    clock: Callable[[], datetime],
    signer: Signer | None = None,
) -> AttemptOutcome:
    """Compose, sign and send one message; return the outcome to record (SessionError passes)."""
    started = clock()
    token = signer.delivery_token(message.delivery_id) if signer is not None else None
    try:
        raw = composers[message.kind](message, started)
        if token is not None:
            end = b"\r\n" if b"\r\n" in raw[:1000] else b"\n"
            raw = f"{DELIVERY_HEADER}: {token}".encode("ascii") + end + raw
        if dkim is not None:
            raw = dkim.sign(raw)
        if transport.wire_form:
            raw = to_wire(raw)
    except (BriefingError, KeyError, ValueError, UnicodeError) as exc:
        result = TransportResult(
            DeliveryState.FAILED, reply=f"cannot build the message: {exc}", stage="compose"
        )
    else:
        sender = transport.envelope_sender(
            config.site.from_address,
            briefing=message.briefing,
            recipient=message.recipient,
            token=token,
        )
        try:
            result = transport.send(sender, message.recipient, raw)
        except SessionError:
            raise
        except Exception as exc:
            logger.exception("delivery %d: transport error", message.delivery_id)
            result = TransportResult(
                DeliveryState.DEFERRED, reply=f"transport error: {exc!r}", stage="send"
            )
    finished = clock()
    status = DeliveryState(result.outcome)
    next_attempt: datetime | None = None
    if status == DeliveryState.DEFERRED:
        next_attempt = retry_at(config, message.attempts + 1, finished, message.deadline)
        if next_attempt is None:
            status = DeliveryState.EXPIRED
    if status != DeliveryState.SENT:
        logger.warning(
            "%s %d to %s: %s at %s: %s",
            message.kind,
            message.delivery_id,
            message.recipient,
            status,
            result.stage,
            result.reply,
        )
    else:
        logger.info("%s %d sent to %s", message.kind, message.delivery_id, message.recipient)
    return AttemptOutcome(
        message.delivery_id,
        status,
        result.outcome,
        started,
        finished,
        code=result.code,
        reply=result.reply,
        stage=result.stage,
        next_attempt_at=next_attempt,
    )


class TransactionalDrainer:
    """Drain transactional mail in a background thread every ``interval`` seconds.

    One thread per process, and a lock so a drain never overlaps another in
    the same process; across processes (several web workers, ``serve``,
    ``send``) the ledger's claim makes a double send impossible.
    """

    _lock = threading.Lock()

    def __init__(
        self,
        config: Config,
        database: Database,
        composers: Composers,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        interval: float = DRAIN_INTERVAL,
    ) -> None:
        self.config = config
        self.database = database
        self.composers = composers
        self.clock = clock
        self.interval = interval
        self.owner = new_owner()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._dkim: DkimSigner | None = None

    def start(self) -> None:
        """Start the thread; without a usable DKIM key, say why and leave mail queued."""
        try:
            self._dkim = DkimSigner.from_config(self.config)
        except BriefingError as exc:
            logger.error(
                "transactional mail is not sent from this process: %s%s",
                exc.message,
                f" ({exc.hint})" if exc.hint else "",
            )
            return
        self._thread = threading.Thread(target=self._loop, name="transactional-mail", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Drain now rather than at the next poll (a sign-up was just queued)."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling and wait for a drain in progress to finish."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def drain_once(self) -> Counter[DeliveryState]:
        """Run one drain now, unless one is already running in this process."""
        if not self._lock.acquire(blocking=False):
            return Counter()
        try:
            return drain_transactional(
                self.config,
                self.database,
                self.composers,
                dkim=self._dkim,
                clock=self.clock,
                owner=self.owner,
            )
        finally:
            self._lock.release()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain_once()
            except Exception as exc:  # the web process goes on; the next poll tries again
                logger.error("transactional mail drain failed: %s", exc)
                logger.debug("transactional mail drain traceback", exc_info=True)
            self._wake.wait(self.interval)
            self._wake.clear()
