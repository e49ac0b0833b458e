"""accord demo --strategy queue and --strategy branch (real processes, SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_demo import demo


@pytest.mark.slow
def test_queue_strategy_keeps_both_without_retries(tmp_path: Path) -> None:
    for _ in range(2):  # a second run on the same store resets the queue key
        out = demo(tmp_path, "--strategy", "queue")
        assert out.returncode == 0, out.stderr
        assert "Both changes survived." in out.stdout
        assert "writer accepted it" in out.stdout and "waiting for the writer" in out.stdout
        assert "Conflict" not in out.stdout


@pytest.mark.slow
def test_branch_strategy_reports_the_merge_conflict_and_keeps_both(tmp_path: Path) -> None:
    out = demo(tmp_path, "--strategy", "branch")
    assert out.returncode == 0, out.stderr
    assert "merge conflict at" in out.stdout and "merge conflicts: 1" in out.stdout
    assert "Both changes survived." in out.stdout
