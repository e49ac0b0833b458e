"""SQLite: the floor under a versioned write that appends its history event.

No accord code runs here: raw ``sqlite3`` with precomputed parameters, on
one WAL file (``synchronous=NORMAL``, as accord uses), alternating short
rounds. It shows how fast a write that commits a record *and* a history row
atomically can be at best, against the bare CAS the SQLite benchmark
compares with:

- bare      one autocommit ``UPDATE raw SET data = ?, version = version + 1
            WHERE key = ? AND version = ?`` (one B-tree page changes)
- accord    the statements accord's ``put_if_version`` issues: ``BEGIN
            IMMEDIATE``, the conditional history ``INSERT ... SELECT``, the
            record ``UPDATE``, ``COMMIT`` (two B-trees change)
- trigger   the cheapest form found: one autocommit ``UPDATE`` of the record
            whose ``AFTER UPDATE`` trigger (plain SQL) appends the event

Run: .venv/bin/python bench/bench_sqlite_floor.py [--rounds 8] [--seconds 0.3]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SCHEMA = """
CREATE TABLE raw (key TEXT PRIMARY KEY, data BLOB, version INTEGER);
INSERT INTO raw VALUES ('k', 'hello', 1);
CREATE TABLE accord_records (key TEXT PRIMARY KEY, kind TEXT NOT NULL, data BLOB NOT NULL,
    version INTEGER NOT NULL, revision INTEGER NOT NULL, author TEXT NOT NULL,
    lamport INTEGER NOT NULL, clock TEXT NOT NULL, deleted INTEGER NOT NULL, expires REAL,
    erev INTEGER) WITHOUT ROWID;
CREATE TABLE accord_events (rev INTEGER PRIMARY KEY, key TEXT, kprev INTEGER, body TEXT);
INSERT INTO accord_records VALUES ('k', 'text', 'hello', 1, 1, 'a', 1, '{}', 0, NULL, 1);
INSERT INTO accord_events VALUES (1, 'k', NULL, '{}');
CREATE TABLE t_records (key TEXT PRIMARY KEY, kind TEXT NOT NULL, data BLOB NOT NULL,
    version INTEGER NOT NULL, revision INTEGER NOT NULL, author TEXT NOT NULL,
    lamport INTEGER NOT NULL, clock TEXT NOT NULL, deleted INTEGER NOT NULL, expires REAL,
    erev INTEGER, ev TEXT) WITHOUT ROWID;
CREATE TABLE t_events (rev INTEGER PRIMARY KEY, key TEXT, kprev INTEGER, body TEXT);
INSERT INTO t_records VALUES ('k', 'text', 'hello', 1, 1, 'a', 1, '{}', 0, NULL, 1, NULL);
INSERT INTO t_events VALUES (1, 'k', NULL, '{}');
CREATE TRIGGER t_append AFTER UPDATE OF ev ON t_records BEGIN
    INSERT INTO t_events (rev, key, kprev, body) VALUES (NEW.erev, NEW.key, OLD.erev, NEW.ev);
END;
"""
INSERT_EVENT = (
    "INSERT INTO accord_events (key, kprev, body) SELECT key, erev, ? FROM accord_records "
    "WHERE key = ? AND version = ? AND deleted = 0"
)
UPDATE_RECORD = (
    "UPDATE accord_records SET kind = ?, data = ?, version = ?, revision = ?, author = ?, "
    "lamport = ?, clock = ?, deleted = ?, expires = ?, erev = ? WHERE key = ?"
)
TRIGGER_UPDATE = (
    "UPDATE t_records SET kind = ?, data = ?, version = version + 1, "
    "revision = (SELECT MAX(rev) FROM t_events) + 1, author = ?, lamport = ?, clock = ?, "
    "deleted = 0, expires = NULL, erev = (SELECT MAX(rev) FROM t_events) + 1, ev = ? "
    "WHERE key = ? AND version = ? AND deleted = 0"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.3, help="per case and round")
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp()) / "floor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(SCHEMA)
    body = json.dumps(
        {
            "agent": "bench",
            "op": "write",
            "key": "k",
            "based_on": 1,
            "lamport": 5,
            "clock": {"bench": 5},
            "time": "2026-11-28T22:50:01.123456Z",
            "outcome": "ok",
            "hash": "sha256:" + "a" * 16,
        },
        separators=(",", ":"),
    )
    version = {"bare": 1, "accord": 1, "trigger": 1}

    def bare() -> None:
        cur = conn.execute(
            "UPDATE raw SET data = ?, version = version + 1 WHERE key = ? AND version = ?",
            ("hello", "k", version["bare"]),
        )
        assert cur.rowcount == 1
        version["bare"] += 1

    def accord_statements() -> None:
        v = version["accord"]
        conn.execute("BEGIN IMMEDIATE")
        rev = conn.execute(INSERT_EVENT, (body, "k", v)).lastrowid
        conn.execute(
            UPDATE_RECORD,
            ("text", "hello", v + 1, rev, "bench", 5, '{"bench":5}', False, None, rev, "k"),
        )
        conn.execute("COMMIT")
        version["accord"] = v + 1

    def trigger() -> None:
        v = version["trigger"]
        cur = conn.execute(
            TRIGGER_UPDATE, ("text", "hello", "bench", 5, '{"bench":5}', body, "k", v)
        )
        assert cur.rowcount == 1
        version["trigger"] = v + 1

    def rate(fn: Callable[[], None]) -> float:
        n = 0
        start = time.perf_counter()
        end = start + args.seconds
        while True:
            for _ in range(100):
                fn()
            n += 100
            now = time.perf_counter()
            if now > end:
                return n / (now - start)

    cases = {"bare": bare, "accord": accord_statements, "trigger": trigger}
    rates: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            rates[name].append(rate(fn))
    print(f"SQLite {sqlite3.sqlite_version}, {args.rounds} alternating rounds")
    print(f"{'case':10s} {'commits/s':>10s} {'vs bare':>8s}")
    for name in cases:
        ratios = [a / b for a, b in zip(rates[name], rates["bare"], strict=True)]
        print(
            f"{name:10s} {statistics.median(rates[name]):10,.0f} {statistics.median(ratios):8.2f}"
        )
    events = conn.execute("SELECT COUNT(*) FROM t_events").fetchone()[0]
    assert events == version["trigger"], "the trigger appended one event per write"


if __name__ == "__main__":
    main()
