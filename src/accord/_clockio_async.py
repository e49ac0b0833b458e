"""Continuing an agent's clocks in a new process: the store I/O of :mod:`accord.clock`.

The async source of ``accord._clockio`` (``tools/async_to_sync.py``): the
async face resumes a session's clocks with awaited reads, the sync face with
plain ones, from this one text.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from .backends.base import AsyncBackend
from .clock import _CHECKPOINT_EVERY, CHECKPOINT_KEY, _encode, _encode_clock, agent_clock_key
from .records import Compare, Put

__all__ = ["stored_agent_clock"]


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:  # pragma: no cover - we wrote it
        return None


async def stored_agent_clock(backend: AsyncBackend, agent: str) -> tuple[int, int, str]:
    """``(lamport_max, lamport, clock_text)``: the largest Lamport time of any
    event in the store, and the Lamport time and vector clock (JSON) of
    ``agent``'s latest event (0 and ``"{}"`` when it has none).

    A recipe over the primitive, like leases: the store keeps a checkpoint
    (:data:`CHECKPOINT_KEY`) and one record per agent, brought up to date
    here from the history appended since the checkpoint, so each event is
    read about once, by a session that starts after it, and writes pay
    nothing. The checkpoint moves once at least :data:`_CHECKPOINT_EVERY`
    events came after it: a session start reads fewer events than that, or
    writes the checkpoint (a transaction of internal records, which takes
    revisions of its own, as every op does).
    Bringing them up to date is best effort: when another session did it at
    the same moment (the compare on the checkpoint fails), or it cannot be
    written, the answer computed here is still right.
    """
    head = await backend.get(CHECKPOINT_KEY)
    state = _loads(head.data) if head is not None and not head.deleted else None
    if not isinstance(state, dict):
        state = {"rev": 0, "lamport": 0}
    since, top = int(state.get("rev", 0)), int(state.get("lamport", 0))
    latest: dict[str, tuple[int, Any]] = {}
    last = since
    scanned = 0
    async for event in backend.history(since=since):
        last = event["rev"]
        scanned += 1
        lamport, who = event.get("lamport"), event.get("agent")
        # Events with no Lamport time of their own (a lease_expire that
        # another agent recorded for the holder) say nothing of the agent.
        if type(lamport) is not int or lamport < 1 or type(who) is not str:
            continue
        top = max(top, lamport)
        known = latest.get(who)
        if known is None or lamport >= known[0]:
            latest[who] = (lamport, event.get("clock") or {})
    records = {name: await backend.get(agent_clock_key(name)) for name in {*latest, agent}}
    stored: dict[str, tuple[int, Any]] = {}
    for name, rec in records.items():
        data = _loads(rec.data) if rec is not None and not rec.deleted else None
        if isinstance(data, dict) and data.get("agent") == name:
            stored[name] = (int(data.get("lamport", 0)), data.get("clock") or {})
    mine = stored.get(agent, (0, {}))
    if agent in latest and latest[agent][0] >= mine[0]:
        mine = latest[agent]
    if scanned >= _CHECKPOINT_EVERY:
        await _checkpoint(
            backend, head.version if head is not None else 0, last, top, latest, stored, records
        )
    return top, mine[0], _encode_clock(mine[1] if isinstance(mine[1], dict) else {})


async def _checkpoint(
    backend: AsyncBackend,
    head_version: int,
    rev: int,
    top: int,
    latest: dict[str, tuple[int, Any]],
    stored: dict[str, tuple[int, Any]],
    records: dict[str, Any],
) -> None:
    from .errors import AccordError

    compares = [Compare(CHECKPOINT_KEY, "version", "==", head_version)]
    puts = [Put(CHECKPOINT_KEY, "json", _encode({"rev": rev, "lamport": top}).encode())]
    for name, (lamport, clock) in latest.items():
        if name in stored and stored[name][0] > lamport:
            continue
        key = agent_clock_key(name)
        rec = records.get(name)
        compares.append(Compare(key, "version", "==", 0 if rec is None else rec.version))
        data = {"agent": name, "lamport": lamport, "clock": clock}
        puts.append(Put(key, "json", _encode(data).encode()))
    # Best effort: if it cannot be written, the next session catches up.
    with contextlib.suppress(AccordError):
        await backend.txn(compares, puts)
