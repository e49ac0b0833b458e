"""accord demo --strategy lease: B waits in line for A, both changes survive."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import accord


@pytest.mark.slow
def test_lease_demo_shows_b_waiting_for_a(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "160"}
    env.pop("ACCORD_URL", None)
    out = subprocess.run(
        [sys.executable, "-m", "accord", "demo", "--strategy", "lease"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "lease is held by agent-a: waits in line" in text
    assert "(still waiting)" in text
    assert text.index("writes under token 1") < text.index("gets the lease (token 2)")
    assert "Both changes survived." in text
    with accord.open(f"sqlite:///{tmp_path}/.accord/state.db") as store:
        grants = [
            (e.agent, e.lease)
            for e in store.history(key="docs/plan.md")
            if e.op == "lease_acquire" and e.outcome == "ok"
        ]
    assert grants[-2:] == [("agent-a", grants[-2][1]), ("agent-b", grants[-2][1] + 1)]
