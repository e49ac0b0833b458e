"""8 real processes contend on one SQLite file.

The optimistic run must end at exactly 8 x 200 with a history of versions
1..1600, each write based on its predecessor, and no update() giving up
with default retries. The blind-write run of the same shape must lose
increments, which shows the test can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import accord

from .stress import run_increments

PROCS, N = 8, 200


@pytest.mark.slow
def test_update_loses_nothing_across_processes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/stress.db"
    results = run_increments(url, PROCS, N, "update")
    assert [gave_up for _, gave_up in results] == [0] * PROCS
    with accord.open(url) as store:
        assert store.session("check").read("counter").value == PROCS * N
        path = tmp_path / "history.jsonl"
        store.export_history(path)
        writes = [e for e in store.history(key="counter") if e.op == "write" and e.outcome == "ok"]
    # versions 1..1600 (+1 for the initial write of 0), once each, each on its predecessor
    assert [e.version for e in writes] == list(range(1, PROCS * N + 2))
    assert all(e.based_on == e.prev for e in writes[1:])
    assert path.stat().st_size > 0


@pytest.mark.slow
def test_blind_writes_lose_increments(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/blind.db"
    run_increments(url, PROCS, N, "blind")
    with accord.open(url) as store:
        final = store.session("check").read("counter").value
        writes = [e for e in store.history(key="counter") if e.op == "write" and e.outcome == "ok"]
    assert final < PROCS * N, "blind writes lost nothing: the stress test cannot fail"
    # Every blind write whose based_on is older than the version it replaced erased one.
    erased = sum(1 for e in writes[1:] if e.based_on is not None and e.based_on < e.prev)
    assert erased > 0
