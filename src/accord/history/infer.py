"""Foreign histories: infer each key's version order from values, then check.

A foreign history has no versions: one operation a line, with ``agent``,
``op`` (read or write), ``key``, ``value`` (or ``hash``) and ``start`` /
``end`` times that bound the operation in real time. As Jepsen's Elle does
for registers, the checker recovers the order of each key's writes from
what the history proves, and from nothing else:

1. **real time**: a write that ended before another began came first (the
   store is assumed to be linearizable for writes; accord checks the
   application's concurrency control, not the database);
2. **writes follow reads**: an agent that read value X (or wrote it) and then
   wrote Y built Y on X, so X came before Y; the same agent's writes come in
   its program order;
3. **reads after completion** (used only where no stale read was found on
   the key): a read that began after write W1 ended and returned W2's value
   shows W1 came before W2.

Unique written values make the inference exact. Where it is not (two writes
that overlap in time and that no read tells apart, or a value written
twice), every finding that depends on the missing order is reported as
"unknown" rather than "clean". A value that was read but never written is
taken as the key's initial value, as is a read of null.

The whole foreign history is held in memory (foreign histories come from
traces and logs, far smaller than a store's history); ordering one key's
writes costs time quadratic in that key's write count.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .format import FOREIGN_OPS, EventStream, format_time, parse_time
from .result import ANOMALY_NAMES, Anomaly, CheckResult

_INITIAL = -1  # the basis "initial value" (version 0)


@dataclass(slots=True)
class FOp:
    """One foreign operation, normalised."""

    line: int
    agent: str
    op: str
    key: str
    ident: str | None  # the value's identity (hash, or canonical JSON); None = absent
    start: float
    end: float
    raw: dict[str, Any]
    seq: int = 0
    idem: str | None = None
    request: str | None = None
    # filled in by the analysis
    basis: list[int] | None = None  # write indexes (or _INITIAL) this op built on / read
    held_from: float | None = None  # when the agent got its basis (the read's start)
    basis_op: FOp | None = None  # the read (or own write) that gave the basis
    clock: dict[str, int] = field(default_factory=dict)


def value_ident(event: dict[str, Any]) -> str | None:
    """The identity of an event's value: its ``hash``, else canonical JSON of ``value``."""
    h = event.get("hash")
    if h is not None:
        return str(h)
    if "value" not in event or event["value"] is None:
        return None
    return "=" + json.dumps(event["value"], sort_keys=True, separators=(",", ":"))


def _normalise(line: int, ev: dict[str, Any], stream: EventStream, seq: int) -> FOp | None:
    agent = ev.get("agent")
    if type(agent) is not str or not agent:
        stream.fail(line, f"missing or invalid 'agent' ({agent!r}).")
        return None
    op = ev.get("op")
    if type(op) is not str or op not in FOREIGN_OPS:
        stream.fail(
            line,
            f"unknown op {op!r} in a foreign history; expected read or write (an accord "
            "history has a 'rev' on every line).",
        )
        return None
    key = ev.get("key")
    if type(key) is not str or not key:
        stream.fail(line, f"a {op} without a 'key'.")
        return None
    if op == "write" and "value" not in ev and "hash" not in ev:
        stream.fail(line, "a write without 'value' or 'hash'; the checker needs one of them.")
        return None
    if op == "read" and "value" not in ev and "hash" not in ev:
        stream.fail(line, "a read without 'value' or 'hash' (use null for 'absent').")
        return None
    try:
        start = parse_time(ev.get("start", ev.get("time")))
        end = parse_time(ev.get("end", ev.get("time")))
    except ValueError as exc:
        stream.fail(line, f"a time that cannot be read ({exc}); use RFC 3339 or seconds.")
        return None
    if start is None and end is None:
        stream.fail(line, "no 'start'/'end' (or 'time'): the checker needs real time.")
        return None
    start = end if start is None else start
    end = start if end is None else end
    assert start is not None and end is not None
    if end < start:
        stream.fail(line, f"'end' ({ev.get('end')}) is before 'start' ({ev.get('start')}).")
        return None
    outcome = ev.get("outcome", "ok")
    if outcome not in ("ok", None, True):
        return None
    idem = ev.get("idem")
    request = ev.get("request")
    return FOp(
        line=line,
        agent=agent,
        op=op,
        key=key,
        ident=value_ident(ev),
        start=start,
        end=end,
        raw=ev,
        seq=seq,
        idem=None if idem is None else str(idem),
        request=None if request is None else str(request),
    )


