"""Clocks continue across processes (issue 11, item 4).

A session continues its agent's Lamport time from the larger of the agent's
latest event and the store's largest Lamport time, and its vector clock from
the agent's latest event. Shown with real processes (the ``accord`` CLI, one
process per command) on SQLite and PostgreSQL, and with separate Store
objects on every backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import accord
from accord.clock import happened_before

from .postgres_helpers import schema_url

BOUND = 60.0


def cli(url: str, *args: str, agent: str, stdin: str = "") -> str:
    """Run one `accord` command in a process of its own."""
    env = {**os.environ, "ACCORD_URL": url, "ACCORD_AGENT": agent}
    done = subprocess.run(
        [sys.executable, "-m", "accord", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=BOUND,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/clocks.db"
    else:
        with schema_url() as pg:
            yield pg


def events(url: str, tmp_path: Path) -> tuple[list[dict[str, Any]], Path]:
    path = tmp_path / "history.jsonl"
    with accord.open(url) as store:
        store.export_history(path)
    return [json.loads(line) for line in path.read_text().splitlines()], path


def test_the_issue_scenario_across_cli_processes(url: str, tmp_path: Path) -> None:
    """agent-a's two writes (revisions 1 and 3, separate processes) both carried
    lamport 1 and {agent-a: 1}; the checker said concurrent-writes. agent-a's
    blind write erased agent-b's version: that is a lost update."""
    cli(url, "write", "d", agent="agent-a", stdin="v1\n")
    cli(url, "write", "d", "--expect", "1", agent="agent-b", stdin="v2\n")
    cli(url, "write", "d", "--force", agent="agent-a", stdin="v3\n")
    evs, path = events(url, tmp_path)
    writes = [e for e in evs if e["op"] == "write"]
    assert [e["agent"] for e in writes] == ["agent-a", "agent-b", "agent-a"]
    lamports = [e["lamport"] for e in writes]
    assert lamports == sorted(set(lamports)), f"Lamport times must grow: {lamports}"
    assert writes[0]["clock"] == {"agent-a": 1}
    assert writes[2]["clock"]["agent-a"] == 2  # continues agent-a's own count
    # agent-a's new process knew what agent-a wrote before: v1.
    assert writes[2]["based_on"] == 1 and writes[2]["prev"] == 2
    result = accord.check(path)
    assert result.counts["lost-update"] == 1
    assert result.counts["concurrent-writes"] == 0


def test_a_new_process_continues_the_agent_and_the_store(url: str, tmp_path: Path) -> None:
    cli(url, "write", "notes", agent="agent-b", stdin="b1\n")
    for n in range(3):  # agent-b runs ahead in Lamport time
        cli(url, "write", "notes", "--expect", str(n + 1), agent="agent-b", stdin=f"b{n + 2}\n")
    cli(url, "write", "mine", agent="agent-a", stdin="a1\n")
    cli(url, "write", "mine", "--force", agent="agent-a", stdin="a2\n")
    evs, _ = events(url, tmp_path)
    b_last = [e for e in evs if e["agent"] == "agent-b"][-1]
    a1, a2 = [e for e in evs if e["agent"] == "agent-a"]
    # A new agent starts after everything in the store (Lamport), from zero in
    # its own vector entry; its next process continues both.
    assert a1["lamport"] > b_last["lamport"]
    assert a1["clock"] == {"agent-a": 1}
    assert a2["lamport"] > a1["lamport"] and a2["clock"] == {"agent-a": 2}


def test_what_an_agent_read_stays_in_its_clock(open_store: Callable[..., accord.Store]) -> None:
    """Happened-before across processes: agent-a read agent-b's write in one
    process; its writes in the next process come after that write."""
    one = open_store()
    b = one.session("agent-b")
    b.write("k", "from b")
    a = one.session("agent-a")
    a.read("k")
    first = a.write("other", "a1")
    assert first.clock == {"agent-a": 1, "agent-b": 1}
    again = open_store().session("agent-a")  # another Store object: a new process
    second = again.write("other", "a2", force=True)
    assert second.clock == {"agent-a": 2, "agent-b": 1}
    assert second.lamport > first.lamport
    assert happened_before(first.clock, second.clock)


def test_two_processes_of_one_agent_at_once(open_store: Callable[..., accord.Store]) -> None:
    """Both continue from the agent's latest event, so their own-entry counts
    can collide (docs/history.md says what that means); the next process
    continues after both."""
    base = open_store().session("agent-a")
    base.write("k", 0)
    p1, p2 = open_store().session("agent-a"), open_store().session("agent-a")
    # Both take up the agent's clocks before either one's first event lands.
    p1.clock.snapshot()
    p2.clock.snapshot()
    d1 = p1.write("x1", "one")
    d2 = p2.write("x2", "two")
    assert d1.clock == d2.clock == {"agent-a": 2}  # the documented collision
    third = open_store().session("agent-a").write("x3", "three")
    assert third.clock == {"agent-a": 3}
    assert third.lamport > max(d1.lamport, d2.lamport)


def test_a_long_history_is_checkpointed_and_read_once(
    open_store: Callable[..., accord.Store],
) -> None:
    """A new session reads the history since the checkpoint, and moves the
    checkpoint when that was long; the next one reads only what came after."""
    from accord.clock import CHECKPOINT_KEY, agent_clock_key

    writer = open_store()
    b = writer.session("agent-b")
    a = writer.session("agent-a")
    a.write("mine", 0)
    for n in range(300):
        b.write("k", n, force=True)
    store = open_store()
    doc = store.session("agent-a").write("mine", 1, force=True)
    assert doc.clock == {"agent-a": 2} and doc.lamport > 300
    head = store.backend.get(CHECKPOINT_KEY)
    assert head is not None
    checkpoint = json.loads(head.data)
    assert checkpoint["lamport"] >= 301 and checkpoint["rev"] >= 301
    rec = store.backend.get(agent_clock_key("agent-b"))
    assert rec is not None and json.loads(rec.data)["clock"] == {"agent-b": 300}
    # A third process: the checkpoint plus the few events after it.
    third = open_store().session("agent-b").write("k", "again", force=True)
    assert third.clock == {"agent-b": 301} and third.lamport > doc.lamport
    # The internal records stay out of agents' sight.
    assert [d.key for d in store.session("x").scan("")] == ["k", "mine"]
