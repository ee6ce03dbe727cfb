"""Serve the public web endpoints: one-click unsubscribe, preferences, sign-up, browser copy.

``app`` builds the Starlette application, ``links`` serves the personal links
every message carries, ``signup`` the double opt-in, ``forms`` guards forms
against cross-site posting, ``limits`` counts sign-ups, ``pages`` renders the
HTML and ``server`` runs it all on uvicorn (``briefing web``).
"""

from briefing.web.app import create_app

__all__ = ["create_app"]
