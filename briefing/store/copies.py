"""Read back what one reader was sent: the frozen variant behind their edition."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from briefing.store.schema import Edition


@dataclass(frozen=True)
class EditionCopy:
    """One reader's edition: its variant's HTML with the placeholders for their links."""

    edition_id: int
    subscription_id: int
    html: str
    placeholders: dict[str, Any]


def edition_copy(session: Session, edition_id: int) -> EditionCopy | None:
    """Return the sent copy of an edition, or None if it was never cut or its reader is gone."""
    edition = session.get(Edition, edition_id)
    variant = edition.variant if edition is not None else None
    if edition is None or variant is None or edition.subscription_id is None:
        return None
    return EditionCopy(edition.id, edition.subscription_id, variant.html, variant.placeholders)
