"""Hypothesis: the checker flags a lost update exactly when the final state misses a write.

Two to four agents each run read-think-write rounds with blind writes
(``force=True``) on one key; Hypothesis picks the interleaving. Every write
appends the agent's tag to the list it read, so the final value shows which
writes survived. The checker must report a lost update if and only if a tag
is missing, and count exactly the missing writes; the same history with its
versions stripped (a foreign history, times one slot per operation) must give
the same answer through version-order inference.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import accord


def run(schedule: list[int], agents: int, rounds: int, record_reads: bool) -> tuple[
    list[dict[str, Any]], list[str], list[str]
]:
    """Run the interleaving; returns (history, every tag written, final value)."""
    with accord.open("memory://", record_reads=record_reads) as store:
        store.session("setup").write("doc", [])
        sessions = [store.session(f"agent-{i}") for i in range(agents)]
        held: dict[int, list[str]] = {}
        done = [0] * agents
        written: list[str] = []
        for i in schedule:
            s = sessions[i]
            if i not in held:
                held[i] = s.read("doc").value
            else:
                tag = f"{i}.{done[i]}"
                s.write("doc", [*held.pop(i), tag], force=True)
                written.append(tag)
                done[i] += 1
        final = store.session("setup").read("doc").value
        history = [e.to_dict() for e in store.history()]
    return history, written, final


@st.composite
def interleavings(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    agents = draw(st.integers(2, 4))
    rounds = draw(st.integers(1, 3))
    remaining = {i: 2 * rounds for i in range(agents)}
    schedule = []
    while remaining:
        i = draw(st.sampled_from(sorted(remaining)))
        schedule.append(i)
        remaining[i] -= 1
        if remaining[i] == 0:
            del remaining[i]
    return agents, rounds, schedule


def foreign(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same history without versions: agent, op, key, hash, start, end."""
    out = []
    for n, e in enumerate(history):
        if e["op"] not in ("read", "write"):
            continue
        start = datetime.fromtimestamp(1_800_000_000 + n, UTC)
        end = datetime.fromtimestamp(1_800_000_000 + n + 0.5, UTC)
        out.append(
            {
                "agent": e["agent"],
                "op": e["op"],
                "key": e["key"],
                "hash": e["hash"],
                "start": start.isoformat(),
                "end": end.isoformat(),
            }
        )
    return out


@settings(max_examples=150, deadline=None)
@given(interleavings(), st.booleans())
def test_lost_update_flagged_exactly_when_final_state_misses_a_write(
    case: tuple[int, int, list[int]], record_reads: bool
) -> None:
    agents, rounds, schedule = case
    history, written, final = run(schedule, agents, rounds, record_reads)
    missing = [tag for tag in written if tag not in final]
    result = accord.check(history)
    assert (result.counts["lost-update"] > 0) == bool(missing)
    assert result.lost_writes == len(missing)
    assert result.verdict == ("anomalies" if missing else "clean")
    for anomaly in result.by_name("lost-update"):
        assert "without having seen it" in anomaly.explanation
    if record_reads:
        inferred = accord.check(foreign(history))
        assert inferred.format == "foreign"
        assert (inferred.counts["lost-update"] > 0) == bool(missing)
        assert inferred.lost_writes == len(missing)
        assert not inferred.unknown


FIELDS = [
    "rev", "time", "agent", "op", "key", "version", "prev", "based_on", "check", "outcome",
    "clock", "lease", "idem", "request", "ttl", "expires", "mode", "value", "hash", "start",
    "end",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 10**20) | st.floats(allow_nan=False)
    | st.text(max_size=8) | st.sampled_from(
        ["read", "write", "lease_acquire", "lease_release", "2026-11-28T10:00:00Z", "a", "k"]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=3),
    max_leaves=5,
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=10), max_size=8),
    st.booleans(),
)
def test_any_input_gives_a_result_or_a_clear_error(
    events: list[dict[str, Any]], lenient: bool
) -> None:
    try:
        result = accord.check(events, lenient=lenient)
    except accord.HistoryFormatError as exc:
        assert str(exc)
    else:
        assert result.verdict in ("clean", "anomalies", "unknown")
        result.to_dict()


@st.composite
def mangled_histories(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Well-formed accord or foreign events with junk in some fields."""
    foreign = draw(st.booleans())
    out = []
    for n in range(draw(st.integers(1, 8))):
        if foreign:
            ev: dict[str, Any] = {
                "agent": draw(st.sampled_from(["a", "b"])),
                "op": draw(st.sampled_from(["read", "write"])),
                "key": "k",
                "value": draw(st.sampled_from(["x", "y", None])),
                "start": n,
                "end": n + draw(st.sampled_from([0.5, 2])),
            }
        else:
            ev = {
                "rev": n + 1,
                "time": "2026-11-28T10:00:00.000000Z",
                "agent": draw(st.sampled_from(["a", "b"])),
                "op": draw(st.sampled_from(["read", "write", "delete", "lease_acquire",
                                            "lease_release", "accept"])),
                "key": "k",
                "version": n + 1,
                "prev": n,
                "based_on": draw(st.sampled_from([None, 0, n])),
                "lease": draw(st.sampled_from([None, 1, 2])),
                "clock": {"a": n},
            }
        for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
            if name in ("rev", "agent", "op", "key"):
                continue
            ev[name] = draw(json_values)
        out.append(ev)
    return out


@settings(max_examples=150, deadline=None)
@given(mangled_histories(), st.booleans())
def test_mangled_fields_give_a_result_or_a_clear_error(
    events: list[dict[str, Any]], lenient: bool
) -> None:
    try:
        result = accord.check(events, lenient=lenient)
    except accord.HistoryFormatError as exc:
        assert str(exc)
    else:
        result.to_dict()
        result.summary()
