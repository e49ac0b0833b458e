"""accord demo: the picture, live, with real processes on a SQLite file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def demo(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("ACCORD_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "accord", "demo", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )


@pytest.mark.slow
def test_blind_writes_lose_b_and_say_so(tmp_path: Path) -> None:
    out = demo(tmp_path, "--strategy", "none")
    assert out.returncode == 0, out.stderr
    assert "LOST UPDATE: agent-b's change is missing" in out.stdout
    assert (tmp_path / ".accord" / "state.db").exists()


@pytest.mark.slow
def test_optimistic_keeps_both(tmp_path: Path) -> None:
    out = demo(tmp_path, "--strategy", "optimistic")
    assert out.returncode == 0, out.stderr
    assert "Conflict: expected v" in out.stdout
    assert "Both changes survived." in out.stdout
    assert "retries: 1" in out.stdout


@pytest.mark.slow
def test_demo_runs_every_strategy_twice_on_one_store(tmp_path: Path) -> None:
    for _ in range(2):
        out = demo(tmp_path)
        assert out.returncode == 0, out.stderr
        assert out.stdout.count("--strategy ") >= 2
        assert "LOST UPDATE" in out.stdout


def test_unknown_strategy(tmp_path: Path) -> None:
    out = demo(tmp_path, "--strategy", "magic")
    assert out.returncode == 1 and "Unknown strategy" in out.stderr


def test_memory_store_is_refused(tmp_path: Path) -> None:
    out = demo(tmp_path, "--store", "memory://")
    assert out.returncode == 1 and "separate processes" in out.stderr
