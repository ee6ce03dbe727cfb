"""Hold what every endpoint needs, on the application's state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from starlette.requests import Request

from briefing.config import Config
from briefing.domain.tokens import Purpose, Signer
from briefing.store import Database
from briefing.web.forms import FormGuard
from briefing.web.limits import SignupLimiter


@dataclass(frozen=True)
class PageSite:
    """What every page's header and footer show: the site, its address, its privacy notice."""

    name: str
    postal_address: str
    privacy_url: str | None


def utc_now() -> datetime:
    """Return the current time in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class WebContext:
    """What every endpoint needs: config, database, signer, form guard, limits and a clock.

    ``mail_queued`` is called after a request put mail on the ledger, to wake
    the process's transactional drain rather than wait for its next poll.
    """

    config: Config
    database: Database
    signer: Signer
    guard: FormGuard
    limiter: SignupLimiter
    clock: Callable[[], datetime]
    mail_queued: Callable[[], None] = lambda: None
    drains_mail: bool = False  # this process sends transactional mail (confirmations, tests)

    @property
    def site(self) -> PageSite:
        """Return what the pages show of the site (with ``web.privacy_url``)."""
        site = self.config.site
        return PageSite(site.name, site.postal_address, self.config.web.privacy_url)

    @property
    def prefix(self) -> str:
        """Return the path the endpoints live under (``base_url``'s path)."""
        return urlsplit(self.config.site.base_url).path.rstrip("/")

    def path(self, route: str, token: str | None = None) -> str:
        """Return the path of a route, with a token when it takes one."""
        return f"{self.prefix}/{route}" + (f"/{token}" if token else "")

    def verify(self, token: str, purpose: Purpose) -> int:
        """Return the row a token names, or raise TokenError (answered with a 404 page)."""
        return self.signer.verify(token, purpose)


def context_of(request: Request) -> WebContext:
    """Return the application's context."""
    context: WebContext = request.app.state.context
    return context
