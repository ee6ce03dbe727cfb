"""How long a desk login takes for a known name and for an unknown one, in the same run.

    python benchmarks/desk_login.py [--rounds 15]

The login must not tell who has an account: a wrong password for an existing
name and any password for a name that does not exist get the same answer,
and should take about the same time (an unknown name is checked against a
decoy Argon2 hash made with the same parameters). This creates a temporary
SQLite project with one account hashed with argon2-cffi's default parameters,
then times ``Accounts.login`` ``--rounds`` times each, interleaved: a right
password, a wrong password for the known name, and an unknown name. The
per-account limit is set high so no round is refused for it. Prints the
median, spread and the ratio unknown / wrong of the medians.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from briefing.audience.accounts import Accounts, Actor  # noqa: E402
from briefing.config import DeskConfig  # noqa: E402
from briefing.domain.states import Role  # noqa: E402
from briefing.store import open_database  # noqa: E402

NOW = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
PASSWORD = "a long enough password"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    settings = DeskConfig.model_validate(
        {"failures_per_account": 1000, "failures_per_network": 100_000}
    )
    with tempfile.TemporaryDirectory() as folder:
        database = open_database(f"sqlite:///{Path(folder) / 'desk.db'}")
        accounts = Accounts(database, settings, b"benchmark key")
        accounts.add("ann", Role.EDITOR, PASSWORD, NOW, Actor(None, "benchmark"))
        cases = {
            "right password": ("ann", PASSWORD),
            "wrong password": ("ann", "not the password at all"),
            "unknown name": ("nobody", "not the password at all"),
        }
        times: dict[str, list[float]] = {case: [] for case in cases}
        accounts.login("warm", "up", "192.0.2.1", NOW, replacing=None)
        for index in range(args.rounds):
            for case, (name, password) in cases.items():
                moment = NOW + timedelta(seconds=index)
                started = time.perf_counter()
                accounts.login(name, password, "192.0.2.1", moment, replacing=None)
                times[case].append(time.perf_counter() - started)
        database.dispose()
    print(f"desk login, argon2-cffi defaults, {args.rounds} rounds each (ms):")
    for case, values in times.items():
        ms = sorted(value * 1000 for value in values)
        print(
            f"  {case:<15} median {statistics.median(ms):7.1f}   "
            f"min {ms[0]:7.1f}   max {ms[-1]:7.1f}"
        )
    ratio = statistics.median(times["unknown name"]) / statistics.median(times["wrong password"])
    print(f"  unknown name / wrong password (medians): {ratio:.2f}")


if __name__ == "__main__":
    main()
