"""Read documents in worker processes, each one stopped at ``ingest.parse_timeout``.

Reading a document (gunzip, decode, parse, sanitise) is CPU-bound: in threads
it would share the interpreter lock with the fetches, and a document that
takes too long could not be stopped. :func:`read_document` hands one document
to a pool of worker processes (started with ``forkserver`` where the platform
has it, else ``spawn``: both safe while other threads run) and waits at most
``parse_timeout``; a document still being read then is reported as such,
naming the source, and the pool's processes are killed and replaced. Other
documents that were being read in the same pool are read again in the new one.

A reader that cannot be sent to another process (a plugin's reader holding a
lock or a connection) is run in the calling process, without the timeout.
The result is sanitised (:func:`admit`) in the worker too, whoever wrote the
reader.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import multiprocessing
import pickle
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from briefing.errors import SourceError
from briefing.ingest.clean import html_to_text, sanitise_html
from briefing.ingest.readers import (
    DEFAULT_MAX_ENTRIES,
    DocumentReader,
    ReadContext,
    Reader,
    ReadResult,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadLimits:
    """How long one document may take to read and how many entries are kept."""

    parse_timeout: float = 20.0  # seconds; stopped after that
    max_entries: int = DEFAULT_MAX_ENTRIES
    workers: int = 2  # 0: read in the calling process, with no timeout

    @classmethod
    def from_config(cls, ingest: Any) -> ReadLimits:
        """Take the limits from the ``ingest`` section of the config."""
        timeout = ingest.parse_timeout
        seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else float(timeout)
        return cls(
            parse_timeout=seconds, max_entries=ingest.max_entries, workers=ingest.parse_workers
        )


@dataclass(frozen=True)
class Fetched:
    """A document given as bytes (one fetched from a URL), with what the server said."""

    data: bytes
    name: str  # how messages name it (the URL)
    charset: str | None = None
    base_url: str | None = None


def admit(result: ReadResult) -> ReadResult:
    """Sanitise what a reader returned, whoever wrote the reader.

    The built-in readers sanitise as they read and sanitising is idempotent,
    so for them this changes nothing; a plugin's reader may hand over raw HTML.
    """
    drafts = []
    for draft in result.drafts:
        body_html = sanitise_html(draft.body_html, base_url=draft.url) if draft.body_html else ""
        body_text = draft.body_text or (html_to_text(body_html) if body_html else "")
        if (body_html, body_text) != (draft.body_html, draft.body_text):
            draft = draft.model_copy(update={"body_html": body_html, "body_text": body_text})
        drafts.append(draft)
    result.drafts = drafts
    return result


def read_here(reader: Reader, document: Path | Fetched, context: ReadContext) -> ReadResult:
    """Read one document in this process (what a worker runs)."""
    if isinstance(document, Path):
        return admit(reader.read(document, context))
    if not callable(getattr(reader, "parse", None)):
        raise SourceError(
            document.name, f"the {reader.kind!r} reader cannot read fetched documents"
        )
    result = cast(DocumentReader, reader).parse(
        document.data,
        document.name,
        context,
        charset=document.charset,
        base_url=document.base_url,
    )
    return admit(result)


def _read_in_worker(
    reader: Reader, document: Path | Fetched, context: ReadContext
) -> ReadResult | tuple[str, str]:
    """Run :func:`read_here`; a :class:`SourceError` comes back as (source, reason)."""
    try:
        return read_here(reader, document, context)
    except SourceError as exc:  # its constructor's arguments do not survive pickling
        return (exc.source, exc.reason)


STARTUP_TIMEOUT = 120.0  # seconds a new pool may take to start its first worker


def _ready() -> bool:
    return True


def _name(document: Path | Fetched) -> str:
    return str(document) if isinstance(document, Path) else document.name


class _Pool:
    """One process pool, replaced whole when a document overruns its time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._size = 0
        self._generation = 0
        self._slots = threading.BoundedSemaphore(1)
        self._slot_count = 1

    def slots(self, workers: int) -> threading.BoundedSemaphore:
        """One slot per worker: a document waits for a free worker before its clock starts."""
        with self._lock:
            if self._slot_count != workers:
                self._slots = threading.BoundedSemaphore(workers)
                self._slot_count = workers
            return self._slots

    def _context(self) -> multiprocessing.context.BaseContext:
        methods = multiprocessing.get_all_start_methods()
        if "forkserver" in methods:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["briefing.ingest.workers"])
            return context
        return multiprocessing.get_context("spawn")

    def submit(
        self, workers: int, reader: Reader, document: Path | Fetched, context: ReadContext
    ) -> tuple[Future[ReadResult | tuple[str, str]], int]:
        with self._lock:
            if self._executor is None or self._size != workers:
                if self._executor is not None:
                    self._executor.shutdown(wait=False, cancel_futures=False)
                self._executor = ProcessPoolExecutor(
                    max_workers=workers, mp_context=self._context()
                )
                self._size = workers
                self._generation += 1
                # Wait for a worker to start, so no document's clock counts the start-up.
                self._executor.submit(_ready).result(timeout=STARTUP_TIMEOUT)
            return self._executor.submit(
                _read_in_worker, reader, document, context
            ), self._generation

    def kill(self, generation: int) -> None:
        """Kill the processes of the pool of ``generation`` (if still current) and drop it."""
        with self._lock:
            if self._executor is None or generation != self._generation:
                return
            executor, self._executor = self._executor, None
        processes = dict(getattr(executor, "_processes", None) or {})
        for process in processes.values():
            if process.is_alive():
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)
        for process in processes.values():
            process.join(timeout=5)

    def shutdown(self) -> None:
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


_POOL = _Pool()
atexit.register(_POOL.shutdown)


def shutdown_workers() -> None:
    """Stop the worker processes (they are started again when needed)."""
    _POOL.shutdown()


def _picklable(*values: object) -> bool:
    try:
        pickle.dumps(values)
    except (pickle.PicklingError, TypeError, AttributeError, RecursionError):
        return False
    return True


def read_document(
    reader: Reader, document: Path | Fetched, context: ReadContext, limits: ReadLimits
) -> ReadResult:
    """Read one document (a file, or bytes fetched from a URL) within ``limits``.

    Raises :class:`SourceError` when the document is unreadable or took longer
    than ``limits.parse_timeout``; the result is sanitised.
    """
    context = dataclasses.replace(context, max_entries=limits.max_entries)
    if limits.workers <= 0 or not _picklable(reader, context):  # a document always is
        return read_here(reader, document, context)
    with _POOL.slots(limits.workers):
        for attempt in (1, 2):
            future, generation = _POOL.submit(limits.workers, reader, document, context)
            try:
                outcome = future.result(timeout=limits.parse_timeout)
            except FutureTimeout:
                _POOL.kill(generation)
                raise SourceError(
                    _name(document),
                    f"reading took longer than the {limits.parse_timeout:g}s parse timeout "
                    "(ingest.parse_timeout); stopped",
                ) from None
            except BrokenProcessPool:
                # Another document overran and its pool was killed, or a worker died.
                _POOL.kill(generation)
                if attempt == 2:
                    raise SourceError(
                        _name(document), "the worker process reading it died (out of memory?)"
                    ) from None
                continue
            if isinstance(outcome, tuple):
                raise SourceError(*outcome)
            return outcome
    raise AssertionError("unreachable")
