"""The findings of the one-pass checker, in words.

Each function builds one :class:`~accord.history.result.Anomaly` (or the
notes of a check) from what :class:`~accord.history.native.NativeChecker`
found and remembers: which writes, which agents, which window of time, and
an explanation a person can follow without the history open. No rule is
decided here; the checker decides, these say it.
"""

from __future__ import annotations

from typing import Any

from .format import clock_time
from .native_state import (
    AGENT,
    BASED,
    CHECK,
    LINE,
    OP,
    PREV,
    READ,
    REV,
    TIME,
    KeyState,
    LeaseState,
    V,
    W,
)
from .result import Anomaly

__all__ = [
    "clock_text",
    "concurrent",
    "duplicate_apply",
    "fenced_write",
    "label",
    "lost_update",
    "notes",
    "stale_read",
    "summary",
    "unknown_concurrent",
]


def summary(w: W, key: str) -> dict[str, Any]:
    """A version record as the event a finding lists."""
    return {
        "rev": w[REV],
        "time": w[TIME],
        "agent": w[AGENT],
        "op": w[OP],
        "key": key,
        "version": w[V],
        "prev": w[PREV],
        "based_on": w[BASED],
        "check": w[CHECK],
        "line": w[LINE],
    }


def label(w: W) -> str:
    """A version in words: "alice's write of v3"."""
    return f"{w[AGENT]}'s {w[OP]} of v{w[V]}"


def clock_text(clock: dict[str, int]) -> str:
    """A vector clock in words: {a: 1, b: 2}."""
    return "{" + ", ".join(f"{a}: {n}" for a, n in sorted(clock.items())) + "}"


def lost_update(key: str, k: KeyState, w: W, based: int, prev: int) -> Anomaly:
    """``w`` replaced v``prev`` while based on v``based``: what it erased, in words."""
    erased_versions = range(based + 1, prev + 1)
    erased = [k.recent[v] for v in erased_versions if v in k.recent]
    basis = k.recent.get(based)
    w_label = f"{w[AGENT]}'s {w[OP]} of {key} v{w[V]}"
    lines = []
    first = erased[0] if erased else None
    if first is not None and first[V] == based + 1:
        lines.append(
            f"Let W1 = {first[AGENT]}'s {first[OP]} of {key} v{first[V]} at "
            f"{clock_time(first[TIME])} (rev {first[REV]}, based on v{first[BASED]}) and "
            f"W2 = {w_label} at {clock_time(w[TIME])} (rev {w[REV]}, based on v{based})."
        )
        hold_w = w[READ] or (basis[TIME] if basis else None)
        hold_1 = first[READ] or (basis[TIME] if basis else None)
        if first[BASED] == based:
            start = max(t for t in (hold_w, hold_1, "") if t is not None)
            how_1 = "read it at " + clock_time(first[READ]) if first[READ] else "had it"
            how_w = "read it at " + clock_time(w[READ]) if w[READ] else "had it"
            lines.append(
                f"Both agents held v{based}: {first[AGENT]} {how_1} and {w[AGENT]} {how_w}"
                f"; from {clock_time(start)} to {clock_time(first[TIME])} neither had seen "
                "the other's change."
            )
        else:
            start = hold_w or ""
        window: tuple[str, str] | None = (start, first[TIME]) if start else None
        others = erased[1:]
        tail = ""
        if others or prev > first[V]:
            n_more = prev - first[V]
            tail = f" and {n_more} later version{'s' if n_more != 1 else ''}" + (
                " (" + ", ".join(f"v{x[V]} by {x[AGENT]}" for x in others[:8]) + ")"
                if others
                else ""
            )
        lines.append(
            f"W1 committed v{first[V]}; W2 then replaced v{prev} while based on "
            f"v{based}, so W2 erased W1's change{tail} without having seen it."
        )
    else:
        window = None
        n = prev - based
        lines.append(
            f"{w_label} (rev {w[REV]}) replaced v{prev} while based on v{based}, so it "
            f"erased {n} version{'s' if n != 1 else ''} (v{based + 1}..v{prev}) "
            "without having seen them; they are not in this part of the history."
        )
    agents = tuple(dict.fromkeys([x[AGENT] for x in erased] + [w[AGENT]]))
    events = (*tuple(summary(x, key) for x in erased[:20]), summary(w, key))
    return Anomaly(
        name="lost-update",
        key=key,
        explanation=" ".join(lines),
        events=events,
        agents=agents,
        window=window,
        details={
            "write": {"agent": w[AGENT], "version": w[V], "rev": w[REV]},
            "based_on": based,
            "replaced": prev,
            "erased": [{"version": x[V], "agent": x[AGENT], "rev": x[REV]} for x in erased[:100]],
            "erased_count": prev - based,
        },
    )


def concurrent(key: str, a: W, b: W, ca: dict[str, int], cb: dict[str, int]) -> Anomaly:
    """``b`` replaced ``a`` and neither vector clock includes the other."""
    return Anomaly(
        name="concurrent-writes",
        key=key,
        explanation=(
            f"Let W1 = {a[AGENT]}'s {a[OP]} of {key} v{a[V]} (rev {a[REV]}, clock "
            f"{clock_text(ca)}) and W2 = {b[AGENT]}'s {b[OP]} of {key} v{b[V]} "
            f"(rev {b[REV]}, clock {clock_text(cb)}). Neither clock includes the other: "
            f"{b[AGENT]} replaced W1 without having seen it. Nothing was lost this time "
            f"(W2 was based on v{b[BASED] if b[BASED] is not None else '?'}), but the "
            "writes raced; guard them with an expected version, a lease or a queue."
        ),
        events=(summary(a, key), summary(b, key)),
        agents=(a[AGENT], b[AGENT]),
        window=(a[TIME], b[TIME]),
    )


