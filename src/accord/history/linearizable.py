"""Linearizability of a foreign history, key by key: the Wing-Gong/Lowe search.

A history is linearizable when every operation can be given one moment
between its start and its end (for ``info``: any moment after its start, or
never) such that, taken in the order of those moments, the operations on
each key behave as one register (read, write, cas) or one append value
(read, write, append) would. Linearizability is compositional (Herlihy and
Wing's locality, which Porcupine calls P-compositionality): a history is
linearizable exactly when each key's history is, so each key is searched
alone.

The search is the one Porcupine and Knossos run (Wing and Gong, with Lowe's
memoisation): walk the operations in order of their start and end times;
at each step try to linearize, next, an operation whose start comes before
the earliest end still pending; backtrack when that earliest-ending
operation cannot be placed; and remember every (set of operations placed,
state) pair already explored, so no pair is explored twice. The semantics
are Porcupine's etcd and key-value models:

* an absent key reads as ``null``; on an append key ``null`` and the empty
  value are the same, and an append to an absent key appends to the empty
  string (or list);
* a failed cas did not change the value, and tells that the value was not
  its ``expect`` at its moment;
* an ``info`` operation may take effect at any moment after its start or
  never: its end is taken as the end of the history, and whatever it would
  have returned is unknown (an info cas applies if its ``expect`` matched);
* reads that did not succeed tell nothing and are left out, as are writes
  and appends that failed.

The search is exponential in the worst case (deciding linearizability is
NP-complete): its cost grows with the number of operations that overlap in
time. A ``budget`` of search steps per key bounds it; a key whose search
runs out of budget is reported as unknown, never as clean. :func:`search`
skips orders that cannot matter (a read that fits is taken at once, info
operations wait until something needs them, appends no coming read begins
with are not tried); each skip is explained where it is made, and tests
compare the verdicts with trying every order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import option, var
from .foreign import INF, FOp, ForeignHistory, Opaque, append_state, canonical, describe
from .format import format_time
from .result import Anomaly, CheckResult

DEFAULT_BUDGET = 10_000_000
"""Search steps per key before the search gives up and the key is unknown."""

READ, WRITE, CAS_OK, CAS_FAIL, CAS_INFO, APPEND, APPEND_INFO = range(7)

HORIZON = 8
"""Reads still to come that an append's new value is compared with (the nearest)."""


@dataclass
class KeySearch:
    """What the search found on one key.

    ``verdict`` is ``linearizable``, ``nonlinearizable`` or ``unknown`` (the
    budget ran out). ``prefix`` is the longest linearizable prefix found
    (the operations in their linearization order), ``state`` the key's value
    after it, ``stuck`` the operations that could come next by real time,
    each with why it cannot.
    """

    key: str
    verdict: str
    operations: int
    steps: int
    prefix: list[FOp] = field(default_factory=list)
    state: Any = None
    setter: FOp | None = None
    stuck: list[tuple[FOp, str]] = field(default_factory=list)
    deadline: FOp | None = None


