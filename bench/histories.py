"""Generated foreign histories of a linearizable store, and variants that are not.

A simulated store: clients issue operations one after another; each
operation gets a start, an end, and one moment in between at which it takes
effect, and the results are computed by applying the operations in the
order of those moments, so every history is linearizable by construction.
The shapes follow Porcupine's test data:

* :func:`kv_history`: Jepsen's key-value test (get, put, append on a few
  keys; values like ``"x 12 3 y"``), the last operation of some clients left
  pending (outcome ``info``);
* :func:`register_history`: Jepsen's etcd register test (read, write, cas of
  small integers; some operations time out: ``info``, and may or may not
  have taken effect, possibly after they ended).

:func:`broken` turns a history into one that is certainly not linearizable
by changing one read, in one of three ways.

Seeded: the same arguments give the same history.
"""

from __future__ import annotations

import heapq
import random
from typing import Any

BASE = 1_800_000_000.0


def _clients(rnd: random.Random, clients: int, ops: int, mean: float) -> list[tuple[int, float,
                                                                                   float]]:
    """``ops`` (client, start, end) intervals: each client's operations back to back."""
    ready = [(rnd.uniform(0, mean), c) for c in range(clients)]
    heapq.heapify(ready)
    out = []
    for _ in range(ops):
        start, c = heapq.heappop(ready)
        end = start + rnd.expovariate(1 / mean)
        out.append((c, start, end))
        heapq.heappush(ready, (end + rnd.expovariate(10 / mean), c))
    return out


def kv_history(clients: int = 50, ops: int = 3000, keys: int = 10, seed: int = 1,
               pending: int = 5) -> list[dict[str, Any]]:
    """A linearizable key-value history (get 50%, append 40%, put 10%)."""
    rnd = random.Random(seed)
    plan = []
    counts = [0] * clients
    for c, start, end in _clients(rnd, clients, ops, 1.0):
        roll = rnd.random()
        op = "read" if roll < 0.5 else "append" if roll < 0.9 else "write"
        ev: dict[str, Any] = {"agent": f"c{c}", "op": op, "key": str(rnd.randrange(keys))}
        if op != "read":
            ev["value"] = f"x {c} {counts[c]} y"
            counts[c] += 1
        if op == "write":
            ev["blind"] = True  # a Jepsen client puts without reading first
        ev["start"], ev["end"] = BASE + start, BASE + end
        plan.append((rnd.uniform(start, end), ev))
    last = {}
    for _, ev in plan:
        last[ev["agent"]] = ev
    left = [ev for ev in last.values() if ev["op"] != "read"][:pending]
    for ev in left:
        ev["outcome"] = "info"
    applied = {id(ev) for ev in left if rnd.random() < 0.5}
    state: dict[str, str] = {}
    for _, ev in sorted(plan, key=lambda p: p[0]):
        key = ev["key"]
        if ev.get("outcome") == "info" and id(ev) not in applied:
            continue
        if ev["op"] == "read":
            ev["value"] = state.get(key, "")
        elif ev["op"] == "append":
            state[key] = state.get(key, "") + ev["value"]
        else:
            state[key] = ev["value"]
    return [ev for _, ev in sorted(plan, key=lambda p: p[1]["start"])]


def register_history(clients: int = 5, ops: int = 100, seed: int = 1,
                     timeouts: float = 0.05) -> list[dict[str, Any]]:
    """A linearizable register history (read 40%, write 30%, cas 30%, values 0-4)."""
    rnd = random.Random(seed)
    plan = []
    for c, start, end in _clients(rnd, clients, ops, 1.0):
        roll = rnd.random()
        ev: dict[str, Any] = {"agent": f"p{c}", "key": "register"}
        if roll < 0.4:
            ev["op"] = "read"
        elif roll < 0.7:
            ev.update(op="write", value=rnd.randrange(5), blind=True)
        else:
            ev.update(op="cas", expect=rnd.randrange(5), value=rnd.randrange(5))
        ev["start"], ev["end"] = BASE + start, BASE + end
        point = rnd.uniform(start, end)
        if ev["op"] != "read" and rnd.random() < timeouts:
            ev["outcome"] = "info"
            # A timed-out operation took effect, maybe after it ended, or never.
            point = rnd.choice([point, end + rnd.expovariate(0.5), None])
        plan.append((point, ev))
    state = None
    for point, ev in sorted(plan, key=lambda p: (p[0] is None, p[0] or 0.0)):
        if point is None:
            continue
        if ev["op"] == "read":
            ev["value"] = state
        elif ev["op"] == "write" or state == ev["expect"]:
            state = ev["value"]
        elif ev.get("outcome") != "info":
            ev["outcome"] = "fail"
    return [ev for _, ev in sorted(plan, key=lambda p: p[1]["start"])]


def broken(history: list[dict[str, Any]], how: str, where: float = 0.9,
           seed: int = 1) -> list[dict[str, Any]]:
    """A copy of a :func:`kv_history` with one get changed so that no order explains it.

    ``how``: ``stale`` (the get misses the last append it saw, which had
    ended before the get began), ``phantom`` (it saw an append nobody made),
    ``reordered`` (it saw its last two appends in the opposite order, though
    the first had ended before the second began). ``where`` (0 to 1) says how
    far into the history the changed get is, at the earliest.
    """
    rnd = random.Random(seed)
    out = [dict(ev) for ev in history]
    appends: dict[tuple[str, str], dict[str, Any]] = {}
    for ev in out:
        if ev["op"] == "append":
            appends[(ev["key"], ev["value"])] = ev
    reads = [
        (i, ev) for i, ev in enumerate(out)
        if ev["op"] == "read" and ev.get("outcome", "ok") == "ok" and i >= where * len(out)
    ]
    rnd.shuffle(reads)
    for i, ev in reads:
        pieces = [p + " y" for p in ev["value"].split(" y") if p]
        if len(pieces) < 2 or "".join(pieces) != ev["value"]:
            continue
        last = appends.get((ev["key"], pieces[-1]))
        before = appends.get((ev["key"], pieces[-2]))
        if last is None or before is None:
            continue
        if how == "stale" and last["end"] < ev["start"]:
            out[i] = {**ev, "value": "".join(pieces[:-1])}
            return out
        if how == "phantom":
            out[i] = {**ev, "value": ev["value"] + "x 999 999 y"}
            return out
        if how == "reordered" and before["end"] < last["start"]:
            out[i] = {**ev, "value": "".join([*pieces[:-2], pieces[-1], pieces[-2]])}
            return out
    raise ValueError(f"no get in this history can be made {how}")
