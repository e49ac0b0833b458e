"""Export a history as a ShiViz log (https://bestchai.bitbucket.io/shiviz/).

A ShiViz file starts with the log-parsing regular expression and an empty
"multiple executions" delimiter line; then each event is two lines, the
event's description and ``host {vector clock as JSON}``.

ShiViz insists that each host's own clock entry starts at 1 and grows by
exactly one per event, and that every entry names an event that exists. An
accord history need not satisfy that literally (several processes may act
under one agent name, and lease or queue events may not tick the clock), so
the clocks are renumbered here: each agent's own entry is its event count,
and an entry ``other: n`` in the recorded clock becomes the index of the
last event of ``other`` whose own recorded entry was at most ``n``. The
happened-before relation of the recorded clocks is kept.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterable
from typing import Any, TextIO

REGEX = r"(?<event>.*)\n(?<host>\S*) (?<clock>{.*})"


def host_name(agent: str) -> str:
    """A ShiViz host name: the agent with whitespace replaced by ``_``."""
    return re.sub(r"\s+", "_", agent) or "?"


def describe(ev: dict[str, Any]) -> str:
    """A one-line description of an accord event."""
    op = ev.get("op", "?")
    parts = [f"rev {ev.get('rev')}", str(op)]
    if ev.get("key"):
        parts.append(str(ev["key"]))
    if ev.get("version") is not None:
        parts.append(f"v{ev['version']}")
    if ev.get("based_on") is not None and op != "read":
        parts.append(f"based on v{ev['based_on']}")
    if ev.get("lease") is not None:
        parts.append(f"lease {ev['lease']}")
    outcome = ev.get("outcome", "ok")
    if outcome != "ok":
        parts.append(str(outcome).upper())
    return " ".join(parts)


def write_shiviz(events: Iterable[dict[str, Any]], out: TextIO) -> int:
    """Write ``events`` (accord history dicts, in revision order) as a ShiViz log.

    Returns the number of events written.
    """
    out.write(REGEX + "\n\n")
    count = 0
    # For each agent: its recorded own-clock values and the ShiViz index of
    # the event that carried each, both ascending.
    own_recorded: dict[str, list[int]] = {}
    own_index: dict[str, list[int]] = {}
    current: dict[str, dict[str, int]] = {}
    for ev in events:
        agent = str(ev.get("agent") or "?")
        host = host_name(agent)
        recorded = ev.get("clock") if isinstance(ev.get("clock"), dict) else {}
        assert isinstance(recorded, dict)
        clock = dict(current.get(host, {}))
        for other, n in recorded.items():
            other_host = host_name(str(other))
            if other_host == host or not isinstance(n, int):
                continue
            values = own_recorded.get(other_host)
            if not values:
                continue
            at = bisect_right(values, n) - 1
            if at >= 0:
                mapped = own_index[other_host][at]
                if mapped > clock.get(other_host, 0):
                    clock[other_host] = mapped
        mine = clock.get(host, 0) + 1
        clock[host] = mine
        current[host] = clock
        own = recorded.get(agent)
        if isinstance(own, int):
            values = own_recorded.setdefault(host, [])
            if not values or own >= values[-1]:
                values.append(own)
                own_index.setdefault(host, []).append(mine)
        out.write(describe(ev) + "\n")
        out.write(f"{host} {json.dumps(clock)}\n")
        count += 1
    return count
