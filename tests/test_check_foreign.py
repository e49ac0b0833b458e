"""The foreign format's new fields and the inference rules that read them.

Each case is a pair of histories that differ in one line: one the race
detector must call clean (or unknown), the other the anomaly it must find.
The fields: ``"blind": true``, ``outcome`` ok/fail/info, ``cas`` with
``expect`` and ``value``, ``append``; the rules: a blind write is built on
nothing, an info write may be a read's source from its start to the end of
the history (and may never have applied), only a write that began before a
read ended can be its source, cas and append are atomic.
"""

from __future__ import annotations

from typing import Any

import pytest

import accord
from accord.history import ANOMALY_NAMES


def f(agent: str, op: str, value: Any, start: float, end: float, key: str = "doc",
      **fields: Any) -> dict[str, Any]:
    """A foreign operation; times are seconds."""
    return {"agent": agent, "op": op, "key": key, "value": value, "start": start, "end": end,
            **fields}


def counts(result: accord.CheckResult) -> dict[str, int]:
    return {name: n for name, n in result.counts.items() if n}


def unknown(result: accord.CheckResult) -> dict[str, int]:
    return {name: n for name, n in result.unknown_counts.items() if n}


# (name, history, the line to change, its replacement, what each must give)
PAIRS: list[tuple[str, list[dict[str, Any]], int, dict[str, Any], dict[str, int],
                  dict[str, int]]] = [
    (
        # Rule 2 made every write built on its agent's last read; a write that
        # says it is blind replaced whatever was there on purpose.
        "a blind write that erases another write is not a lost update",
        [
            f("a", "write", "v1", 0, 1),
            f("a", "read", "v1", 2, 3),
            f("b", "write", "v2", 4, 5, blind=True),
            f("a", "write", "v3", 6, 7, blind=True),
        ],
        3,
        f("a", "write", "v3", 6, 7),
        {},
        {"lost-update": 1},
    ),
    (
        "a blind write is not a race either (it means to replace whatever is there)",
        [f("a", "write", "v1", 0, 1, blind=True), f("b", "write", "v2", 2, 3, blind=True)],
        1,
        f("b", "write", "v2", 2, 3),
        {},
        {"concurrent-writes": 1},
    ),
    (
        # Fix 2: an info write may have taken effect after it began, even
        # after its end; the read of its value is not stale.
        "an info write is a possible source until the end of the history",
        [
            f("a", "write", 1, 0, 1, blind=True),
            f("b", "write", 2, 2, 3, blind=True, outcome="info"),
            f("a", "write", 3, 4, 5, blind=True),
            f("c", "read", 2, 6, 7),
        ],
        1,
        f("b", "write", 2, 2, 3, blind=True, outcome="fail"),
        {},
        {"stale-read": 1},
    ),
    (
        # Fix 3: a write that began after the read had returned cannot be
        # what it read.
        "only a write that began before the read ended can be its source",
        [
            f("a", "write", 1, 0, 1, blind=True),
            f("c", "read", 2, 3, 4),
            f("b", "write", 2, 3.5, 6, blind=True),
        ],
        2,
        f("b", "write", 2, 5, 6, blind=True),
        {},
        {"stale-read": 1},
    ),
    (
        "a write that touches the read's end at one instant may be its source",
        [
            f("a", "write", 1, 0, 1, blind=True),
            f("c", "read", 2, 3, 4),
            f("b", "write", 2, 4, 6, blind=True),
        ],
        2,
        f("b", "write", 2, 4.001, 6, blind=True),
        {},
        {"stale-read": 1},
    ),
    (
        # A cas is atomic: it cannot be built on a stale read (whether the
        # store honoured that is --linearizable's question).
        "a cas is atomic: never a lost update",
        [
            f("a", "write", 1, 0, 1),
            f("a", "read", 1, 2, 3),
            f("b", "write", 2, 4, 5, blind=True),
            {**f("a", "cas", 3, 6, 7), "expect": 1},
        ],
        3,
        f("a", "write", 3, 6, 7),
        {},
        {"lost-update": 1},
    ),
    (
        "an append is atomic: never a lost update",
        [
            f("a", "append", "x,", 0, 1),
            f("a", "read", "x,", 2, 3),
            f("b", "append", "y,", 4, 5),
            f("a", "append", "z,", 6, 7),
        ],
        3,
        f("a", "write", "x,z,", 6, 7),
        {},
        {"lost-update": 1},
    ),
    (
        "a read of an append key names its last append as its source",
        [
            f("a", "append", "x,", 0, 1),
            f("b", "append", "y,", 2, 3),
            f("c", "read", "x,y,", 4, 5),
        ],
        2,
        f("c", "read", "x,", 4, 5),
        {},
        {"stale-read": 1},
    ),
    (
        "an append key starts empty",
        [f("c", "read", None, 0, 1), f("a", "append", "x,", 2, 3), f("c", "read", "x,", 4, 5)],
        1,
        f("a", "append", "x,", -2, -1),
        {},
        {"stale-read": 1},
    ),
    (
        "a failed write did nothing: nothing to lose",
        [
            f("a", "write", "v1", 0, 1),
            f("a", "read", "v1", 2, 3),
            f("b", "write", "v2", 4, 5, blind=True, outcome="fail"),
            f("a", "write", "v3", 6, 7),
        ],
        2,
        f("b", "write", "v2", 4, 5, blind=True),
        {},
        {"lost-update": 1},
    ),
    (
        "a read whose outcome is not ok tells nothing",
        [f("a", "write", 2, 0, 1, blind=True), f("c", "read", 1, 2, 3, outcome="fail")],
        1,
        f("c", "read", 1, 2, 3),
        {},
        {"stale-read": 1},
    ),
    (
        "an absent key reads as null",
        [f("c", "read", None, 2, 3), f("a", "write", 1, 4, 5, blind=True)],
        1,
        f("a", "write", 1, 0, 1, blind=True),
        {},
        {"stale-read": 1},
    ),
]


