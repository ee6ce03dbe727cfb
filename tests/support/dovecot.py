"""A real IMAP server for the tests: Dovecot on 127.0.0.1, a free port, a Maildir in a temp folder.

The fixture writes a throwaway ``dovecot.conf`` (passwd-file auth with a
plain password, no SSL) and runs ``dovecot -F -c`` in the foreground. As a
normal user everything runs as that user; as root (CI) Dovecot refuses to
serve mail or logins as root, so those processes run as ``nobody``. Skips,
saying why, where Dovecot is not installed (Debian package ``dovecot-imapd``).
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER = "bounces"
PASSWORD = "imap-test-password"


@dataclass(frozen=True)
class Dovecot:
    """A running server and the account on it."""

    host: str
    port: int
    user: str
    password: str

    def client(self) -> imaplib.IMAP4:
        """Return a logged-in plain imaplib client (the test's own view of the mailbox)."""
        client = imaplib.IMAP4(self.host, self.port)
        client.login(self.user, self.password)
        return client

    def append(self, folder: str, messages: list[bytes]) -> None:
        """APPEND ``messages`` to ``folder``."""
        client = self.client()
        try:
            for raw in messages:
                status, data = client.append(folder, None, None, raw)
                assert status == "OK", data
        finally:
            client.logout()

    def subjects(self, folder: str) -> list[str]:
        """Return the Subject of every message in ``folder`` (empty when it does not exist)."""
        client = self.client()
        try:
            status, _ = client.select(folder, readonly=True)
            if status != "OK":
                return []
            _, found = client.uid("search", "ALL")
            subjects = []
            for uid in found[0].split():
                _, data = client.uid("fetch", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                header = data[0][1] if data and isinstance(data[0], tuple) else b""
                subjects.append(header.decode().partition(":")[2].strip())
            return sorted(subjects)
        finally:
            client.logout()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def dovecot() -> Iterator[Dovecot]:
    """Run Dovecot for the ``with`` block; skip when it is not installed."""
    if not os.access(DOVECOT, os.X_OK):
        pytest.skip(f"Dovecot is not installed ({DOVECOT}); apt-get install dovecot-imapd")
    # Not under pytest's tmp_path: that is private to the test user, and as root the
    # login and mail processes run as nobody, who must reach the run and mail folders.
    folder = Path(tempfile.mkdtemp(prefix="briefing-dovecot-"))
    folder.chmod(0o755)
    account = pwd.getpwnam("nobody") if os.getuid() == 0 else pwd.getpwuid(os.getuid())
    for sub in ("mail", "home"):
        (folder / sub).mkdir()
        os.chown(folder / sub, account.pw_uid, account.pw_gid)
    current = pwd.getpwuid(os.getuid())
    port = _free_port()
    (folder / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    conf = folder / "dovecot.conf"
    conf.write_text(
        f"""
base_dir = {folder}/run
state_dir = {folder}/state
log_path = {folder}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
default_internal_user = {current.pw_name}
default_internal_group = {grp.getgrgid(os.getgid()).gr_name}
default_login_user = {account.pw_name}
first_valid_uid = {account.pw_uid}
last_valid_uid = 0
first_valid_gid = 0
mail_location = maildir:{folder}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {folder}/passwd
}}
userdb {{
  driver = static
  args = uid={account.pw_uid} gid={account.pw_gid} home={folder}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
""",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    server = Dovecot("127.0.0.1", port, USER, PASSWORD)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                server.client().logout()
                break
            except (OSError, imaplib.IMAP4.error) as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (folder / "dovecot.log").read_text(errors="replace")
                    raise RuntimeError(f"Dovecot did not start: {exc}\n{log}") from exc
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)
