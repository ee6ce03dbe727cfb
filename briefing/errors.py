"""Report what went wrong, where, and how to fix it.

Every error the project raises on purpose derives from :class:`BriefingError`,
which carries a message and an optional hint. The CLI catches it once, prints
both and exits 1; the full traceback appears only with ``--debug``.

    BriefingError
     ├── ConfigError            config.yaml is missing, unreadable or invalid
     ├── SecretError            a secret the run needs is not in the environment
     ├── StoreError             the database cannot be opened or migrated
     ├── SourceError            one source could not be read or parsed
     │    └── ArticleError      one entry of a source is malformed
     ├── SubscriberRowError     one row of a subscriber list is invalid
     ├── RenderError            a template failed to render or MJML rejected it
     ├── TokenError             a link token is malformed, forged or inert
     ├── DeliveryError          a message could not be handed to the transport
     ├── EditionError           an issue cannot be shaped or approved as asked (article,
 │                          briefing or date named)
 ├── SchedulerError         the scheduler or an ops command cannot act
     │    └── SchedulerLockError  another `briefing serve` holds this database
     ├── SessionError           the relay refused the whole session (connect, TLS, AUTH,
     │                          relaying, sender): the run stops, deliveries stay pending
     ├── DkimError              the DKIM key cannot be read or used
     └── AccountError           a desk account cannot be added, changed or removed
"""

from __future__ import annotations

from pathlib import Path


class BriefingError(Exception):
    """Report a failure the user can act on."""

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(BriefingError):
    """Report an invalid configuration with its file and key path."""

    hint = "Fix the key named above, then run `briefing config check`."

    def __init__(
        self,
        path: Path | str,
        problems: list[str],
        *,
        hint: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.problems = problems
        lines = "\n".join(f"  {problem}" for problem in problems)
        super().__init__(f"{self.path}: invalid configuration\n{lines}", hint=hint)


class SecretError(BriefingError):
    """Report a secret missing from the environment."""

    def __init__(self, variable: str, purpose: str) -> None:
        self.variable = variable
        super().__init__(
            f"{variable} is not set; it holds the {purpose}",
            hint=f"export {variable}=... (secrets never go in config.yaml); "
            "`make demo` sets a fixed demo key",
        )


class StoreError(BriefingError):
    """Report a database that cannot be opened or upgraded."""


class SourceError(BriefingError):
    """Report one source that could not be read; the others go on."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ArticleError(SourceError):
    """Report one malformed entry of a source."""


class SubscriberRowError(BriefingError):
    """Report one invalid row of a subscriber list; the good rows still import."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        super().__init__(f"{file}:{line}: {reason}")


class RenderError(BriefingError):
    """Report a template or MJML failure while rendering a digest."""


class TokenError(BriefingError):
    """Report a link token that is malformed, forged, unknown or inert."""


class DeliveryError(BriefingError):
    """Report a message the transport could not take."""

    def __init__(self, recipient: str, reason: str) -> None:
        self.recipient = recipient
        self.reason = reason
        super().__init__(f"{recipient}: {reason}")


class SchedulerError(BriefingError):
    """Report a scheduler that cannot run or an ops command that cannot act."""


class SchedulerLockError(SchedulerError):
    """Report that another ``briefing serve`` already schedules this database."""

    hint = (
        "Only one `briefing serve` may run per database. Stop the other one "
        "(e.g. `systemctl stop briefing`) or point this one at another database."
    )

    def __init__(self, database: str, holder: str) -> None:
        self.database = database
        self.holder = holder
        super().__init__(
            f"another `briefing serve` is already running on {database} ({holder}); "
            "refusing to start a second scheduler"
        )


class SessionError(BriefingError):
    """Report a failure of the SMTP session itself, which no recipient caused.

    Connect refused, a TLS failure, AUTH refused, relaying denied, the sender
    refused: every further message would fail the same way, so the run stops
    and leaves the deliveries pending instead of failing the list.
    """

    def __init__(self, host: str, stage: str, reason: str, *, hint: str | None = None) -> None:
        self.host = host
        self.stage = stage
        self.reason = reason
        super().__init__(f"SMTP {host}: {stage}: {reason}", hint=hint)


class DkimError(BriefingError):
    """Report a DKIM key that cannot be read or used."""

    hint = "Set BRIEFING_DKIM_KEY_FILE to a readable PEM private key, or remove delivery.dkim."


class AccountError(BriefingError):
    """Report a desk account that cannot be added, changed or removed, naming it."""

    def __init__(self, name: str, reason: str, *, hint: str | None = None) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"desk account {name!r}: {reason}", hint=hint)


class EditionError(BriefingError):
    """Report an override or an approval that cannot be made, naming the issue and article."""

    hint = "See `briefing edition show BRIEFING --date D` for the issue's items and overrides."
