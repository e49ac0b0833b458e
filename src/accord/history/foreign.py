"""Foreign histories: read their lines into operations with the meaning docs/checker.md gives.

A foreign history has no versions: one operation a line, with ``agent``,
``op``, ``key``, a value, and ``start``/``end`` times that bound it in real
time. This module turns each line into an :class:`FOp` and checks the fields
that decide a finding; :mod:`accord.history.infer` (lost updates and stale
reads) and :mod:`accord.history.linearizable` (the linearizability search)
both work on what it returns.

The operations and what they claim:

``read``
    returned ``value`` (or a value with content hash ``hash``); ``null``
    means the key was absent (for an append key: empty).
``write``
    set the key to ``value``; ``"blind": true`` says the writer built it on
    nothing it had read.
``cas``
    atomically: if the key's value was ``expect`` (``null``: absent), set
    it to ``value``.
``append``
    atomically appended ``value`` to the key's value: string concatenation
    when the appended values are strings, else list append (the value is
    one element); an absent key is the empty string or list.

``outcome`` says what became of it: ``ok`` (took effect once, between
``start`` and ``end``), ``fail`` (did not take effect; a failed cas tells
that the value was not ``expect`` at some moment of its interval), ``info``
(unknown: took effect once at some moment after ``start``, possibly after
``end``, or never). A read whose outcome is not ``ok`` tells nothing. Other
words (``timeout``, ``error``...) are taken as ``fail`` on reads and writes,
as files from before ``info`` existed meant them, and a note says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .format import EventStream, parse_time

FOREIGN_OPS = ("read", "write", "cas", "append")
"""Operations a foreign history may contain."""

OUTCOMES = ("ok", "fail", "info")
"""What a foreign operation's ``outcome`` may say."""

INF = math.inf


@dataclass(frozen=True, slots=True)
class Opaque:
    """A value on an append key that cannot be appended to (a number, an object...)."""

    text: str


@dataclass(slots=True)
class FOp:
    """One foreign operation, normalised.

    ``ident`` is the identity of the value (a read's result, a write's or
    cas's new value; for an append, the appended value): the ``hash``, or
    canonical JSON of ``value``; None for null. ``expect`` is a cas's
    expected value in the same form. ``until`` is the last moment the
    operation can take effect: ``end``, or infinity for ``info``.
    """

    line: int
    agent: str
    op: str
    key: str
    ident: str | None
    start: float
    end: float
    raw: dict[str, Any]
    seq: int = 0
    outcome: str = "ok"
    blind: bool = False
    expect: str | None = None
    idem: str | None = None
    request: str | None = None
    # filled in by the inference (accord.history.infer)
    basis: list[int] | None = None  # write indexes (or -1, the initial value) it built on
    held_from: float | None = None  # when the agent got its basis (the read's start)
    basis_op: FOp | None = None  # the read (or own write) that gave the basis
    clock: dict[str, int] = field(default_factory=dict)

    @property
    def until(self) -> float:
        """The last moment this operation can take effect (infinity when ``info``)."""
        return INF if self.outcome == "info" else self.end

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def mutates(self) -> bool:
        """True if it changed the key (ok) or may have (info): a possible source for reads."""
        return self.op != "read" and self.outcome != "fail"


@dataclass
class ForeignHistory:
    """The operations of a foreign history, in file order, and what reading them noticed."""

    ops: list[FOp]
    notes: list[str] = field(default_factory=list)
    append_kind: dict[str, str] = field(default_factory=dict)  # key -> "str" or "list"

    def by_key(self) -> dict[str, list[FOp]]:
        """The operations of each key, in file order."""
        keys: dict[str, list[FOp]] = {}
        for o in self.ops:
            keys.setdefault(o.key, []).append(o)
        return keys


def canonical(value: Any) -> str:
    """The identity of a JSON value: canonical JSON (sorted keys, no spaces)."""
    return "=" + json.dumps(value, sort_keys=True, separators=(",", ":"))


def value_ident(event: dict[str, Any]) -> str | None:
    """The identity of an event's value: its ``hash``, else canonical JSON of ``value``."""
    h = event.get("hash")
    if h is not None:
        return str(h)
    if "value" not in event or event["value"] is None:
        return None
    return canonical(event["value"])


def append_state(value: Any, kind: str) -> Any:
    """The value of an append key as the linearizability model holds it.

    ``null`` is the empty value; a string on a string key is itself; a list
    on a list key is the tuple of its elements' identities; anything else is
    an :class:`Opaque` value that no append can extend.
    """
    if value is None:
        return "" if kind == "str" else ()
    if kind == "str" and type(value) is str:
        return value
    if kind == "list" and type(value) is list:
        return tuple(canonical(x) for x in value)
    return Opaque(canonical(value))


def read_foreign(
    items: Iterable[tuple[int, dict[str, Any]]],
    stream: EventStream,
    on_event: Callable[[int, dict[str, Any]], None] | None = None,
) -> ForeignHistory:
    """Read foreign lines into a :class:`ForeignHistory`.

    A line that cannot be read fails through ``stream`` (a
    :class:`HistoryFormatError` naming the line, or in lenient mode a
    skipped line).
    """
    ops: list[FOp] = []
    legacy: dict[str, int] = {}
    for line, ev in items:
        fop = _normalise(line, ev, stream, len(ops), legacy)
        if fop is None:
            continue
        ops.append(fop)
        if on_event is not None:
            on_event(line, ev)
    history = ForeignHistory(ops)
    _append_keys(history, stream)
    if legacy:
        words = ", ".join(f"{n} {word!r}" for word, n in sorted(legacy.items()))
        history.notes.append(
            f"Operations with an outcome other than ok, fail or info ({words}) were taken as "
            "fail: not applied. If such an operation may have taken effect, mark it "
            "\"outcome\": \"info\"."
        )
    return history