class _Model:
    """One key's operations as the search sees them: a code and arguments each."""

    def __init__(self, ops: list[FOp], kind: str | None) -> None:
        self.ops = ops
        self.kind = kind
        self.initial: Any = None if kind is None else append_state(None, kind)
        codes: list[int] = []
        arg1: list[Any] = []
        arg2: list[Any] = []
        for o in ops:
            value = o.raw.get("value")
            if o.op == "read":
                codes.append(READ)
                arg1.append(self.state_of(value, o))
                arg2.append(None)
            elif o.op == "write":
                codes.append(WRITE)
                arg1.append(self.state_of(value, o))
                arg2.append(None)
            elif o.op == "cas":
                codes.append(
                    CAS_OK if o.outcome == "ok" else CAS_FAIL if o.outcome == "fail" else CAS_INFO
                )
                arg1.append(self.state_of(o.raw.get("expect")))
                arg2.append(self.state_of(value))
            else:
                codes.append(APPEND if o.outcome == "ok" else APPEND_INFO)
                arg1.append(value if kind == "str" else canonical(value))
                arg2.append(None)
        self.codes = codes
        self.arg1 = arg1
        self.arg2 = arg2
        # For an append key: the reads (a bitset; the operations come sorted
        # by end, so its low bits are the reads that end first) and, for each,
        # the writes and cas that could reset the value before it.
        self.reads = 0
        self.resets_before: dict[int, int] = {}
        if kind is not None:
            resets = [i for i, c in enumerate(codes) if c in (WRITE, CAS_OK, CAS_INFO)]
            for i, c in enumerate(codes):
                if c == READ:
                    self.reads |= 1 << i
                    self.resets_before[i] = sum(
                        1 << w for w in resets if ops[w].start <= ops[i].end
                    )

    def unmatched_read(self, placed: int, value: Any) -> int | None:
        """A read still to come (with no reset possible before it) whose value
        does not begin with ``value``; None if there is none among the nearest."""
        seen = 0
        todo = self.reads & ~placed
        while todo:
            low = todo & -todo
            todo ^= low
            r = low.bit_length() - 1
            if self.resets_before[r] & ~placed:
                # A reset may come before this read, and so before every
                # read that ends later (its resets include this one's).
                break
            returned = self.arg1[r]
            if type(returned) is not type(value) or returned[: len(value)] != value:
                return r
            seen += 1
            if seen == HORIZON:
                break
        return None

    def state_of(self, value: Any, o: FOp | None = None) -> Any:
        if self.kind is None:
            if o is not None and o.op in ("read", "write"):
                return o.ident
            return None if value is None else canonical(value)
        return append_state(value, self.kind)

    def step(self, i: int, state: Any) -> tuple[bool, Any]:
        """Apply operation ``i`` to ``state``: (legal, the state after)."""
        code = self.codes[i]
        a1 = self.arg1[i]
        if code == READ:
            return state == a1, state
        if code == WRITE:
            return True, a1
        if code == CAS_OK:
            return state == a1, self.arg2[i]
        if code == CAS_FAIL:
            return state != a1, state
        if code == CAS_INFO:
            return True, (self.arg2[i] if state == a1 else state)
        if self.kind == "str" and type(state) is str:
            return True, state + a1
        if self.kind == "list" and type(state) is tuple:
            return True, (*state, a1)
        return code == APPEND_INFO, state

    def why_not(self, i: int, state: Any) -> str:
        """Why operation ``i`` cannot take effect on ``state``, in words."""
        code = self.codes[i]
        o = self.ops[i]
        now = show_state(state, self.kind)
        if code == READ:
            return f"it would have read {now}"
        if code == CAS_OK:
            return f"it expected {show_state(self.arg1[i], self.kind)} but the value was {now}"
        if code == CAS_FAIL:
            return (
                f"it failed, which says the value was not {show_state(self.arg1[i], self.kind)}, "
                "yet that was the value"
            )
        if code == APPEND:
            return f"nothing can be appended to {now}"
        return f"it fits, but no order of the operations after it does ({describe(o)})"


def show_state(state: Any, kind: str | None) -> str:
    """A key's value for an explanation (long values are cut in the middle)."""
    if kind is None:
        if state is None:
            text = "null (absent)"
        else:
            text = state[1:] if state.startswith("=") else f"hash {state}"
    elif isinstance(state, Opaque):
        text = state.text[1:]
    elif kind == "str":
        text = json.dumps(state) if state else '"" (empty)'
    else:
        text = "[" + ", ".join(x[1:] for x in state) + "]" if state else "[] (empty)"
    return text if len(text) <= 60 else text[:28] + "..." + text[-28:]