@pytest.mark.parametrize(
    ("clean", "line", "replacement", "clean_counts", "found"),
    [case[1:] for case in PAIRS],
    ids=[case[0] for case in PAIRS],
)
def test_pairs_that_differ_in_one_line(
    clean: list[dict[str, Any]],
    line: int,
    replacement: dict[str, Any],
    clean_counts: dict[str, int],
    found: dict[str, int],
) -> None:
    first = accord.check(clean)
    assert counts(first) == clean_counts, [a.explanation for a in first.anomalies]
    assert first.verdict == "clean" and first.ok, first.to_dict()
    changed = list(clean)
    changed[line] = replacement
    second = accord.check(changed)
    got = {**counts(second), **unknown(second)}
    assert got == found, [a.explanation for a in second.anomalies + second.unknown]
    assert not second.ok
    assert second.verdict == ("anomalies" if counts(second) else "unknown")
    for anomaly in second.anomalies + second.unknown:
        assert anomaly.name in ANOMALY_NAMES and anomaly.explanation and anomaly.events


def test_the_issue_example_a_read_of_a_value_written_after_it() -> None:
    """A read returns 2 after write 1 was acknowledged; the only write of 2
    began after the read had returned. It was taken as the read's source."""
    history = [
        f("a", "write", 2, 0, 1, blind=True),
        f("b", "write", 1, 2, 3, blind=True),
        f("c", "read", 2, 4, 5),
        f("a", "write", 2, 6, 7, blind=True),
    ]
    result = accord.check(history)
    assert counts(result) == {"stale-read": 1}
    (stale,) = result.anomalies
    assert "b's blind write of 1 (line 2" in stale.explanation
    assert "a's blind write of 2 (line 1" in stale.explanation


