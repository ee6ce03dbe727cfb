"""Name every state a row can be in, and the moves between them, in one place.

Each state is a :class:`~enum.StrEnum`, so it compares equal to the string
stored in the database and needs no conversion at the edges. The tables of
allowed moves are the rules; code that changes a state asks
:func:`allowed` (or builds its ``WHERE status IN (...)`` from
:func:`sources_of`) instead of spelling the rule again. Migrations keep their
own literal strings: they describe the schema as it was when they ran.

Delivery (one ledger row per message)::

    pending ──> sending ──> sent ──> bounced | complained   (reports that come later by mail)
       │           │──> deferred ──> sending (again)
       │           └──> failed | bounced | suppressed
       └──> skipped | suppressed | expired | cancelled     (deferred too: expired | cancelled)

Subscription::

    pending ──> active ──> unsubscribed | bounced | complained
       ^                          │
       └──── a fresh sign-up ─────┘ (then a confirmed opt-in makes it active again)

Edition (an edition's content as the desk sees it)::

    scheduled ──> held ──> approved        (an editor holds an automatic edition, then approves it)
    scheduled | approved ──> cut           (the variant is frozen at dispatch)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar


class DeliveryState(StrEnum):
    """Where one message of the ledger is."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    SKIPPED = "skipped"
    SUPPRESSED = "suppressed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class SubscriptionState(StrEnum):
    """Where one subscription of an address to a briefing is in its lifecycle."""

    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class EditionState(StrEnum):
    """Where an edition's content is before it is frozen: the desk holds and approves."""

    SCHEDULED = "scheduled"
    HELD = "held"
    APPROVED = "approved"
    CUT = "cut"


class MessageKind(StrEnum):
    """What a ledger row carries: every mail goes through the one delivery path."""

    DIGEST = "digest"
    CONFIRMATION = "confirmation"
    TEST = "test"
    ACCOUNT = "account"  # a reader's self-service link: download, delete, change of address


class ClipStatus(StrEnum):
    """Where an edition's HTML part stands against Gmail's clip of about 102 KB."""

    UNDER = "under"
    NEAR = "near"  # above the warning size
    OVER = "over"  # at the limit: Gmail shows "[Message clipped]"


class AccountAction(StrEnum):
    """What a reader's single-use self-service link does when it is used."""

    EXPORT = "export"  # download everything stored about the address
    DELETE = "delete"  # erase the address and everything stored about it
    MOVE = "move"  # allow a change of address (mailed to the address on file)
    ADOPT = "adopt"  # confirm the new address and move to it (mailed to the new address)
    UNDO = "undo"  # put the old address back (mailed to the old address)


class IngestOutcome(StrEnum):
    """What reading one source, or storing one article, came to."""

    NEW = "new"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"


class SuppressionReason(StrEnum):
    """Why an address is on the suppression list."""

    BOUNCED = "bounced"
    COMPLAINED = "complained"
    UNSUBSCRIBED = "unsubscribed"
    REMOVED = "removed"
    OPERATOR = "operator"  # put on the list by hand (`briefing subscribers suppress`)


class BounceKind(StrEnum):
    """What a message that came back is: a bounce, a complaint, a reply, a request."""

    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto-reply"
    UNSUBSCRIBE = "unsubscribe"
    OTHER = "other"


class BounceMatch(StrEnum):
    """How a report was tied to our mail; only our token or Message-ID may change a state."""

    TOKEN = "token"
    MESSAGE_ID = "message-id"
    ADDRESS = "address"


D = DeliveryState
S = SubscriptionState
E = EditionState

DELIVERY_MOVES: Mapping[DeliveryState, frozenset[DeliveryState]] = {
    D.PENDING: frozenset({D.SENDING, D.SKIPPED, D.SUPPRESSED, D.EXPIRED, D.CANCELLED}),
    # A claim that ends without an outcome (lost lease, stopped run) goes back to pending.
    D.SENDING: frozenset(
        {D.SENT, D.DEFERRED, D.FAILED, D.BOUNCED, D.SUPPRESSED, D.CANCELLED, D.PENDING, D.EXPIRED}
    ),
    D.DEFERRED: frozenset({D.SENDING, D.EXPIRED, D.CANCELLED, D.SUPPRESSED}),
    # A relay took the message; a bounce or a complaint may still arrive by mail.
    D.SENT: frozenset({D.BOUNCED, D.COMPLAINED}),
    D.BOUNCED: frozenset({D.COMPLAINED}),
    D.FAILED: frozenset(),
    D.COMPLAINED: frozenset(),
    D.SKIPPED: frozenset(),
    D.SUPPRESSED: frozenset(),
    D.EXPIRED: frozenset(),
    D.CANCELLED: frozenset(),
}