def search(ops: list[FOp], kind: str | None, budget: int) -> KeySearch:
    """Decide whether ``ops`` (one key's operations) are linearizable, within ``budget`` steps."""
    key = ops[0].key if ops else ""
    ops = sorted((o for o in ops if _takes_part(o)), key=lambda o: (o.until, o.start, o.seq))
    n = len(ops)
    if n == 0:
        return KeySearch(key, "linearizable", 0, 0)
    model = _Model(ops, kind)
    codes, arg1, arg2 = model.codes, model.arg1, model.arg2
    str_kind = kind == "str"

    # The entries: a call (node i) at the operation's start, a return (node
    # n + i) at its end; at equal times calls come first, so operations that
    # touch at one instant overlap (as in Porcupine). Operations whose
    # outcome is info have no end: they are kept out of the list, tried only
    # where nothing in the list fits (any of them may come next once it has
    # begun), and left for the end (where they change nothing anyone saw)
    # once the list is empty. And an info operation placed anywhere but at
    # the end must be followed at once by an operation that looks at the
    # value (a read, cas or append): if a blind write came next, moving the
    # info operation to the end would change nothing anyone saw. The search
    # keeps to such orders (one exists whenever any order does), which
    # spares it the placements of info operations that nobody observes.
    info = [o.outcome == "info" for o in ops]
    infos = sorted((i for i in range(n) if info[i]), key=lambda i: (ops[i].start, i))
    info_starts = [ops[i].start for i in infos]
    # Two info operations that do the same (same kind, same values) are
    # interchangeable once both have begun: the search places the one that
    # began first before the other, never the other way round.
    twin = [-1] * n
    last_of: dict[tuple[int, Any, Any], int] = {}
    for i in infos:
        signature = (codes[i], arg1[i], arg2[i])
        twin[i] = last_of.get(signature, -1)
        last_of[signature] = i
    entries = sorted(
        [(o.start, 0, i) for i, o in enumerate(ops) if not info[i]]
        + [(o.end, 1, i) for i, o in enumerate(ops) if not info[i]]
    )
    head = 2 * n
    nxt = [-1] * (2 * n + 1)
    prv = [-1] * (2 * n + 1)
    last = head
    for _, is_return, i in entries:
        node = n + i if is_return else i
        nxt[last] = node
        prv[node] = last
        last = node

    bit = [1 << i for i in range(n)]
    # On an append key the value only grows between writes and cas: an
    # append that leaves a value that is not the start of what a read still
    # to come returned, with nothing that could reset the value before that
    # read, leads nowhere. Without this the search would try every order of
    # concurrent appends (each order is another value, so memoisation does
    # not merge them) before finding that none matches the reads.
    horizon = model.reads
    unmatched = model.unmatched_read
    cache: set[tuple[int, Any, bool]] = set()
    looks = [code != WRITE for code in codes]
    # (operation, its place in infos or -1 (-2: forced), the state before
    # it, whether an info operation came just before it)
    stack: list[tuple[int, int, Any, bool]] = []
    after_info = False
    state: Any = model.initial
    linearized = 0
    best: list[int] = []
    best_state: Any = state
    steps = 0
    # A read (or a failed cas) changes nothing: if one that real time allows
    # next fits the value now, some linearization from here takes it next
    # whenever any does (moving it forward breaks no real-time order and
    # changes what nobody sees). So on reaching a state the search first
    # looks for such an operation and, if one fits, takes it as the only
    # choice here ("forced"); backtracking over it fails the state at once.
    quiet = [code in (READ, CAS_FAIL) for code in codes]
    forcing = True
    look = nxt[head]
    entry = nxt[head]
    j = -1  # >= 0: trying infos[j], the list's calls having all failed
    deadline = 0.0
    n_infos = len(infos)
    while nxt[head] != -1:
        steps += 1
        if steps > budget:
            return _report(model, key, "unknown", steps - 1, best, best_state)
        if forcing:
            if look >= n:
                forcing = False
                entry = nxt[head]
                continue
            if quiet[look] and (
                state == arg1[look] if codes[look] == READ else state != arg1[look]
            ):
                placed = linearized | bit[look]
                memo = (placed, state, False)
                if memo in cache:
                    # Explored already, and it failed: so does this state.
                    forcing = False
                    j = n_infos
                    continue
                cache.add(memo)
                stack.append((look, -2, state, after_info))
                linearized = placed
                after_info = False
                if len(stack) > len(best):
                    best = [e for e, _, _, _ in stack]
                    best_state = state
                p, q = prv[look], nxt[look]
                nxt[p] = q
                prv[q] = p
                r = look + n
                p, q = prv[r], nxt[r]
                nxt[p] = q
                if q != -1:
                    prv[q] = p
                look = nxt[head]
                continue
            look = nxt[look]
            continue
        if j < 0 and entry >= n:
            # The earliest pending end: no call before it fits. Try the
            # info operations that began by then.
            j = 0
            deadline = ops[entry - n].end
            continue
        if j < 0:
            cand = entry
            if quiet[cand] or (after_info and not looks[cand]):
                # A quiet operation that fitted would have been forced.
                entry = nxt[entry]
                continue
        elif j < n_infos and info_starts[j] <= deadline:
            cand = infos[j]
            if (
                linearized & bit[cand]
                or (after_info and not looks[cand])
                or (twin[cand] >= 0 and not linearized & bit[twin[cand]])
            ):
                j += 1
                continue
        else:
            # Nothing fits here: backtrack.
            if not stack:
                return _report(model, key, "nonlinearizable", steps, best, best_state)
            cand, j, state, after_info = stack.pop()
            linearized ^= bit[cand]
            if j >= 0:
                # Back in the state where infos[j] was tried: the next info
                # operation that began by that state's earliest pending end
                # (a deeper state had another).
                j += 1
                e = nxt[head]
                while e < n:
                    e = nxt[e]
                deadline = ops[e - n].end
                continue
            r = cand + n
            p, q = prv[r], nxt[r]
            nxt[p] = r
            if q != -1:
                prv[q] = r
            p, q = prv[cand], nxt[cand]
            nxt[p] = cand
            prv[q] = cand
            if j == -2:
                # A forced choice failed: the state it was forced in fails.
                j = n_infos
                continue
            entry = nxt[cand]
            continue
        # Try operation ``cand`` next (its step inlined: this loop is the
        # whole cost of the search).
        code = codes[cand]
        a1 = arg1[cand]
        if code == READ:
            legal, new = state == a1, state
        elif code == WRITE:
            legal, new = True, a1
        elif code == CAS_OK:
            legal, new = state == a1, arg2[cand]
        elif code == CAS_FAIL:
            legal, new = state != a1, state
        elif code == CAS_INFO:
            legal, new = True, (arg2[cand] if state == a1 else state)
        elif str_kind and type(state) is str:
            legal, new = True, state + a1
        elif not str_kind and type(state) is tuple:
            legal, new = True, (*state, a1)
        else:
            legal, new = code == APPEND_INFO, state
        if legal and horizon and code >= APPEND and new is not state:
            legal = unmatched(linearized, new) is None
        if legal and j >= 0:
            # An info operation that changes nothing here may as well come
            # at the end. Two info operations in a row that commute (Y fits
            # without I, and Y then I ends where I then Y does) are taken in
            # one order only: the one that began first, first.
            if new == state:
                legal = False
            elif after_info:
                first, _, before, _ = stack[-1]
                if cand < first:
                    fits, mid = model.step(cand, before)
                    if fits and model.step(first, mid)[1] == new:
                        legal = False
        if legal:
            placed = linearized | bit[cand]
            memo = (placed, new, j >= 0)
            if memo not in cache:
                cache.add(memo)
                stack.append((cand, j, state, after_info))
                state = new
                linearized = placed
                after_info = j >= 0
                if not after_info and len(stack) > len(best):
                    # The longest linearizable prefix: the deepest state
                    # reached (not one right after an info operation, which
                    # only the operation after it can justify).
                    best = [e for e, _, _, _ in stack]
                    best_state = state
                if j < 0:
                    # Lift the call and its return out of the list.
                    p, q = prv[cand], nxt[cand]
                    nxt[p] = q
                    prv[q] = p
                    r = cand + n
                    p, q = prv[r], nxt[r]
                    nxt[p] = q
                    if q != -1:
                        prv[q] = p
                entry = nxt[head]
                j = -1
                forcing = True
                look = nxt[head]
                continue
        if j < 0:
            entry = nxt[entry]
        else:
            j += 1
    return KeySearch(key, "linearizable", n, steps)


