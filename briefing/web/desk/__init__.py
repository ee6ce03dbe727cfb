"""The desk: the newsroom's own pages under ``<base_url>/desk/``.

Routes (``<base>`` is the path of ``site.base_url``):

    GET  <base>/desk/login      the login form (``next=`` a desk page to go back to)
    POST <base>/desk/login      log in: a new session, its id in an HttpOnly cookie
    POST <base>/desk/logout     end this session
    GET  <base>/desk/           the briefings with their next send (every role)
    GET  <base>/desk/activity   who did what and when (ops, admin: all; editors: their own)
    GET  <base>/desk/password   change one's own password (every role)
    POST <base>/desk/password   ... every session of the account ends, this browser logs in anew
    GET  <base>/desk/ops/users  the accounts, their roles and sessions (ops, admin)
    GET  <base>/desk/edition/{briefing}/[{YYYY-MM-DD}[/shape|/undo|/approve]]
                                the coming edition: see it (editor, ops, admin), shape and
                                approve it (editor, admin); see :mod:`.edition`
    GET  <base>/desk/archive/   every briefing's latest issues with delivery figures (every role)
    GET  <base>/desk/archive/<briefing>/             its issues, newest first, paged
    GET  <base>/desk/archive/<briefing>/<YYYY-MM-DD> one issue: variants, figures, a frame
    GET  <base>/desk/archive/<briefing>/<YYYY-MM-DD>/<variant>/html|text  a variant, inert links
    GET  <base>/desk/edition/{briefing}/{YYYY-MM-DD}/preview       an edition as its reader
         gets it (``?sections=a,b`` or ``?subscriber=``): framed, text, headers, size,
         warnings (editor, admin)
    GET  <base>/desk/edition/{briefing}/{YYYY-MM-DD}/preview/html  the email alone, for the
         preview's sandboxed iframes (``&scheme=light|dark``)
    POST <base>/desk/edition/{briefing}/{YYYY-MM-DD}/test          mail it as a test

The ops pages (ops, admin; :mod:`briefing.web.desk.ops`):

    GET  <base>/desk/ops/                  what needs a person, each briefing's state, controls
    GET  <base>/desk/ops/schedule          next sends by timezone and local time, with counts
    GET  <base>/desk/ops/sources           each source's health
    GET  <base>/desk/ops/deliveries        recent issues with deliveries by state (paged)
    GET  <base>/desk/ops/deliveries/B/D    one issue: counts, failures with SMTP replies (paged)
    GET  <base>/desk/ops/processes         serve, deliver workers, web: heartbeats, stale marked
    GET  <base>/desk/ops/bounces           bounce and complaint events (paged)
    GET  <base>/desk/ops/briefings/B/A     confirm a control A (pause, resume, run-now, cancel)
    POST <base>/desk/ops/briefings/B/A     ... apply it (with ``confirm=yes``), then 303 back

Every route but the login goes through :func:`~briefing.web.desk.auth.desk_page`.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from briefing.web.desk import archive, edition, ops, preview, views
from briefing.web.desk.auth import Desk

__all__ = ["Desk", "routes"]

EDITION = "/desk/edition/{briefing}/{day}"


def routes() -> list[BaseRoute]:
    """Return the desk's routes, relative to the site's prefix."""
    return [
        Route("/desk/login", views.login_page, methods=["GET"]),
        Route("/desk/login", views.login_post, methods=["POST"]),
        Route("/desk/logout", views.logout_post, methods=["POST"]),
        Route("/desk/", views.home, methods=["GET"]),
        Route("/desk/activity", views.activity_page, methods=["GET"]),
        Route("/desk/password", views.password_page, methods=["GET"]),
        Route("/desk/password", views.password_post, methods=["POST"]),
        Route("/desk/ops/users", views.users_page, methods=["GET"]),
        Route("/desk/edition/{briefing}/", edition.edition_default, methods=["GET"]),
        Route("/desk/edition/{briefing}/{issue_date}", edition.edition_page, methods=["GET"]),
        Route("/desk/edition/{briefing}/{issue_date}/shape", edition.shape_post, methods=["POST"]),
        Route("/desk/edition/{briefing}/{issue_date}/undo", edition.undo_post, methods=["POST"]),
        Route(
            "/desk/edition/{briefing}/{issue_date}/approve", edition.approve_post, methods=["POST"]
        ),
        Route("/desk/archive/", archive.archive_home, methods=["GET"]),
        Route("/desk/archive/{briefing}/", archive.archive_briefing, methods=["GET"]),
        Route("/desk/archive/{briefing}/{day}", archive.archive_issue, methods=["GET"]),
        Route("/desk/archive/{briefing}/{day}/{variant}/html", archive.variant_html),
        Route("/desk/archive/{briefing}/{day}/{variant}/text", archive.variant_text),
        Route(f"{EDITION}/preview", preview.preview_page, methods=["GET"]),
        Route(f"{EDITION}/preview/html", preview.preview_html, methods=["GET"]),
        Route(f"{EDITION}/test", preview.send_test_post, methods=["POST"]),
        Route("/desk/ops/", ops.overview, methods=["GET"]),
        Route("/desk/ops/schedule", ops.schedule_page, methods=["GET"]),
        Route("/desk/ops/sources", ops.sources_page, methods=["GET"]),
        Route("/desk/ops/deliveries", ops.deliveries_page, methods=["GET"]),
        Route("/desk/ops/deliveries/{briefing}/{issue}", ops.issue_page, methods=["GET"]),
        Route("/desk/ops/processes", ops.processes_page, methods=["GET"]),
        Route("/desk/ops/bounces", ops.bounces_page, methods=["GET"]),
        Route("/desk/ops/briefings/{briefing}/{action}", ops.control_page, methods=["GET"]),
        Route("/desk/ops/briefings/{briefing}/{action}", ops.control_post, methods=["POST"]),
    ]
