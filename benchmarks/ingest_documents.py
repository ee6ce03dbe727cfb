"""How long one pathological document takes to read, against the 5 s target.

    python benchmarks/ingest_documents.py [--repeat 3] [--only NAME ...] [--size 9900000]

Builds documents just under ``ingest.max_bytes`` (10 MB by default; ``--size``)
whose shape is the problem: nesting hundreds of thousands of levels deep (as
markup, inside CDATA, as escaped HTML, as unknown XML elements, in a title),
unclosed tags, a flat body of a million elements, and a feed of thousands of
HTML-rich items (over ``ingest.max_entries``). Each is read

- **in workers**: through :func:`briefing.ingest.workers.read_document` as
  ingest reads it (a worker process, the result sent back), wall seconds,
  parse timeout raised so nothing is cut;
- **in-process**: the feed reader in this process, CPU seconds
  (``time.process_time``), which a busy shared machine disturbs less.

It prints the median of each over the repetitions, the target (5 s), the
number of drafts read and the first warning. For the item-rich feed it also
times feedparser alone (its defaults: its own sanitiser and link resolver).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
from ingest_support import ROOT  # noqa: F401 - puts the repository on sys.path

from briefing.ingest.readers import FEED, ReadContext, ReadResult
from briefing.ingest.workers import ReadLimits, read_document, shutdown_workers

TARGET = 5.0
CONTEXT = ReadContext(label="bench", sections=("feeds",), known_sections=frozenset({"feeds"}))


def rss(body: str, title: str = "Story") -> str:
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title><item>'
        f"<title>{title}</title><link>https://bench.example.org/s</link>"
        f"<description>{body}</description></item></channel></rss>"
    )


def atom(content: str) -> str:
    return (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
        '<entry><title>Story</title><id>urn:s</id><link href="https://bench.example.org/s"/>'
        f"{content}</entry></feed>"
    )


def nested(size: int, opening: str, closing: str) -> str:
    """As many levels of ``opening ... closing`` as fit in ``size`` characters."""
    levels = (size - 600) // (len(opening) + len(closing))
    return opening * levels + "deep text" + closing * levels


def repeated(size: int, piece: str) -> str:
    return piece * ((size - 600) // len(piece)) + "deep text"


def items(size: int) -> str:
    """A feed of HTML-rich items (a dozen paragraphs, links, bold) filling ``size``."""
    paragraph = (
        "&lt;p&gt;Words of a story, with &lt;a href=&quot;/link/{n}&quot;&gt;a link&lt;/a&gt; "
        "and &lt;b&gt;bold&lt;/b&gt; text in it.&lt;/p&gt;"
    )
    parts, total, n = [], 0, 0
    while total < size - 1_000:
        item = (
            f"<item><title>Story {n}</title><link>https://bench.example.org/s/{n}</link>"
            f"<pubDate>Mon, {1 + n % 28:02d} Nov 2026 {n % 24:02d}:00:00 +0000</pubDate>"
            f"<description>{paragraph.format(n=n) * 12}</description></item>"
        )
        parts.append(item)
        total += len(item)
        n += 1
    return (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://bench.example.org/</link>{''.join(parts)}</channel></rss>"
    )


DOCUMENTS: dict[str, tuple[str, Callable[[int], str]]] = {
    "div-cdata": (
        "nested <div> in CDATA",
        lambda n: rss("<![CDATA[" + nested(n, "<div>", "</div>") + "]]>"),
    ),
    "div-xhtml": (
        "nested <div> as inline XHTML",
        lambda n: atom(
            '<content type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">'
            + nested(n, "<div>", "</div>")
            + "</div></content>"
        ),
    ),
    "div-escaped": (
        "nested &lt;div&gt; (escaped HTML)",
        lambda n: rss(nested(n, "&lt;div&gt;", "&lt;/div&gt;")),
    ),
    "unclosed-cdata": (
        "<div> never closed, in CDATA",
        lambda n: rss("<![CDATA[" + repeated(n, "<div>") + "]]>"),
    ),
    "unclosed-escaped": (
        "&lt;div&gt; never closed (escaped)",
        lambda n: rss(repeated(n, "&lt;div&gt;")),
    ),
    "xml-elements": (
        "nested unknown XML elements <a>",
        lambda n: atom(nested(n, "<a>", "</a>")),
    ),
    "title-markup": (
        "nested <b> in a title",
        lambda n: rss("fine", title=nested(n, "<b>", "</b>")),
    ),
    "title-escaped": (
        "nested &lt;b&gt; in a title",
        lambda n: rss("fine", title=nested(n, "&lt;b&gt;", "&lt;/b&gt;")),
    ),
    "flat": (
        "flat: <b>x</b> a million times, one body",
        lambda n: rss("<![CDATA[" + repeated(n, "<b>x</b>") + "]]>"),
    ),
    "div-p": (
        "nested <div><p> pairs in CDATA",
        lambda n: rss("<![CDATA[" + nested(n, "<div><p>", "</p></div>") + "]]>"),
    ),
    "items": ("HTML-rich items, more than max_entries", items),
}


def in_process(data: bytes) -> tuple[float, ReadResult]:
    started = time.process_time()
    result = FEED.parse(data, "bench", CONTEXT)
    return time.process_time() - started, result


def in_workers(path: Path, limits: ReadLimits) -> float:
    started = time.perf_counter()
    read_document(FEED, path, CONTEXT, limits)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--size", type=int, default=9_900_000, help="characters per document")
    parser.add_argument("--only", nargs="*", choices=sorted(DOCUMENTS), help="these documents")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    limits = ReadLimits(parse_timeout=600, workers=1)
    names = args.only or list(DOCUMENTS)
    print(
        f"one document each, {args.size / 1e6:.1f} MB at most; medians of {args.repeat}; "
        f"target {TARGET:g} s"
    )
    print(f"{'document':<44} {'MB':>5} {'workers s':>9} {'cpu s':>6} {'drafts':>6}  first warning")
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            label, build = DOCUMENTS[name]
            data = build(args.size).encode()
            path = Path(folder) / f"{name}.xml"
            path.write_bytes(data)
            in_workers(path, limits)  # start the worker before the clock; also a warm-up
            walls, cpus = [], []
            result = ReadResult()
            for _ in range(args.repeat):
                walls.append(in_workers(path, limits))
                cpu, result = in_process(data)
                cpus.append(cpu)
            wall = statistics.median(walls)
            warning = (result.warnings or [""])[0]
            print(
                f"{label:<44} {len(data) / 1e6:>5.1f} {wall:>9.2f} {statistics.median(cpus):>6.2f} "
                f"{len(result.drafts):>6}  {warning[:70]}"
                + ("  OVER TARGET" if wall > TARGET else "")
            )
            if name == "items":
                started = time.process_time()
                entries = len(feedparser.parse(data).entries)
                print(
                    f"{'  feedparser alone on it (cpu)':<44} {'':>5} {'':>9} "
                    f"{time.process_time() - started:>6.2f} {entries:>6}"
                )
    shutdown_workers()


if __name__ == "__main__":
    main()
