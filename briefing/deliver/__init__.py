"""Deliver composed editions: the ledger-draining engine and its transports."""

from briefing.deliver.engine import DeliveryReport, deliver
from briefing.deliver.transports import OutboxTransport, Transport, TransportResult, make_transport

__all__ = [
    "DeliveryReport",
    "OutboxTransport",
    "Transport",
    "TransportResult",
    "deliver",
    "make_transport",
]