def test_an_info_write_nobody_saw_is_not_certainly_erased() -> None:
    history = [
        f("a", "write", "v1", 0, 1),
        f("a", "read", "v1", 2, 3),
        f("b", "write", "v2", 4, 5, blind=True, outcome="info"),
        f("a", "write", "v3", 6, 7),
    ]
    result = accord.check(history)
    assert counts(result) == {} and unknown(result) == {"lost-update": 1}
    assert result.verdict == "unknown"
    (u,) = result.unknown
    assert "may never have taken effect" in u.explanation
    history[2] = f("b", "write", "v2", 4, 5, blind=True)
    assert counts(accord.check(history)) == {"lost-update": 1}


def test_null_and_empty_are_the_same_on_an_append_key() -> None:
    for empty in (None, ""):
        history = [f("c", "read", empty, 0, 1), f("a", "append", "x,", 2, 3),
                   f("c", "read", "x,", 4, 5)]
        assert accord.check(history).ok
        assert accord.check(history, linearizable=True).linearizable is True
    lists = [f("c", "read", [], 0, 1), f("a", "append", 7, 2, 3), f("c", "read", [7], 4, 5)]
    assert accord.check(lists, linearizable=True).linearizable is True


def test_info_writes_stay_out_of_the_lost_write_count() -> None:
    history = [
        f("a", "write", "v1", 0, 1),
        f("a", "read", "v1", 2, 3),
        f("b", "write", "v2", 4, 5, blind=True, outcome="info"),
        f("a", "write", "v3", 6, 7),
    ]
    result = accord.check(history)
    assert result.writes == 2  # the info write is not known to have committed
    assert result.events == 4


def test_old_outcomes_keep_their_meaning_and_say_so() -> None:
    history = [
        f("a", "write", 1, 0, 1, blind=True),
        f("b", "write", 2, 2, 3, blind=True, outcome="timeout"),
        f("c", "read", 1, 4, 5),
    ]
    result = accord.check(history)
    assert result.ok  # the timed-out write was dropped, as before
    assert any("'timeout'" in note and "info" in note for note in result.notes)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"agent": "a", "op": "cas", "key": "k", "value": 1, "start": 0},
         r"line 1: a cas without 'expect'"),
        ({"agent": "a", "op": "cas", "key": "k", "expect": 1, "start": 0},
         r"line 1: a cas without 'value'"),
        ({"agent": "a", "op": "append", "key": "k", "hash": "h", "start": 0},
         r"line 1: a append without 'value'"),
        ({"agent": "a", "op": "read", "key": "k", "value": 1, "start": 0, "blind": True},
         r"line 1: 'blind' marks a write"),
        ({"agent": "a", "op": "write", "key": "k", "value": 1, "start": 0, "blind": "yes"},
         r"line 1: 'blind' must be true or false"),
        ({"agent": "a", "op": "write", "key": "k", "value": 1, "start": 0, "outcome": 5},
         r"line 1: 'outcome' must be ok, fail or info"),
        ({"agent": "a", "op": "cas", "key": "k", "expect": 1, "value": 2, "start": 0,
          "outcome": "timeout"}, r"line 1: 'outcome' must be ok, fail or info"),
        ({"agent": "a", "op": "write", "key": "k", "value": 1, "start": 0, "end": "later"},
         r"line 1: a time that cannot be read"),
    ],
)
def test_unreadable_new_fields_are_format_errors(event: dict[str, Any], message: str) -> None:
    with pytest.raises(accord.HistoryFormatError, match=message):
        accord.check([event])


def test_appends_of_strings_and_other_values_do_not_mix() -> None:
    history = [f("a", "append", "x", 0, 1, key="k"), f("b", "append", 5, 2, 3, key="k")]
    with pytest.raises(accord.HistoryFormatError, match=r"line 2: an append of 5 to k"):
        accord.check(history)
    result = accord.check(history, lenient=True)
    assert result.skipped == 1 and result.events == 1


def test_an_append_key_cannot_be_followed_by_hash() -> None:
    history = [
        f("a", "append", "x", 0, 1, key="k"),
        {"agent": "b", "op": "read", "key": "k", "hash": "h1", "start": 2, "end": 3},
    ]
    with pytest.raises(accord.HistoryFormatError, match=r"line 2: a read of k by 'hash'"):
        accord.check(history)