SUBSCRIPTION_MOVES: Mapping[SubscriptionState, frozenset[SubscriptionState]] = {
    S.PENDING: frozenset({S.ACTIVE, S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED}),
    S.ACTIVE: frozenset({S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED}),
    S.UNSUBSCRIBED: frozenset({S.PENDING, S.ACTIVE}),
    S.BOUNCED: frozenset({S.PENDING, S.ACTIVE}),
    S.COMPLAINED: frozenset({S.PENDING, S.ACTIVE}),
}

EDITION_MOVES: Mapping[EditionState, frozenset[EditionState]] = {
    E.SCHEDULED: frozenset({E.HELD, E.CUT}),
    E.HELD: frozenset({E.APPROVED, E.SCHEDULED}),
    E.APPROVED: frozenset({E.CUT, E.HELD}),
    E.CUT: frozenset(),
}

# Rows a delivery run may claim, and rows not yet settled.
CLAIMABLE: tuple[DeliveryState, ...] = (D.PENDING, D.DEFERRED)
OPEN: tuple[DeliveryState, ...] = (D.PENDING, D.DEFERRED, D.SENDING)
# Deliveries that end with no message handed over (counted apart from failures).
NOT_SENT: tuple[DeliveryState, ...] = (D.SKIPPED, D.SUPPRESSED, D.EXPIRED, D.CANCELLED)
# Subscriptions that no longer receive mail until a fresh confirmed opt-in.
ENDED: tuple[SubscriptionState, ...] = (S.UNSUBSCRIBED, S.BOUNCED, S.COMPLAINED)


State = TypeVar("State", DeliveryState, SubscriptionState, EditionState)


def allowed(moves: Mapping[State, frozenset[State]], old: State, new: State) -> bool:
    """Tell whether ``old -> new`` is a move the table allows (staying put always is)."""
    return old == new or new in moves[old]


def sources_of(moves: Mapping[State, frozenset[State]], target: State) -> tuple[State, ...]:
    """Return every state from which ``target`` may be reached, for a ``WHERE ... IN``."""
    return tuple(state for state, targets in moves.items() if target in targets)


class ProcessKind(StrEnum):
    """What a long-running process registered in the live-process table does."""

    SERVE = "serve"  # the scheduler (one per database)
    DELIVER = "deliver"  # a drain-only delivery worker
    WEB = "web"  # the public web endpoints


class Role(StrEnum):
    """What a desk account may do: editors shape editions, ops run sends, admins both."""

    EDITOR = "editor"  # the coming editions: preview, shape, approve, test sends
    OPS = "ops"  # the sends, schedules, processes and accounts' list
    ADMIN = "admin"  # everything an editor and ops may do

    def may(self, needed: Role) -> bool:
        """Tell whether this role reaches pages meant for ``needed`` (admin reaches all)."""
        return self is Role.ADMIN or self is needed


class DeskAction(StrEnum):
    """What the desk's activity list records (who did it and when are kept beside it)."""

    LOGIN = "login"
    LOGIN_REFUSED = "login refused"  # a wrong name or password
    LOGIN_LIMITED = "login limited"  # too many failures for the account or the network
    LOGOUT = "logout"
    PASSWORD_CHANGED = "password changed"
    USER_ADDED = "user added"
    USER_REMOVED = "user removed"
    OVERRIDE_SAVED = "override saved"  # an issue shaped: pin, drop, headline, summary, ...
    OVERRIDE_UNDONE = "override undone"
    ISSUE_APPROVED = "issue approved"
    TEST_SENT = "test sent"  # an edition mailed as a test, with inert links
    BRIEFING_PAUSED = "briefing paused"  # the detail names the briefing
    BRIEFING_RESUMED = "briefing resumed"
    RUN_NOW_REQUESTED = "run-now requested"
    RUN_CANCELLED = "run cancelled"  # the detail names the briefing and the counts


class ApprovalMode(StrEnum):
    """Whether an issue of a briefing waits for an editor's approval before dispatch."""

    NONE = "none"  # dispatched at each send time, as cut
    REQUIRED = "required"  # held (nothing dispatched) until `briefing approve`


class OverrideKind(StrEnum):
    """What an editor changed in one issue (briefing x issue date) of an automatic briefing."""

    PIN = "pin"  # the article goes to the top of its section (and is kept)
    DROP = "drop"  # the article, and coverage folded under it, is left out
    HEADLINE = "headline"  # the article's headline is replaced for this issue
    SUMMARY = "summary"  # the article's summary is replaced for this issue
    SOURCE = "source"  # of several same-story sources, this article is the one shown
    ADD = "add"  # a stored article is added to its section, whatever its age
