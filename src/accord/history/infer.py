"""Foreign histories: infer each key's version order from values, then find races.

A foreign history has no versions (see :mod:`accord.history.foreign` for
its operations). As Jepsen's Elle does for registers, the checker recovers
the order of each key's writes from what the history proves, and from
nothing else:

1. **real time**: a write that ended before another began came first (the
   store is assumed to be linearizable for writes; accord checks the
   application's concurrency control, not the database: ``--linearizable``
   checks the database);
2. **writes follow reads**: an agent that read value X (or wrote it) and
   then wrote Y built Y on X, so X came before Y, unless the write says
   ``"blind": true`` (built on nothing); a cas is built on its ``expect``;
   the same agent's writes that took effect come in its program order;
3. **reads after completion** (used only where no stale read was found on
   the key): a read that began after write W1 ended and returned W2's value
   shows W1 came before W2.

A read's value can come only from a write that began before the read ended
(or from the key's initial value); a write whose outcome is ``info`` may
have taken effect at any moment after it began, or never, so it can be a
read's source until the end of the history, and nothing is ever certainly
ordered after it, or certainly erased by it. cas and append are atomic:
they are never lost updates themselves, and never race.

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
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .foreign import INF, FOp, ForeignHistory, Opaque, append_state, canonical, describe
from .format import format_time
from .result import ANOMALY_NAMES, Anomaly, CheckResult

_INITIAL = -1  # the basis "initial value" (version 0)

ATOMIC = frozenset({"cas", "append"})
"""Operations that read and write in one step: never a lost update, never a race."""


def _bits(mask: int) -> Iterable[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _closure(preds: list[list[int]]) -> list[int] | None:
    """Ancestors (a bitset each) of a DAG given as predecessor lists; None on a cycle."""
    n = len(preds)
    succs: list[list[int]] = [[] for _ in range(n)]
    indeg = [0] * n
    for i, ps in enumerate(preds):
        for j in ps:
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
    """One key's writes and reads, and the orders the history proves.

    ``writes`` are the operations that changed the key (outcome ok) or may
    have (info): writes, cas and appends, sorted by the last moment each
    could take effect. ``certain`` is the bitset of those that did.
    """

    def __init__(self, key: str, ops: list[FOp], append_kind: str | None) -> None:
        self.key = key
        self.kind = append_kind
        writes = [o for o in ops if o.mutates]
        writes.sort(key=lambda w: (w.until, w.start, w.seq))
        self.writes = writes
        self.reads = [o for o in ops if o.op == "read" and o.ok]
        self.ends = [w.until for w in writes]
        self.certain = sum(1 << i for i, w in enumerate(writes) if w.ok)
        # What a read can match: the value a write, cas or put leaves, by
        # identity; on an append key, the element or suffix an append adds.
        self.by_result: dict[Any, list[int]] = {}
        self.appends: list[int] = []
        for i, w in enumerate(writes):
            if w.op == "append":
                self.appends.append(i)
            else:
                self.by_result.setdefault(self._state(w.raw.get("value"), w), []).append(i)
        # Each value's writes by start, so the writes of a value that began
        # before a moment are a prefix.
        self.by_start: dict[Any, tuple[list[float], list[int]]] = {}
        for state, members in self.by_result.items():
            members.sort(key=lambda i: writes[i].start)
            self.by_start[state] = ([writes[i].start for i in members], members)
        # The latest start among the first k writes (by end), for frontiers.
        self.latest_start = [-INF]
        for w in writes:
            self.latest_start.append(max(self.latest_start[-1], w.start))
        self.index = {id(w): i for i, w in enumerate(writes)}
        self.anc1: list[int] | None = None
        self.anc: list[int] | None = None
        self._sources: dict[int, list[int]] = {}

    def _state(self, value: Any, o: FOp | None = None) -> Any:
        if self.kind is None:
            if o is not None and o.op in ("read", "write"):
                return o.ident
            return None if value is None else canonical(value)
        return append_state(value, self.kind)

    def frontier(self, t: float) -> range:
        """The latest writes that ended before ``t``: every other write that did
        came before one of these in real time, so edges from these suffice.

        A write that ended before the latest start S among those writes came
        before the write that started at S; the frontier is what ended in
        [S, t).
        """
        k = bisect_left(self.ends, t)
        if k == 0:
            return range(0)
        return range(bisect_left(self.ends, self.latest_start[k]), k)

    def source(self, op: FOp) -> list[int]:
        """Which writes a read's value could come from (``_INITIAL``: the initial value).

        Only writes that began before the read ended can be its source.
        """
        got = self._sources.get(id(op))
        if got is None:
            got = self._sources[id(op)] = self._match(self._state(op.raw.get("value"), op), op)
        return got

    def expected(self, op: FOp) -> list[int]:
        """Which writes a cas's ``expect`` could name (its atomic basis)."""
        return self._match(self._state(op.raw.get("expect")), op)

    def _match(self, state: Any, op: FOp) -> list[int]:
        writes = self.writes
        starts, members = self.by_start.get(state, ((), ()))
        cands = list(members[: bisect_right(starts, op.end)])
        if self.kind is not None and state not in ("", ()) and not isinstance(state, Opaque):
            last: Any = state[-1] if self.kind == "list" else None
            for i in self.appends:
                a = writes[i]
                if a.start > op.end or a is op:
                    continue
                if self.kind == "list":
                    if canonical(a.raw.get("value")) == last:
                        cands.append(i)
                else:
                    piece = a.raw.get("value")
                    if type(piece) is str and piece and state.endswith(piece):
                        cands.append(i)
        cands = [i for i in cands if writes[i] is not op]
        empty = state is None or state in ("", ())
        if empty:
            return [_INITIAL, *sorted(cands)]
        return sorted(cands) or [_INITIAL]


