"""SIGKILL a writer mid-stream: no acknowledged write is lost, nothing is half-written."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from pathlib import Path

import pytest

import accord

from .stress import acking_writer


@pytest.mark.slow
def test_sigkill_loses_no_acknowledged_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/crash.db"
    accord.open(url).close()
    ctx = mp.get_context("spawn")
    acks = ctx.Queue()
    procs = [ctx.Process(target=acking_writer, args=(url, f"w{i}", acks)) for i in range(3)]
    for p in procs:
        p.start()
    acked: dict[str, int] = {}
    # Wait (bounded) until some writes are acknowledged, then kill them all mid-write.
    for _ in range(150):
        agent, version = acks.get(timeout=60)
        acked[agent] = max(acked.get(agent, 0), version)
    for p in procs:
        assert p.pid is not None
        os.kill(p.pid, signal.SIGKILL)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == -signal.SIGKILL
    while True:  # acknowledgements sent just before the kill
        try:
            agent, version = acks.get(timeout=1)
        except Exception:
            break
        acked[agent] = max(acked.get(agent, 0), version)
    with accord.open(url) as store:
        s = store.session("inspector")
        for agent, version in acked.items():
            doc = s.read(f"log/{agent}")
            # No acknowledged write is lost...
            assert doc.version >= version
            # ...and each log is an unbroken run 0..n-1: nothing half-applied or skipped.
            assert doc.value == list(range(len(doc.value)))
            assert doc.version == len(doc.value)
            writes = [e for e in store.history(key=f"log/{agent}") if e.outcome == "ok"]
            assert [e.version for e in writes] == list(range(1, len(writes) + 1))
        # The store is fully usable after the crash.
        s.write("after", "ok")
        assert s.read("after").value == "ok"