def unknown_concurrent(
    key: str, last: W, w: W, last_clock: dict[str, Any], clock: dict[str, Any]
) -> Anomaly:
    """``w`` replaced ``last`` without having read it, and their vector
    clocks cannot be compared: undecided."""
    return Anomaly(
        name="concurrent-writes",
        key=key,
        certain=False,
        explanation=(
            f"Unknown: {w[AGENT]}'s {w[OP]} of {key} v{w[V]} (rev {w[REV]}) replaced "
            f"{label(last)} (rev {last[REV]}) without having read it, and their "
            f"vector clocks cannot be compared (an entry that is not an integer: "
            f"{clock_text(last_clock)} and {clock_text(clock)}). Whether the "
            "writer had seen the write it replaced is undecided: fix the clocks."
        ),
        events=(summary(last, key), summary(w, key)),
        agents=(last[AGENT], w[AGENT]),
    )


def stale_read(
    key: str, newest: W, read_ev: dict[str, Any], before: int | None, version: int
) -> Anomaly:
    """The read ``read_ev`` returned ``version``, older than ``newest``, which
    was acknowledged before the read began."""
    agent, rev, time = read_ev["agent"], read_ev["rev"], read_ev["time"]
    got = "absent" if version == 0 else f"v{version}"
    return Anomaly(
        name="stale-read",
        key=key,
        explanation=(
            f"Let W = {label(newest)} of {key} (rev {newest[REV]}, committed at "
            f"{clock_time(newest[TIME])}) and R = {agent}'s read of {key} (rev {rev}). "
            f"W was acknowledged before {agent}'s previous operation (rev {before}), "
            f"so before R began; yet R returned {got}, older than W's v"
            f"{newest[V]}. R read stale state."
        ),
        events=(summary(newest, key), read_ev),
        agents=tuple(dict.fromkeys((newest[AGENT], agent))),
        window=(newest[TIME], time),
    )


def fenced_write(
    line: int,
    ev: dict[str, Any],
    key: str,
    token: Any,
    agent: str,
    time: str,
    rev: int,
    lease: LeaseState,
    why: str | None,
) -> Anomaly:
    """A write accepted under a lease that had ended (``why``), or, with
    ``why`` None, under one whose deadline could not be read (undecided)."""
    what = f"{agent}'s write of {key} v{ev.get('version')} (rev {rev}, at {clock_time(time)})"
    if why is None:
        return Anomaly(
            name="fenced-write-accepted",
            key=key,
            certain=False,
            explanation=(
                f"Unknown: {what} was accepted under lease token {token}, whose "
                f"deadline could not be read (line {lease.unreadable} was skipped). "
                "Whether the lease was still held is undecided: fix that line and "
                "check again."
            ),
            events=(
                {
                    "rev": rev,
                    "time": time,
                    "agent": agent,
                    "op": ev.get("op"),
                    "key": key,
                    "version": ev.get("version"),
                    "lease": token,
                    "line": line,
                },
            ),
            agents=tuple(dict.fromkeys((lease.agent, agent))),
            details={"token": token, "unreadable_line": lease.unreadable},
        )
    w_ev = {k_: ev.get(k_) for k_ in ("rev", "time", "agent", "op", "key", "version", "lease")}
    w_ev["line"] = line
    return Anomaly(
        name="fenced-write-accepted",
        key=key,
        explanation=(
            f"{what} was accepted under lease token {token}, but {why}. "
            "The store should have fenced it off: the writer no longer held the key."
        ),
        events=(w_ev,),
        agents=tuple(dict.fromkeys((lease.agent, agent))),
        window=(lease.end_time or "", time) if lease.end_time else None,
        details={"token": token, "reason": why},
    )


def duplicate_apply(
    what: str,
    ident: str,
    first: tuple[int, str, str | None, int],
    line: int,
    ev: dict[str, Any],
    rev: int,
    agent: str,
    key: str,
) -> Anomaly:
    """The idempotency key or request id ``ident`` was applied twice."""
    f_rev, f_agent, f_key, f_line = first
    return Anomaly(
        name="duplicate-apply",
        key=key,
        explanation=(
            f"The {what} {ident!r} was applied twice: first by {f_agent} to {f_key} "
            f"(rev {f_rev}), again by {agent} to {key} v{ev.get('version')} "
            f"(rev {rev}). A replay must return the first result and apply nothing."
        ),
        events=(
            {"rev": f_rev, "agent": f_agent, "key": f_key, "line": f_line, what: ident},
            {"rev": rev, "agent": agent, "key": key, "line": line, what: ident},
        ),
        agents=tuple(dict.fromkeys((f_agent, agent))),
        details={what.replace(" ", "_"): ident},
    )


def notes(
    gaps: int,
    approximate: bool,
    counts: dict[str, int],
    window_versions: int,
    window_revisions: int,
    max_reported: int,
) -> list[str]:
    """The notes of a check: an approximate count, an incomplete history, findings cut."""
    notes = []
    if approximate:
        notes.append(
            "Some writes were based on versions older than the checker's window "
            f"({window_versions} versions or {window_revisions} revisions per "
            "key); lost_writes is approximate. Every lost update is still reported."
        )
    if gaps:
        notes.append(
            f"{gaps} writes did not continue from the previous version seen: the "
            "history is incomplete (exported with --since, or filtered by key)."
        )
    for name, n in counts.items():
        if n > max_reported:
            notes.append(f"{n} {name} found; the first {max_reported} are listed.")
    return notes
