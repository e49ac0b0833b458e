"""The checker on real multi-process stress histories (SQLite, spawned processes).

The blind-write baseline loses increments; the checker, reading only the
exported history, must count exactly the increments the counter lost. The
optimistic run (update() with expect) must check clean.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import accord

from .stress import run_increments

PROCS, N = 4, 150


@pytest.mark.slow
def test_blind_write_lost_updates_match_the_counter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/blind.db"
    run_increments(url, PROCS, N, "blind")
    path = tmp_path / "blind.jsonl"
    with accord.open(url) as store:
        final = store.session("check").read("counter").value
        store.export_history(path)
    lost = PROCS * N - final
    assert lost > 0, "blind writes lost nothing: the stress test cannot fail"
    result = accord.check(path)
    assert result.verdict == "anomalies"
    assert result.counts["lost-update"] > 0
    assert result.lost_writes == lost
    assert not result.notes
    for anomaly in result.by_name("lost-update"):
        assert anomaly.details["based_on"] < anomaly.details["replaced"]


@pytest.mark.slow
def test_optimistic_history_checks_clean(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/update.db"
    run_increments(url, PROCS, N, "update")
    path = tmp_path / "update.jsonl"
    with accord.open(url) as store:
        assert store.session("check").read("counter").value == PROCS * N
        store.export_history(path)
    result = accord.check(path)
    assert result.ok, [a.explanation for a in result.anomalies[:3]]
    assert result.lost_writes == 0
    assert result.writes == PROCS * N + 1