def _bits(mask: int) -> Iterable[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _closure(preds: list[int]) -> list[int] | None:
    """Transitive closure of a DAG given as predecessor bitsets; None on a cycle."""
    n = len(preds)
    succs: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for i, m in enumerate(preds):
        for j in _bits(m):
            succs[j].append(i)
            indeg[i] += 1
    ready = [i for i in range(n) if indeg[i] == 0]
    anc = [0] * n
    done = 0
    while ready:
        j = ready.pop()
        done += 1
        a = anc[j] | (1 << j)
        for i in succs[j]:
            anc[i] |= a
            indeg[i] -= 1
            if indeg[i] == 0:
                ready.append(i)
    if done < n:
        return None
    return anc


class _KeyAnalysis:
    """One key's writes and reads, and the orders the history proves."""

    def __init__(self, key: str, writes: list[FOp], reads: list[FOp]) -> None:
        self.key = key
        writes.sort(key=lambda w: (w.end, w.start, w.seq))
        self.writes = writes
        self.reads = reads
        self.ends = [w.end for w in writes]
        self.by_ident: dict[str, list[int]] = {}
        for i, w in enumerate(writes):
            if w.ident is not None:
                self.by_ident.setdefault(w.ident, []).append(i)
        self.index = {id(w): i for i, w in enumerate(writes)}
        self.anc1: list[int] | None = None
        self.anc: list[int] | None = None

    def ended_before(self, t: float) -> int:
        """Bitset of writes that ended strictly before ``t``."""
        return (1 << bisect_left(self.ends, t)) - 1

    def source(self, op: FOp) -> list[int]:
        """Which writes a read's value could come from (``_INITIAL`` for initial)."""
        if op.ident is None:
            return [_INITIAL]
        return self.by_ident.get(op.ident) or [_INITIAL]


def check_foreign(
    items: Iterable[tuple[int, dict[str, Any]]],
    stream: EventStream,
    on_event: Callable[[int, dict[str, Any]], None] | None = None,
) -> CheckResult:
    """Check a foreign history (see the module docs); used by :func:`accord.check`."""
    ops: list[FOp] = []
    for line, ev in items:
        fop = _normalise(line, ev, stream, len(ops))
        if fop is None:
            continue
        ops.append(fop)
        if on_event is not None:
            on_event(line, ev)
    result = CheckResult(format="foreign")
    result.counts = dict.fromkeys(ANOMALY_NAMES, 0)
    result.unknown_counts = dict.fromkeys(ANOMALY_NAMES, 0)
    result.events = len(ops)
    if not ops:
        return result
    result.agents = len({o.agent for o in ops})
    keys: dict[str, tuple[list[FOp], list[FOp]]] = {}
    for o in ops:
        w, r = keys.setdefault(o.key, ([], []))
        (w if o.op == "write" else r).append(o)
    result.keys = len(keys)
    result.writes = sum(len(w) for w, _ in keys.values())
    analyses = {key: _KeyAnalysis(key, w, r) for key, (w, r) in keys.items()}

    # Program order: each agent's operations by start time (then line).
    per_agent: dict[str, list[FOp]] = {}
    for o in ops:
        per_agent.setdefault(o.agent, []).append(o)
    for agent_ops in per_agent.values():
        agent_ops.sort(key=lambda o: (o.start, o.seq))
        last_seen: dict[str, tuple[list[int], float, FOp]] = {}
        for o in agent_ops:
            a = analyses[o.key]
            if o.op == "read":
                last_seen[o.key] = (a.source(o), o.start, o)
            else:
                seen = last_seen.get(o.key)
                if seen is not None:
                    o.basis, o.held_from, o.basis_op = seen
                last_seen[o.key] = ([a.index[id(o)]], o.end, o)
    _clocks(ops, analyses, per_agent)

    lost_total: int | None = 0
    for a in analyses.values():
        lost = _analyse(a, result, per_agent)
        lost_total = None if lost is None or lost_total is None else lost_total + lost
    result.lost_writes = lost_total
    _duplicates(ops, result)
    ambiguous = sum(1 for a in analyses.values() if a.anc is None or not _total(a))
    if ambiguous:
        result.notes.append(
            f"The version order of {ambiguous} key(s) is only partly known (writes that "
            "overlap in time and that no read tells apart); findings that depend on it are "
            "listed as unknown."
        )
    return result


def _clocks(
    ops: list[FOp], analyses: dict[str, _KeyAnalysis], per_agent: dict[str, list[FOp]]
) -> None:
    """Vector clocks from program order and reads-from (a read merges its write's clock)."""
    order = sorted(ops, key=lambda o: (o.start, o.seq))
    clocks: dict[str, dict[str, int]] = {a: {} for a in per_agent}
    for o in order:
        mine = clocks[o.agent]
        if o.op == "read":
            src = analyses[o.key].source(o)
            if len(src) == 1 and src[0] != _INITIAL:
                for who, n in analyses[o.key].writes[src[0]].clock.items():
                    if n > mine.get(who, 0):
                        mine[who] = n
        mine[o.agent] = mine.get(o.agent, 0) + 1
        o.clock = dict(mine)


def _analyse(a: _KeyAnalysis, result: CheckResult, per_agent: dict[str, list[FOp]]) -> int | None:
    writes = a.writes
    n = len(writes)
    # Order 1: real time, writes-follow-reads, program order.
    preds1 = [a.ended_before(w.start) for w in writes]
    for i, w in enumerate(writes):
        if w.basis and len(w.basis) == 1 and w.basis[0] != _INITIAL and w.basis[0] != i:
            preds1[i] |= 1 << w.basis[0]
    for agent_ops in per_agent.values():
        last = -1
        for o in agent_ops:
            if o.key == a.key and o.op == "write":
                i = a.index[id(o)]
                if last >= 0:
                    preds1[i] |= 1 << last
                last = i
    a.anc1 = _closure(preds1)
    stale = _stale_reads(a, result) if a.anc1 is not None else 0
    # Order 2: order 1 plus reads after completion, unless a read was stale.
    preds = list(preds1)
    if not stale:
        for r in a.reads:
            src = a.source(r)
            if len(src) == 1 and src[0] != _INITIAL:
                j = src[0]
                preds[j] |= a.ended_before(r.start) & ~(1 << j)
    anc = _closure(preds)
    if anc is None:
        anc = a.anc1
    a.anc = anc
    if anc is None:
        result.notes.append(
            f"The writes of {a.key} cannot be ordered consistently (a cycle in real time "
            "and reads); its lost updates are not checked."
        )
        return None
    _lost_updates(a, anc, result)
    _concurrent(a, anc, result)
    if n and not _total(a):
        return None
    return _lost_count(a, anc)


def _lt(anc: list[int], x: int, y: int) -> bool:
    """x came before y (``_INITIAL`` comes before everything)."""
    if x == _INITIAL:
        return y != _INITIAL
    if y == _INITIAL:
        return False
    return bool((anc[y] >> x) & 1)


def _total(a: _KeyAnalysis) -> bool:
    anc = a.anc
    if anc is None:
        return False
    n = len(a.writes)
    return sorted(bin(m).count("1") for m in anc) == list(range(n))


def _w_event(w: FOp) -> dict[str, Any]:
    out = dict(w.raw)
    out["line"] = w.line
    return out


def _w_label(w: FOp) -> str:
    text = _short_value(w)
    span = f"{format_time(w.start)}-{format_time(w.end)}"
    return f"{w.agent}'s write of {text} (line {w.line}, {span})"


def _basis_label(a: _KeyAnalysis, b: int, w: FOp | None = None) -> str:
    if b == _INITIAL:
        text = "the initial value"
        got = w.basis_op if w is not None else None
        if got is not None and got.op == "read" and got.ident is not None:
            text += f" {_short_value(got)} (no write of it in this history)"
    else:
        text = _w_label(a.writes[b])
    if w is not None and w.basis_op is not None and w.basis_op.op == "read":
        text += f", which {w.agent} read at {format_time(w.basis_op.start)}"
    return text


def _short_value(o: FOp) -> str:
    shown = o.raw.get("value", o.raw.get("hash"))
    text = json.dumps(shown) if not isinstance(shown, str) else repr(shown)
    return text if len(text) <= 40 else text[:37] + "..."


def _lost_updates(a: _KeyAnalysis, anc: list[int], result: CheckResult) -> set[tuple[int, int]]:
    writes = a.writes
    n = len(writes)
    certain_of: dict[int, list[int]] = {}
    possible_of: dict[int, list[int]] = {}
    for i, w in enumerate(writes):
        if not w.basis:
            continue  # never read the key: a blind write claims no basis
        certain_all: set[int] | None = None
        possible_any: set[int] = set()
        for b in w.basis:
            certain: set[int] = set()
            for j in range(n):
                if j in (i, b):
                    continue
                if _lt(anc, b, j) and _lt(anc, j, i):
                    certain.add(j)
                elif not _lt(anc, j, b) and not _lt(anc, i, j):
                    possible_any.add(j)
            certain_all = certain if certain_all is None else certain_all & certain
            possible_any |= certain
        assert certain_all is not None
        if certain_all:
            certain_of[i] = sorted(certain_all)
        if possible_any - certain_all:
            possible_of[i] = sorted(possible_any - certain_all)
    reported = {(i, j) for i, js in certain_of.items() for j in js}

    for i, erased in certain_of.items():
        w = writes[i]
        assert w.basis
        b = w.basis[0]
        names = "; ".join(_w_label(writes[j]) for j in erased[:5])
        more = f" and {len(erased) - 5} more" if len(erased) > 5 else ""
        first = writes[erased[0]]
        result.counts["lost-update"] += 1
        result.anomalies.append(
            Anomaly(
                name="lost-update",
                key=a.key,
                explanation=(
                    f"Let W1 = {_w_label(first)} and W2 = {_w_label(w)}. {w.agent} built W2 "
                    f"on {_basis_label(a, b, w)}"
                    + (" (or an equal value)" if len(w.basis) > 1 else "")
                    + f"; the history proves that {names}{more} came after that and "
                    "before W2. So W2 erased W1's change without having seen it."
                ),
                events=(*tuple(_w_event(writes[j]) for j in erased[:20]), _w_event(w)),
                agents=tuple(dict.fromkeys([writes[j].agent for j in erased] + [w.agent])),
                window=_held(first, w),
                details={"erased_lines": [writes[j].line for j in erased]},
            )
        )

    # Two writes built on the same basis: whichever came second erased the other,
    # even when the history cannot say which one that was.
    groups: dict[int, list[int]] = {}
    for i, w in enumerate(writes):
        if w.basis and len(w.basis) == 1:
            groups.setdefault(w.basis[0], []).append(i)
    for b, members in groups.items():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]
                if (i, j) in reported or (j, i) in reported:
                    continue
                if _lt(anc, i, j) or _lt(anc, j, i):
                    continue
                reported.update(((i, j), (j, i)))
                wi, wj = writes[i], writes[j]
                result.counts["lost-update"] += 1
                result.anomalies.append(
                    Anomaly(
                        name="lost-update",
                        key=a.key,
                        explanation=(
                            f"Let W1 = {_w_label(wi)} and W2 = {_w_label(wj)}. Both were built "
                            f"on {_basis_label(a, b)}, and both committed. Whichever came "
                            "second replaced the other without having seen it: one change was "
                            "lost (the history does not show which)."
                        ),
                        events=(_w_event(wi), _w_event(wj)),
                        agents=tuple(dict.fromkeys((wi.agent, wj.agent))),
                        window=_held(wi, wj),
                        details={"order": "unknown"},
                    )
                )

    for i, cands in possible_of.items():
        if i in certain_of:
            continue
        cands = [j for j in cands if (i, j) not in reported]
        if not cands:
            continue
        w = writes[i]
        assert w.basis
        result.unknown_counts["lost-update"] += 1
        result.unknown.append(
            Anomaly(
                name="lost-update",
                key=a.key,
                certain=False,
                explanation=(
                    f"Unknown: W = {_w_label(w)} was built on "
                    f"{_basis_label(a, w.basis[0])}. Whether it erased "
                    + "; ".join(_w_label(writes[j]) for j in cands[:5])
                    + " depends on an order this history does not show (the writes "
                    "overlap in time and no read tells them apart). Record versions, or "
                    "reads after the writes, to decide."
                ),
                events=(*tuple(_w_event(writes[j]) for j in cands[:20]), _w_event(w)),
                agents=tuple(dict.fromkeys([writes[j].agent for j in cands] + [w.agent])),
                details={"candidate_lines": [writes[j].line for j in cands]},
            )
        )
    return reported


