"""Keep the desk's accounts: editors, ops and admins, their logins, sessions and activity.

These are the newsroom's own people, not readers. An account has a name, a
role and an Argon2 hash of its password (rehashed at login when the hashing
parameters change); there is no default account: the first one is made with
``briefing users add``.

A login is refused, with the same answer whether or not the name exists, after
``desk.failures_per_account`` failures of one name or
``desk.failures_per_network`` failures from one client network within
``desk.failure_window``; an unknown name costs the same Argon2 verification as
a known one. A session is a random id (``secrets.token_urlsafe(32)``) that
only the browser holds; the database keeps its SHA-256. A login always makes a
new one (and ends the one the browser brought), so an id planted before the
login is never the session after it. A session ends at logout, after
``desk.idle_timeout`` unused or ``desk.max_age`` after its login, and every
session of an account ends when its password changes or it is removed.

Every login, refusal, logout and change of an account goes to the activity
list with who, what and when.
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from briefing.config import DeskConfig
from briefing.domain.states import DeskAction, Role
from briefing.errors import AccountError
from briefing.store import Database, Session
from briefing.store.users import (
    ActivityRow,
    UserRow,
    activity,
    add_session,
    add_user,
    all_users,
    clear_failures,
    delete_expired_sessions,
    delete_session,
    delete_sessions_of,
    failures_since,
    record_activity,
    record_failure,
    remove_user,
    session_by_hash,
    session_counts,
    set_password_hash,
    touch_session,
    user_named,
)

logger = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024
# A session's last use is written at most this often, not on every page.
TOUCH_EVERY = timedelta(seconds=30)


def normalise_name(name: str) -> str:
    """Return an account name as stored: trimmed and lowercased."""
    return name.strip().lower()


def check_name(name: str) -> str:
    """Return a valid account name, normalised, or raise AccountError."""
    normal = normalise_name(name)
    if not NAME_PATTERN.match(normal):
        raise AccountError(
            name,
            "a name is 1 to 64 letters, digits, dots, dashes or underscores, "
            "starting with a letter or digit",
        )
    return normal


def check_password(name: str, password: str) -> str:
    """Return ``password`` if it is acceptable for ``name``, else raise AccountError."""
    if len(password) < MIN_PASSWORD:
        raise AccountError(name, f"the password must have at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(name, f"the password must have at most {MAX_PASSWORD} characters")
    if password.strip().lower() == name:
        raise AccountError(name, "the password must not be the account's name")
    return password


@dataclass(frozen=True)
class Actor:
    """Who did something: a desk account, or someone at the command line."""

    user_id: int | None
    name: str

    @classmethod
    def command_line(cls) -> Actor:
        """Return the actor of a ``briefing users`` command: the system user running it."""
        try:
            who = getpass.getuser()
        except (KeyError, OSError):
            who = "unknown"
        return cls(None, f"{who} (command line)"[:64])


@dataclass(frozen=True)
class DeskUser:
    """A logged-in account, as the desk's pages see it."""

    id: int
    name: str
    role: Role

    @property
    def actor(self) -> Actor:
        """Return this account as the author of an action."""
        return Actor(self.id, self.name)


@dataclass(frozen=True)
class UserListing:
    """One account in ``users list`` and on the ops page."""

    name: str
    role: Role
    created_at: datetime
    password_changed_at: datetime
    sessions: int


@dataclass(frozen=True)
class LoginResult:
    """What a login attempt came to: a new session id, or a refusal (limited or not)."""

    user: DeskUser | None = None
    session_id: str | None = None
    limited: bool = False


@dataclass(frozen=True)
class SessionCheck:
    """A session id looked up: its account, or whether it was known but expired."""

    user: DeskUser | None
    expired: bool = False