def check_foreign(history: ForeignHistory) -> CheckResult:
    """Find lost updates, stale reads, races and duplicates in a foreign history."""
    ops = history.ops
    result = CheckResult(format="foreign")
    result.counts = dict.fromkeys(ANOMALY_NAMES, 0)
    result.unknown_counts = dict.fromkeys(ANOMALY_NAMES, 0)
    result.events = len(ops)
    result.notes.extend(history.notes)
    if not ops:
        return result
    result.agents = len({o.agent for o in ops})
    keys = history.by_key()
    result.keys = len(keys)
    analyses = {
        key: _KeyAnalysis(key, key_ops, history.append_kind.get(key))
        for key, key_ops in keys.items()
    }
    result.writes = sum(bin(a.certain).count("1") for a in analyses.values())

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
                if o.ok:
                    last_seen[o.key] = (a.source(o), o.start, o)
                continue
            if not o.mutates:
                continue
            if o.op == "cas":
                o.basis, o.held_from, o.basis_op = a.expected(o), o.start, o
            elif o.op == "write" and not o.blind:
                seen = last_seen.get(o.key)
                if seen is not None:
                    o.basis, o.held_from, o.basis_op = seen
            if o.ok:
                # What an agent wrote it knows; an info write it does not
                # (it may never have applied), so it changes nothing it holds.
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
        if o.op == "read" and o.ok:
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
    preds1 = [list(a.frontier(w.start)) for w in writes]
    for i, w in enumerate(writes):
        if w.basis and len(w.basis) == 1 and w.basis[0] != _INITIAL and w.basis[0] != i:
            preds1[i].append(w.basis[0])
    for agent_ops in per_agent.values():
        last = -1
        for o in agent_ops:
            # Only writes that took effect: an info write may apply after the
            # agent's next write (the client gave up waiting, the store did not).
            if o.key == a.key and o.op != "read" and o.ok:
                i = a.index[id(o)]
                if last >= 0:
                    preds1[i].append(last)
                last = i
    a.anc1 = _closure(preds1)
    stale = _stale_reads(a, result) if a.anc1 is not None else 0
    # Order 2: order 1 plus reads after completion, unless a read was stale.
    preds = [list(ps) for ps in preds1]
    if not stale:
        for r in a.reads:
            src = a.source(r)
            if len(src) == 1 and src[0] != _INITIAL:
                j = src[0]
                # What ended before the read began came before what it read
                # (through the frontier: the rest came before the frontier).
                preds[j].extend(x for x in a.frontier(r.start) if x != j)
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
    """True if the writes that took effect are totally ordered."""
    anc = a.anc
    if anc is None:
        return False
    certain = a.certain
    counts = sorted(bin(anc[i] & certain).count("1") for i in _bits(certain))
    return counts == list(range(len(counts)))


def _w_event(w: FOp) -> dict[str, Any]:
    out = dict(w.raw)
    out["line"] = w.line
    return out


def _w_label(w: FOp) -> str:
    span = f"{format_time(w.start)}-{format_time(w.end)}"
    return f"{describe(w)} (line {w.line}, {span})"


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
    text = repr(shown) if isinstance(shown, str) else json.dumps(shown)
    return text if len(text) <= 40 else text[:37] + "..."


