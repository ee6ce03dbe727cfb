"""Postfix's smtp-sink and smtp-source for the SMTP benchmarks, fetched without installing Postfix.

Both come from Debian's ``postfix`` package: ``apt-get download postfix`` and
``dpkg -x`` into ``benchmarks/.cache/postfix`` (gitignored), run with
``LD_LIBRARY_PATH`` pointing at its ``usr/lib/postfix``. Nothing is installed
and no mail server runs.

Used by ``send_throughput.py`` and ``scale.py``.
"""

from __future__ import annotations

import glob
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache" / "postfix"


def fetch_postfix() -> Path:
    """Return the folder holding smtp-sink and smtp-source, fetching Debian's package once."""
    sbin = CACHE / "root" / "usr" / "sbin"
    if (sbin / "smtp-sink").exists() and (sbin / "smtp-source").exists():
        return CACHE / "root"
    CACHE.mkdir(parents=True, exist_ok=True)
    download = ["apt-get", "download", "postfix"]
    if subprocess.run(download, cwd=CACHE).returncode != 0:
        print("apt-get download failed; refreshing the package lists once", file=sys.stderr)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(download, cwd=CACHE, check=True)
    package = sorted(glob.glob(str(CACHE / "postfix_*.deb")))[-1]
    subprocess.run(["dpkg", "-x", package, str(CACHE / "root")], check=True)
    return CACHE / "root"


def postfix_env(root: Path) -> dict[str, str]:
    """Return the environment that lets the unpacked binaries find their libraries."""
    return {**os.environ, "LD_LIBRARY_PATH": str(root / "usr" / "lib" / "postfix")}


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_sink(root: Path, counter: Path | None = None) -> Iterator[int]:
    """Run smtp-sink on a free port (it advertises PIPELINING) for the block; yield the port.

    With ``counter``, the sink writes its running counters (``-c``) to that file;
    ``sink_count(counter)`` reads how many messages it has taken so far.
    """
    port = free_port()
    command = [str(root / "usr" / "sbin" / "smtp-sink")]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]  # smtp-sink refuses to run as root otherwise
    if counter is not None:
        command += ["-c"]
    command += [f"127.0.0.1:{port}", "512"]
    output = counter.open("wb") if counter is not None else None
    sink = subprocess.Popen(command, env=postfix_env(root), stdout=output)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield port
    finally:
        sink.terminate()
        sink.wait(10)
        if output is not None:
            output.close()


_MESSAGES = re.compile(rb"mesg=(\d+)")


def sink_count(counter: Path) -> int:
    """Return how many messages (completed DATA) a counting smtp-sink has taken so far."""
    with counter.open("rb") as stream:
        stream.seek(0, os.SEEK_END)
        stream.seek(max(stream.tell() - 200, 0))
        found = _MESSAGES.findall(stream.read())
    return int(found[-1]) if found else 0


def run_smtp_source(
    root: Path, port: int, count: int, size: int, sessions: int, *, reuse: bool = True
) -> None:
    """Send ``count`` messages of ``size`` bytes with smtp-source over ``sessions`` connections.

    ``reuse`` (``-d``) keeps each connection for many messages, as the engine's
    pool does; without it smtp-source opens a new session per message.
    """
    command = [str(root / "usr" / "sbin" / "smtp-source"), "-s", str(sessions)]
    if reuse:
        command.append("-d")
    command += [
        "-m",
        str(count),
        "-l",
        str(size),
        "-f",
        "briefing@news.example.org",
        "-t",
        "reader@example.com",
        f"127.0.0.1:{port}",
    ]
    subprocess.run(command, env=postfix_env(root), check=True)
