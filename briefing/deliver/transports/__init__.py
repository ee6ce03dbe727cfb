"""Hand composed messages to where they go: a Maildir outbox or an SMTP relay.

Every transport keeps the contract in :mod:`briefing.deliver.transports.base`
(rss2email picks smtp, maildir or sendmail the same way). The configured
``delivery.transport`` names one entry of :func:`transport_factories`; a
factory builds the transport from the configuration. The two built-ins
register through the ``briefing_transports`` plugin hook, as a transport from
a plugin does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import cast

from briefing.config import SMTP_PASSWORD_ENV, Config
from briefing.deliver.transports.base import SEND_OUTCOMES, Transport, TransportResult, to_wire
from briefing.deliver.transports.outbox import OutboxTransport
from briefing.deliver.transports.smtp import SmtpTransport
from briefing.errors import BriefingError, SecretError
from briefing.plugins import hookimpl, plugin_transports

Factory = Callable[[Config], Transport]

__all__ = [
    "SEND_OUTCOMES",
    "Factory",
    "OutboxTransport",
    "SmtpTransport",
    "Transport",
    "TransportResult",
    "make_transport",
    "to_wire",
    "transport_factories",
]


def outbox_transport(config: Config) -> Transport:
    """Build the Maildir outbox of ``delivery.outbox``."""
    return OutboxTransport(config.outbox_path)


def smtp_transport(config: Config) -> Transport:
    """Build the SMTP transport of ``delivery.smtp``, with the password from the environment."""
    delivery = config.delivery
    settings = delivery.smtp
    assert settings is not None  # the config validator requires it for smtp
    password = None
    if settings.username:
        password = os.environ.get(SMTP_PASSWORD_ENV) or None
        if password is None:
            raise SecretError(SMTP_PASSWORD_ENV, f"password of SMTP user {settings.username!r}")
    return SmtpTransport(
        settings,
        password=password,
        ca_file=config.resolve(settings.ca_file) if settings.ca_file else None,
        rate_limit=delivery.rate_limit,
        connection_rate_limit=delivery.connection_rate_limit,
        slow_down_period=delivery.slow_down_period,
        bounce_sender=config.bounces.address("{token}"),
    )


@hookimpl
def briefing_transports() -> Mapping[str, Factory]:
    """Register the built-in transports."""
    return {"outbox": outbox_transport, "smtp": smtp_transport}


def transport_factories() -> dict[str, Factory]:
    """Return every known transport (built-in or a plugin's) by its ``delivery.transport`` name."""
    return cast(dict[str, Factory], plugin_transports())


def make_transport(config: Config, factories: Mapping[str, Factory] | None = None) -> Transport:
    """Create the transport ``config.delivery.transport`` names."""
    known = transport_factories() if factories is None else factories
    name = config.delivery.transport
    factory = known.get(name)
    if factory is None:
        raise BriefingError(
            f"delivery.transport {name!r} is not a known transport",
            hint=f"Use one of: {', '.join(sorted(known))}.",
        )
    return factory(config)
