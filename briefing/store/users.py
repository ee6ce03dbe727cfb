"""Keep the desk's accounts, their sessions, failed logins and the activity list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from briefing.domain.states import DeskAction, Role
from briefing.store.schema import DeskActivity, DeskLoginFailure, DeskSession, DeskUser


@dataclass(frozen=True)
class UserRow:
    """One desk account as stored (its hash included, for the login to verify)."""

    id: int
    name: str
    role: Role
    password_hash: str
    created_at: datetime
    password_changed_at: datetime


@dataclass(frozen=True)
class SessionRow:
    """One stored session with its user."""

    id: int
    user: UserRow
    created_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True)
class ActivityRow:
    """One line of the activity list."""

    at: datetime
    user_name: str
    action: str
    detail: str


def _user(row: DeskUser) -> UserRow:
    return UserRow(
        row.id, row.name, Role(row.role), row.password_hash, row.created_at, row.password_changed_at
    )


def user_named(session: Session, name: str) -> UserRow | None:
    """Return the account called ``name``, or None."""
    row = session.scalar(select(DeskUser).where(DeskUser.name == name))
    return _user(row) if row is not None else None


def all_users(session: Session) -> list[UserRow]:
    """Return every account, by name."""
    return [_user(row) for row in session.scalars(select(DeskUser).order_by(DeskUser.name))]


def session_counts(
    session: Session, idle_before: datetime, born_before: datetime
) -> dict[int, int]:
    """Return how many live sessions each account holds (used since, and born since), by id."""
    rows = session.execute(
        select(DeskSession.user_id, func.count())
        .where(DeskSession.last_seen_at >= idle_before, DeskSession.created_at >= born_before)
        .group_by(DeskSession.user_id)
    ).all()
    return {int(user_id): int(count) for user_id, count in rows}


def add_user(session: Session, name: str, role: Role, password_hash: str, now: datetime) -> int:
    """Insert an account and return its id (the unique name refuses a second one)."""
    row = DeskUser(
        name=name,
        role=role.value,
        password_hash=password_hash,
        created_at=now,
        password_changed_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


def set_password_hash(
    session: Session, user_id: int, password_hash: str, now: datetime | None = None
) -> None:
    """Store a new hash; with ``now`` it is a change of password (not a rehash at login)."""
    values: dict[str, object] = {"password_hash": password_hash}
    if now is not None:
        values["password_changed_at"] = now
    session.execute(update(DeskUser).where(DeskUser.id == user_id).values(**values))


def remove_user(session: Session, user_id: int) -> None:
    """Delete an account; its sessions go with it (cascade)."""
    # Deleted here too, not only by the database's cascade, so that SQLite files
    # opened without foreign keys on cannot keep a removed user's session alive.
    session.execute(delete(DeskSession).where(DeskSession.user_id == user_id))
    session.execute(delete(DeskUser).where(DeskUser.id == user_id))


def add_session(session: Session, user_id: int, id_hash: str, now: datetime) -> None:
    """Store a new session by the hash of its id."""
    session.add(DeskSession(id_hash=id_hash, user_id=user_id, created_at=now, last_seen_at=now))


def session_by_hash(session: Session, id_hash: str) -> SessionRow | None:
    """Return the session whose id hashes to ``id_hash``, with its user, or None."""
    found = session.execute(
        select(DeskSession, DeskUser)
        .join(DeskUser, DeskUser.id == DeskSession.user_id)
        .where(DeskSession.id_hash == id_hash)
    ).first()
    if found is None:
        return None
    stored, user = found
    return SessionRow(stored.id, _user(user), stored.created_at, stored.last_seen_at)


def touch_session(session: Session, session_id: int, now: datetime) -> None:
    """Mark a session used at ``now`` (the idle timeout counts from here)."""
    session.execute(
        update(DeskSession).where(DeskSession.id == session_id).values(last_seen_at=now)
    )


def delete_session(session: Session, id_hash: str) -> None:
    """Delete one session by the hash of its id (nothing when there is none)."""
    session.execute(delete(DeskSession).where(DeskSession.id_hash == id_hash))


def delete_sessions_of(session: Session, user_id: int) -> int:
    """Delete every session of one account; return how many there were."""
    result = session.execute(delete(DeskSession).where(DeskSession.user_id == user_id))
    return int(getattr(result, "rowcount", 0) or 0)


def delete_expired_sessions(session: Session, idle_before: datetime, born_before: datetime) -> None:
    """Delete every session idle since ``idle_before`` or created before ``born_before``."""
    session.execute(
        delete(DeskSession).where(
            or_(DeskSession.last_seen_at < idle_before, DeskSession.created_at < born_before)
        )
    )


def failures_since(
    session: Session, *, account_hash: str, client_hash: str, since: datetime
) -> tuple[int, int]:
    """Count the failed logins after ``since``: of this account name, and of this network."""
    by_account = session.scalar(
        select(func.count()).where(
            DeskLoginFailure.account_hash == account_hash, DeskLoginFailure.at > since
        )
    )
    by_client = session.scalar(
        select(func.count()).where(
            DeskLoginFailure.client_hash == client_hash, DeskLoginFailure.at > since
        )
    )
    return int(by_account or 0), int(by_client or 0)


def record_failure(
    session: Session, *, account_hash: str, client_hash: str, now: datetime, forget_before: datetime
) -> None:
    """Count one failed login, and forget those from before ``forget_before``."""
    session.execute(delete(DeskLoginFailure).where(DeskLoginFailure.at < forget_before))
    session.add(DeskLoginFailure(at=now, account_hash=account_hash, client_hash=client_hash))


def clear_failures(session: Session, account_hash: str) -> None:
    """Forget an account name's failed logins (after it logged in)."""
    session.execute(delete(DeskLoginFailure).where(DeskLoginFailure.account_hash == account_hash))


def record_activity(
    session: Session,
    *,
    at: datetime,
    user_id: int | None,
    user_name: str,
    action: DeskAction,
    detail: str = "",
) -> None:
    """Add one line to the activity list."""
    session.add(
        DeskActivity(
            at=at, user_id=user_id, user_name=user_name[:64], action=action.value, detail=detail
        )
    )


def activity(
    session: Session, *, user_ids: Sequence[int] | None = None, limit: int = 200
) -> list[ActivityRow]:
    """Return the newest activity first; only these accounts' with ``user_ids``."""
    query = select(DeskActivity).order_by(DeskActivity.at.desc(), DeskActivity.id.desc())
    if user_ids is not None:
        query = query.where(DeskActivity.user_id.in_(list(user_ids)))
    return [
        ActivityRow(row.at, row.user_name, row.action, row.detail)
        for row in session.scalars(query.limit(limit))
    ]
