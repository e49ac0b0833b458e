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


def test_demo_rows_follow_revisions_not_arrival() -> None:
    """The flake of issue 11 item 15: B's report overtook A's on the queue."""
    import random

    from accord.demo import Timeline

    happened = [  # (conductor time at arrival, agent, text, revision), in store order
        (1, "agent-a", "gets the lease (token 1), reads v1", 3),
        (2, "agent-b", "lease is held by agent-a: waits in line", 3),
        (4, "agent-b", "(still waiting)", None),
        (5, "agent-a", "writes under token 1 -> v2, releases", 5),
        (5, "agent-b", "gets the lease (token 2) after 40 ms, reads v2", 8),
        (6, "agent-b", "writes under token 2 -> v3, releases", 9),
    ]
    rng = random.Random(11)
    for _ in range(50):
        late = list(happened)
        # A's write report arrives last, after the conductor moved on to T=6+.
        shuffled = [row for row in late if row[3] is not None and row[3] >= 5]
        rng.shuffle(shuffled)
        timeline = Timeline()
        for t, agent, text, rev in late[:3]:
            timeline.add(t, agent, text, "", rev)
        for t, agent, text, rev in shuffled:
            timeline.add(6 if "token 1" in text else t, agent, text, "", rev)
        rows = timeline.rows()
        assert [text for _, _, text, _ in rows] == [text for _, _, text, _ in happened]
        labels = [int(label.strip("T=+")) for label, _, _, _ in rows]
        assert labels == sorted(labels)
        assert rows[3][0] == "T=5"  # lowered from its late arrival at T=6+