def _held(first: FOp, w: FOp) -> tuple[str, str] | None:
    """The window in which both agents held the basis: from the later of their
    reads until the first of the two writes ended."""
    starts = [x.held_from for x in (first, w) if x.held_from is not None]
    if first.basis != w.basis:
        starts = [w.held_from] if w.held_from is not None else []
    if not starts:
        return None
    lo, hi = max(starts), min(first.end, w.end)
    return (_iso(lo), _iso(hi)) if lo <= hi else None


def _stale_reads(a: _KeyAnalysis, result: CheckResult) -> int:
    anc1 = a.anc1
    assert anc1 is not None
    found = 0
    for r in a.reads:
        src = a.source(r)
        done_before = a.ended_before(r.start)
        newer_all: list[int] | None = None
        for s in src:
            newer = [j for j in _bits(done_before) if j != s and _lt(anc1, s, j)]
            newer_all = newer if newer_all is None else [j for j in newer_all if j in newer]
        if not newer_all:
            continue
        found += 1
        result.counts["stale-read"] += 1
        latest = max(newer_all, key=lambda j: a.writes[j].end)
        w = a.writes[latest]
        got = "the initial value" if src == [_INITIAL] else _basis_label(a, src[0])
        result.anomalies.append(
            Anomaly(
                name="stale-read",
                key=a.key,
                explanation=(
                    f"Let W = {_w_label(w)} and R = {r.agent}'s read of {a.key} (line {r.line}, "
                    f"began {format_time(r.start)}). W was acknowledged at {format_time(w.end)}, "
                    f"before R began, and came after {got}; yet R returned {got}. R read "
                    "stale state."
                ),
                events=(_w_event(w), _w_event(r)),
                agents=tuple(dict.fromkeys((w.agent, r.agent))),
                window=(_iso(w.end), _iso(r.start)),
            )
        )
    return found