def _takes_part(o: FOp) -> bool:
    """Reads that did not succeed tell nothing; writes and appends that failed did nothing."""
    if o.op == "read":
        return o.outcome == "ok"
    if o.op in ("write", "append"):
        return o.outcome != "fail"
    return True


def _report(
    model: _Model, key: str, verdict: str, steps: int, best: list[int], state: Any
) -> KeySearch:
    ops = model.ops
    placed = set(best)
    rest = [i for i in range(len(ops)) if i not in placed]
    out = KeySearch(key, verdict, len(ops), steps, [ops[i] for i in best], state)
    # Who left the value the prefix ends with.
    replay: Any = model.initial
    for i in best:
        _, after = model.step(i, replay)
        if model.codes[i] not in (READ, CAS_FAIL) and (
            after != replay or model.codes[i] == WRITE
        ):
            out.setter = ops[i]
        replay = after
    # An info operation can always come last (or never): it is not stuck.
    rest = [i for i in rest if ops[i].outcome != "info"]
    if rest:
        deadline = min(rest, key=lambda i: (ops[i].until, ops[i].start, i))
        out.deadline = ops[deadline]
        limit = ops[deadline].until
        for i in sorted(rest, key=lambda i: (ops[i].start, i)):
            if ops[i].start > limit:
                break
            legal, after = model.step(i, state)
            if not legal:
                why = model.why_not(i, state)
            else:
                r = model.unmatched_read(sum(1 << b for b in best), after)
                if r is not None and model.codes[i] >= APPEND:
                    why = (
                        f"it would leave {show_state(after, model.kind)}, but "
                        f"{_label(ops[r])} returned {show_state(model.arg1[r], model.kind)}, "
                        "which does not begin so, and nothing could reset the value in between"
                    )
                else:
                    why = "it fits here, but no order of the operations after it does"
            out.stuck.append((ops[i], why))
    return out


