"""Deliver composed editions: the ledger-draining engine and its transports."""

from briefing.deliver.dkim import DkimSigner
from briefing.deliver.engine import deliver
from briefing.deliver.report import DeliveryReport
from briefing.deliver.transports import (
    OutboxTransport,
    Transport,
    TransportResult,
    make_transport,
    transport_factories,
)

__all__ = [
    "DeliveryReport",
    "DkimSigner",
    "OutboxTransport",
    "Transport",
    "TransportResult",
    "deliver",
    "make_transport",
    "transport_factories",
]