def _concurrent(a: _KeyAnalysis, anc: list[int], result: CheckResult) -> None:
    # Only writes that never read the key can race without a lost update: a
    # write built on a read either read its predecessor (ordered) or is
    # judged by the lost-update rule above.
    writes = a.writes
    for i in range(1, len(writes)):
        p, w = writes[i - 1], writes[i]
        if p.agent == w.agent or w.basis:
            continue
        if all(n <= w.clock.get(who, 0) for who, n in p.clock.items()):
            continue
        result.counts["concurrent-writes"] += 1
        result.anomalies.append(
            Anomaly(
                name="concurrent-writes",
                key=a.key,
                explanation=(
                    f"Let W1 = {_w_label(p)} and W2 = {_w_label(w)}. Neither agent had seen the "
                    f"other's write (no read connects them): {w.agent} wrote without having read "
                    f"the key, so its write and {p.agent}'s raced. Guard such writes with a "
                    "version check, a lease or a queue."
                ),
                events=(_w_event(p), _w_event(w)),
                agents=(p.agent, w.agent),
                window=(_iso(p.start), _iso(w.end)),
            )
        )


def _lost_count(a: _KeyAnalysis, anc: list[int]) -> int | None:
    """Writes whose change is missing from the key's final value (order is total)."""
    writes = a.writes
    n = len(writes)
    if n == 0:
        return 0
    order = sorted(range(n), key=lambda i: bin(anc[i]).count("1"))
    pos = {i: p for p, i in enumerate(order)}
    kept = set()
    cur: int = order[-1]
    while True:
        kept.add(cur)
        w = writes[cur]
        if w.basis is None:
            parent = order[pos[cur] - 1] if pos[cur] > 0 else _INITIAL
        elif len(w.basis) != 1:
            return None
        else:
            parent = w.basis[0]
        if parent == _INITIAL or parent in kept:
            break
        cur = parent
    return n - len(kept)


def _duplicates(ops: list[FOp], result: CheckResult) -> None:
    for what in ("idem", "request"):
        seen: dict[str, FOp] = {}
        for o in ops:
            ident = getattr(o, what)
            if o.op != "write" or ident is None:
                continue
            first = seen.get(ident)
            if first is None:
                seen[ident] = o
                continue
            label = "idempotency key" if what == "idem" else "request"
            result.counts["duplicate-apply"] += 1
            result.anomalies.append(
                Anomaly(
                    name="duplicate-apply",
                    key=o.key,
                    explanation=(
                        f"The {label} {ident!r} was applied twice: {_w_label(first)} and "
                        f"{_w_label(o)}. A replay must return the first result and apply nothing."
                    ),
                    events=(_w_event(first), _w_event(o)),
                    agents=tuple(dict.fromkeys((first.agent, o.agent))),
                )
            )


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