def check_linearizable(
    history: ForeignHistory, result: CheckResult, budget: int = DEFAULT_BUDGET
) -> list[KeySearch]:
    """Search every key of ``history``; add ``nonlinearizable`` findings to ``result``.

    Sets ``result.linearizable`` (True, False, or None when some key's
    search ran out of ``budget``) and returns each key's :class:`KeySearch`.
    """
    searches = []
    for key, ops in sorted(history.by_key().items()):
        found = search(ops, history.append_kind.get(key), budget)
        searches.append(found)
        if found.verdict == "nonlinearizable":
            result.counts["nonlinearizable"] = result.counts.get("nonlinearizable", 0) + 1
            result.anomalies.append(_anomaly(found, history.append_kind.get(key)))
        elif found.verdict == "unknown":
            result.unknown_counts["nonlinearizable"] = (
                result.unknown_counts.get("nonlinearizable", 0) + 1
            )
            result.unknown.append(_unknown(found, budget))
    bad = sum(1 for s in searches if s.verdict == "nonlinearizable")
    open_ = sum(1 for s in searches if s.verdict == "unknown")
    result.linearizable = False if bad else None if open_ else True
    steps = sum(s.steps for s in searches)
    result.notes.append(
        f"linearizability: {len(searches)} key(s) searched in {steps:,} steps (budget "
        f"{budget:,} per key): {len(searches) - bad - open_} linearizable, {bad} not"
        + (f", {open_} undecided" if open_ else "")
        + "."
    )
    return searches


def _label(o: FOp) -> str:
    end = "end of history" if o.until == INF else format_time(o.end)
    return f"{describe(o)} (line {o.line}, {format_time(o.start)}-{end})"


def _event(o: FOp) -> dict[str, Any]:
    out = dict(o.raw)
    out["line"] = o.line
    return out


def _anomaly(found: KeySearch, kind: str | None) -> Anomaly:
    what = "one register" if kind is None else "one append value"
    n = len(found.prefix)
    value = show_state(found.state, kind)
    if n:
        head = (
            f"Let P = the longest linearizable prefix of the {found.operations} operations on "
            f"{found.key}: {n} operation{'s' if n != 1 else ''} in an order that agrees with "
            f"real time and with {what}, leaving the value {value}"
            + (f" (set by {_label(found.setter)})" if found.setter else "")
            + ". No operation can come next:"
        )
    else:
        head = (
            f"Of the {found.operations} operations on {found.key}, none can come first (the "
            f"key starts as {value}):"
        )
    shown = found.stuck[:5]
    reasons = "; ".join(f"{_label(o)}: {why}" for o, why in shown)
    more = len(found.stuck) - len(shown)
    if more:
        reasons += f"; and {more} more"
    tail = ""
    if found.deadline is not None:
        others = "every other operation not in P" if n else "every other operation"
        if len(found.stuck) == 1 and found.stuck[0][0] is found.deadline:
            tail = f" It had to come next: {others} began after it ended."
        else:
            tail = (
                f" {others[0].upper()}{others[1:]} began after {_label(found.deadline)} "
                "ended, so one of these had to come next."
            )
    explanation = (
        f"{head} {reasons}.{tail} No single order of the operations on {found.key} explains "
        "what the agents saw: the history is not linearizable."
    )
    involved = ([found.setter] if found.setter else []) + [o for o, _ in found.stuck[:20]]
    window = None
    if found.stuck:
        lo = min(o.start for o, _ in found.stuck)
        hi = found.deadline.until if found.deadline is not None else lo
        if hi != INF:
            window = (_iso(lo), _iso(hi))
    return Anomaly(
        name="nonlinearizable",
        key=found.key,
        explanation=explanation,
        events=tuple(_event(o) for o in involved),
        agents=tuple(dict.fromkeys(o.agent for o in involved)),
        window=window,
        details={
            "operations": found.operations,
            "prefix_length": n,
            "prefix_lines": [o.line for o in found.prefix[:1000]],
            "value": value,
            "cannot_follow": [{"line": o.line, "why": why} for o, why in found.stuck[:100]],
            "steps": found.steps,
        },
    )


def _unknown(found: KeySearch, budget: int) -> Anomaly:
    involved = [o for o, _ in found.stuck[:20]] or found.prefix[-1:]
    return Anomaly(
        name="nonlinearizable",
        key=found.key,
        certain=False,
        explanation=(
            f"Unknown: the search for an order of the {found.operations} operations on "
            f"{found.key} that agrees with real time ran out of its budget ({budget:,} steps) "
            f"before deciding; the longest linearizable prefix it found holds "
            f"{len(found.prefix)} operations. Raise the budget "
            f"({option('budget', var('steps'))}), or check a shorter slice of the history."
        ),
        events=tuple(_event(o) for o in involved),
        agents=tuple(dict.fromkeys(o.agent for o in involved)),
        details={
            "operations": found.operations,
            "prefix_length": len(found.prefix),
            "steps": found.steps,
            "budget": budget,
        },
    )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