def _normalise(
    line: int, ev: dict[str, Any], stream: EventStream, seq: int, legacy: dict[str, int]
) -> FOp | None:
    agent = ev.get("agent")
    if type(agent) is not str or not agent:
        stream.fail(line, f"missing or invalid 'agent' ({agent!r}).")
        return None
    op = ev.get("op")
    if type(op) is not str or op not in FOREIGN_OPS:
        stream.fail(
            line,
            f"unknown op {op!r} in a foreign history; expected read, write, cas or append (an "
            "accord history has a 'rev' on every line).",
        )
        return None
    key = ev.get("key")
    if type(key) is not str or not key:
        stream.fail(line, f"a {op} without a 'key'.")
        return None
    if op in ("read", "write") and "value" not in ev and "hash" not in ev:
        stream.fail(
            line,
            f"a {op} without 'value' or 'hash'; the checker needs one of them"
            + (" (use null for 'absent')." if op == "read" else "."),
        )
        return None
    if op in ("cas", "append") and "value" not in ev:
        stream.fail(line, f"a {op} without 'value' (a {op} is checked by value, not by hash).")
        return None
    if op == "cas" and "expect" not in ev:
        stream.fail(
            line, "a cas without 'expect': the value it compared with (null for 'absent')."
        )
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
    if outcome is None or outcome is True:
        outcome = "ok"
    if type(outcome) is not str:
        stream.fail(line, f"'outcome' must be ok, fail or info, not {outcome!r}.")
        return None
    if outcome not in OUTCOMES:
        if op in ("cas", "append"):
            stream.fail(
                line,
                f"'outcome' must be ok, fail or info, not {outcome!r}: ok took effect, fail did "
                "not, info may have (at any time after start) or not.",
            )
            return None
        legacy[outcome] = legacy.get(outcome, 0) + 1
        outcome = "fail"
    blind = ev.get("blind", False)
    if blind is None:
        blind = False
    if type(blind) is not bool:
        stream.fail(line, f"'blind' must be true or false, not {blind!r}.")
        return None
    if blind and op != "write":
        stream.fail(
            line,
            f"'blind' marks a write built on nothing its agent read; a {op} cannot be blind.",
        )
        return None
    idem = ev.get("idem")
    request = ev.get("request")
    if op == "append":
        ident = None if ev["value"] is None else canonical(ev["value"])
    else:
        ident = value_ident(ev)
    expect = None
    if op == "cas":
        expect = None if ev["expect"] is None else canonical(ev["expect"])
    return FOp(
        line=line,
        agent=agent,
        op=op,
        key=key,
        ident=ident,
        start=start,
        end=end,
        raw=ev,
        seq=seq,
        outcome=outcome,
        blind=blind,
        expect=expect,
        idem=None if idem is None else str(idem),
        request=None if request is None else str(request),
    )


def _append_keys(history: ForeignHistory, stream: EventStream) -> None:
    """Decide each append key's kind (string or list) and refuse what it cannot check."""
    first: dict[str, FOp] = {}
    bad: set[int] = set()
    for o in history.ops:
        if o.op != "append":
            continue
        kind = _kind_of(o)
        seen = history.append_kind.get(o.key)
        if seen is None:
            history.append_kind[o.key] = kind
            first[o.key] = o
        elif seen != kind:
            f = first[o.key]
            stream.fail(
                o.line,
                f"an append of {_show(o.raw.get('value'))} to {o.key}, whose appends are "
                f"{'strings' if seen == 'str' else 'list elements'} (line {f.line} appended "
                f"{_show(f.raw.get('value'))}). Appends to one key must all be strings "
                "(concatenated) or all be other values (list elements).",
            )
            bad.add(id(o))
    for o in history.ops:
        if o.key in history.append_kind and "value" not in o.raw:
            stream.fail(
                o.line,
                f"a {o.op} of {o.key} by 'hash': {o.key} takes appends, and the checker "
                "concatenates values to follow it; give 'value'.",
            )
            bad.add(id(o))
    if bad:
        history.ops = [o for o in history.ops if id(o) not in bad]


def _kind_of(o: FOp) -> str:
    return "str" if type(o.raw.get("value")) is str else "list"


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(o: FOp) -> str:
    """``agent-a's write of 'v2'``: the operation in words."""
    value = o.raw.get("value", o.raw.get("hash"))
    if o.op == "read":
        what = f"read of {_show(value)}" if value is not None else "read of null (absent)"
    elif o.op == "write":
        what = f"{'blind ' if o.blind else ''}write of {_show(value)}"
    elif o.op == "cas":
        what = f"cas from {_show(o.raw.get('expect'))} to {_show(value)}"
    else:
        what = f"append of {_show(value)}"
    if o.outcome != "ok":
        what += f" ({o.outcome})"
    return f"{o.agent}'s {what}"