def _lost_updates(a: _KeyAnalysis, anc: list[int], result: CheckResult) -> set[tuple[int, int]]:
    writes = a.writes
    n = len(writes)
    certain_of: dict[int, list[int]] = {}
    possible_of: dict[int, list[int]] = {}
    for i, w in enumerate(writes):
        if not w.basis or w.op in ATOMIC:
            continue  # blind, never read, or atomic: claims no basis that could be stale
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
        # An info write may never have applied (whatever it erased is unknown),
        # and a write that may never have applied cannot certainly be erased.
        certain_all = {j for j in certain_all if writes[j].ok} if w.ok else set()
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
        if w.basis and len(w.basis) == 1 and w.ok and w.op not in ATOMIC:
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
        why = (
            "it may never have taken effect (outcome info), and the writes it would have "
            "erased"
            if not w.ok
            else "that depends on an order this history does not show (the writes overlap in "
            "time and no read tells them apart, or one may never have taken effect)"
        )
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
                    + f" is undecided: {why}. Record versions, or reads after the writes, "
                    "to decide."
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
    # seen_after[k]: the writes that some write among the first k (by end)
    # came after; a read is stale when every write it can have read is one.
    seen_after = [0]
    for before in anc1:
        seen_after.append(seen_after[-1] | before)
    writes = a.writes
    for r in a.reads:
        k = bisect_left(a.ends, r.start)
        if k == 0:
            continue
        src = a.source(r)
        covered = seen_after[k]
        if not all(s == _INITIAL or covered >> s & 1 for s in src):
            continue
        # W: the latest write acknowledged before R began that came after
        # the first write R can have read.
        first = src[0]
        latest = next(
            j for j in range(k - 1, -1, -1) if first == _INITIAL or anc1[j] >> first & 1
        )
        found += 1
        result.counts["stale-read"] += 1
        w = writes[latest]
        got = "the initial value" if first == _INITIAL else _basis_label(a, first)
        others = ""
        if len(src) > 1:
            others = (
                f" The {len(src) - 1} other possible source(s) of that value were overwritten "
                "before R began as well."
            )
        result.anomalies.append(
            Anomaly(
                name="stale-read",
                key=a.key,
                explanation=(
                    f"Let W = {_w_label(w)} and R = {r.agent}'s read of {a.key} (line {r.line}, "
                    f"began {format_time(r.start)}). W was acknowledged at {format_time(w.end)}, "
                    f"before R began, and came after {got}; yet R returned the value of "
                    f"{got}.{others} R read stale state."
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
    # judged by the lost-update rule above. A write that says it is blind
    # means to replace whatever is there, and cas and append are atomic.
    writes = a.writes
    for i in range(1, len(writes)):
        p, w = writes[i - 1], writes[i]
        if p.agent == w.agent or w.basis or w.blind or w.op in ATOMIC:
            continue
        if not (p.ok and w.ok):
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
                    "version check, a lease or a queue (or mark a write that means to replace "
                    "whatever is there \"blind\": true)."
                ),
                events=(_w_event(p), _w_event(w)),
                agents=(p.agent, w.agent),
                window=(_iso(p.start), _iso(w.end)),
            )
        )


def _lost_count(a: _KeyAnalysis, anc: list[int]) -> int | None:
    """Writes whose change is missing from the key's final value (their order is total).

    Only writes that took effect count; an append, or a write that read
    nothing, continues from the write before it.
    """
    writes = a.writes
    certain = a.certain
    members = list(_bits(certain))
    if not members:
        return 0
    order = sorted(members, key=lambda i: bin(anc[i] & certain).count("1"))
    pos = {i: p for p, i in enumerate(order)}
    kept = set()
    cur: int = order[-1]
    while True:
        kept.add(cur)
        w = writes[cur]
        previous = order[pos[cur] - 1] if pos[cur] > 0 else _INITIAL
        if w.op == "append" or w.basis is None:
            parent = previous
        elif len(w.basis) != 1:
            return None
        else:
            parent = w.basis[0]
            if parent != _INITIAL and parent not in pos:
                parent = previous  # built on an info write: it applied, just before
        if parent == _INITIAL or parent in kept:
            break
        cur = parent
    return len(members) - len(kept)


def _duplicates(ops: list[FOp], result: CheckResult) -> None:
    for what in ("idem", "request"):
        seen: dict[str, FOp] = {}
        for o in ops:
            ident = getattr(o, what)
            if o.op == "read" or not o.ok or ident is None:
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
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