def hash_session_id(session_id: str) -> str:
    """Return what the database keeps of a session id: its SHA-256, in hex."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def _desk_user(row: UserRow) -> DeskUser:
    return DeskUser(row.id, row.name, row.role)


class Accounts:
    """Add, change and remove desk accounts; log them in and keep their sessions."""

    def __init__(
        self,
        database: Database,
        settings: DeskConfig,
        key: bytes | None = None,
        hasher: PasswordHasher | None = None,
    ) -> None:
        """Keep accounts in ``database``; ``key`` (the signing key) is needed to log in.

        The failed-login table holds names and networks as hashes keyed by it,
        so it names no one; managing accounts from the command line needs no key.
        """
        self.database = database
        self.settings = settings
        self.hasher = hasher or PasswordHasher()
        self._key = (
            hmac.new(key, b"briefing:desk-login-limit", hashlib.sha256).digest() if key else None
        )

    @cached_property
    def _decoy(self) -> str:
        # Verified when the name is unknown, so an unknown name costs what a known one does.
        return self.hasher.hash(secrets.token_urlsafe(16))

    def _limit_hash(self, kind: str, value: str) -> str:
        if self._key is None:
            raise AccountError(kind, "logins need the signing key (BRIEFING_SECRET_KEY)")
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # Accounts -------------------------------------------------------------------------

    def add(self, name: str, role: Role, password: str, now: datetime, by: Actor) -> DeskUser:
        """Create an account; refuse a taken name or a weak password, naming the account."""
        name = check_name(name)
        check_password(name, password)
        password_hash = self.hasher.hash(password)
        with self.database.transaction() as session:
            if user_named(session, name) is not None:
                raise AccountError(name, "an account with this name already exists")
            user_id = add_user(session, name, role, password_hash, now)
            self._record(session, now, by, DeskAction.USER_ADDED, f"{name} ({role.value})")
        logger.info("desk account %s (%s) added by %s", name, role.value, by.name)
        return DeskUser(user_id, name, role)

    def users(self, now: datetime) -> list[UserListing]:
        """Return every account by name, with how many live sessions each holds at ``now``."""
        settings = self.settings
        with self.database.transaction() as session:
            counts = session_counts(session, now - settings.idle_timeout, now - settings.max_age)
            return [
                UserListing(
                    row.name,
                    row.role,
                    row.created_at,
                    row.password_changed_at,
                    counts.get(row.id, 0),
                )
                for row in all_users(session)
            ]

    def _existing(self, session: Session, name: str) -> UserRow:
        row = user_named(session, normalise_name(name))
        if row is None:
            raise AccountError(name, "there is no such account", hint="see `briefing users list`")
        return row

    def set_password(self, name: str, password: str, now: datetime, by: Actor) -> int:
        """Give an account a new password and end all its sessions; return how many ended."""
        with self.database.transaction() as session:
            row = self._existing(session, name)
        check_password(row.name, password)
        password_hash = self.hasher.hash(password)
        with self.database.transaction() as session:
            row = self._existing(session, name)
            set_password_hash(session, row.id, password_hash, now)
            ended = delete_sessions_of(session, row.id)
            self._record(session, now, by, DeskAction.PASSWORD_CHANGED, row.name)
        logger.info("desk account %s: password changed by %s", row.name, by.name)
        return ended

    def change_own_password(
        self, user: DeskUser, current: str, new: str, now: datetime
    ) -> str | None:
        """Change a logged-in account's password if ``current`` is right.

        Every session of the account ends, this one included, and a new
        session id is returned for the browser that asked; None if
        ``current`` is wrong (nothing changed). A bad new password raises
        AccountError.
        """
        with self.database.transaction() as session:
            row = self._existing(session, user.name)
        if not self._verify(row.password_hash, current):
            return None
        check_password(row.name, new)
        password_hash = self.hasher.hash(new)
        fresh = secrets.token_urlsafe(32)
        with self.database.transaction() as session:
            set_password_hash(session, row.id, password_hash, now)
            delete_sessions_of(session, row.id)
            add_session(session, row.id, hash_session_id(fresh), now)
            self._record(session, now, user.actor, DeskAction.PASSWORD_CHANGED, row.name)
        return fresh

    def remove(self, name: str, now: datetime, by: Actor) -> None:
        """Remove an account; its sessions end at once."""
        with self.database.transaction() as session:
            row = self._existing(session, name)
            remove_user(session, row.id)
            self._record(session, now, by, DeskAction.USER_REMOVED, f"{row.name} ({row.role})")
        logger.info("desk account %s removed by %s", row.name, by.name)

    # Logins and sessions ----------------------------------------------------------------

    def login(
        self, name: str, password: str, network: str, now: datetime, *, replacing: str | None
    ) -> LoginResult:
        """Check a name and password from a client ``network``; open a session if right.

        ``replacing`` is the session id the browser brought, if any: it ends
        here whatever the outcome of a successful login, so an id set before
        the login is never the one after it.
        """
        settings = self.settings
        normal = normalise_name(name)[:64]
        account_hash = self._limit_hash("account", normal)
        client_hash = self._limit_hash("client", network)
        with self.database.transaction() as session:
            by_account, by_client = failures_since(
                session,
                account_hash=account_hash,
                client_hash=client_hash,
                since=now - settings.failure_window,
            )
            row = user_named(session, normal)
            if (
                by_account >= settings.failures_per_account
                or by_client >= settings.failures_per_network
            ):
                who = Actor(row.id if row else None, normal or "(no name)")
                reason = "account" if by_account >= settings.failures_per_account else "network"
                self._record(
                    session, now, who, DeskAction.LOGIN_LIMITED, f"too many failures ({reason})"
                )
                return LoginResult(limited=True)
            # Counted as a failure before the check and forgotten if it succeeds, so that
            # attempts sent in parallel cannot all pass the limit before any is counted.
            record_failure(
                session,
                account_hash=account_hash,
                client_hash=client_hash,
                now=now,
                forget_before=now - settings.failure_window,
            )
        # Made before the check whatever the name, so the first unknown name is not slower.
        decoy = self._decoy
        # Verified outside any transaction: Argon2 takes a noticeable fraction of a second.
        right = self._verify(row.password_hash if row else decoy, password)
        right = right and row is not None
        rehashed = (
            self.hasher.hash(password)
            if right and row is not None and self.hasher.check_needs_rehash(row.password_hash)
            else None
        )
        with self.database.transaction() as session:
            # The account may have been removed or given another password meanwhile.
            current = user_named(session, normal)
            if right and row is not None:
                right = current is not None and current.password_hash == row.password_hash
            if not right or row is None:
                who = Actor(current.id if current else None, normal or "(no name)")
                self._record(session, now, who, DeskAction.LOGIN_REFUSED, "wrong name or password")
                return LoginResult()
            if rehashed is not None:
                set_password_hash(session, row.id, rehashed)
            if replacing:
                delete_session(session, hash_session_id(replacing))
            delete_expired_sessions(session, now - settings.idle_timeout, now - settings.max_age)
            clear_failures(session, account_hash)
            fresh = secrets.token_urlsafe(32)
            add_session(session, row.id, hash_session_id(fresh), now)
            user = _desk_user(row)
            self._record(session, now, user.actor, DeskAction.LOGIN, "")
        return LoginResult(user=user, session_id=fresh)

    def resume(self, session_id: str, now: datetime) -> SessionCheck:
        """Return the account of a live session; end it here if it expired."""
        settings = self.settings
        id_hash = hash_session_id(session_id)
        with self.database.transaction() as session:
            row = session_by_hash(session, id_hash)
            if row is None:
                return SessionCheck(None)
            if (
                now - row.last_seen_at > settings.idle_timeout
                or now - row.created_at > settings.max_age
            ):
                delete_session(session, id_hash)
                return SessionCheck(None, expired=True)
            if now - row.last_seen_at >= TOUCH_EVERY:
                touch_session(session, row.id, now)
            return SessionCheck(_desk_user(row.user))

    def logout(self, user: DeskUser, session_id: str, now: datetime) -> None:
        """End one session and record it."""
        with self.database.transaction() as session:
            delete_session(session, hash_session_id(session_id))
            self._record(session, now, user.actor, DeskAction.LOGOUT, "")

    # Activity ---------------------------------------------------------------------------

    def _record(
        self, session: Session, now: datetime, by: Actor, action: DeskAction, detail: str
    ) -> None:
        record_activity(
            session, at=now, user_id=by.user_id, user_name=by.name, action=action, detail=detail
        )

    def record(self, by: Actor, action: DeskAction, detail: str, now: datetime) -> None:
        """Add one line to the activity list (for the desk's pages' own actions)."""
        with self.database.transaction() as session:
            self._record(session, now, by, action, detail)

    def activity_for(self, user: DeskUser, limit: int = 200) -> list[ActivityRow]:
        """Return the newest activity: all of it for ops and admins, an editor's own else."""
        with self.database.transaction() as session:
            if user.role.may(Role.OPS):
                return activity(session, limit=limit)
            return activity(session, user_ids=[user.id], limit=limit)
