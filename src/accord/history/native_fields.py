"""Reading the fields of an accord history event that decide the checker's findings.

A field that decides a finding and cannot be read (a time that is not RFC
3339, a lease without a readable deadline, a version that is not an
integer) makes the line malformed: each function here returns what it
read, or why the line is malformed, in words that say what to write
instead. :class:`~accord.history.native.NativeChecker` reports the why
(:class:`~accord.history.format.HistoryFormatError`, or in lenient mode a
skipped line).
"""

from __future__ import annotations

import math
from typing import Any

from .format import NATIVE_OPS, is_foreign, parse_time

__all__ = ["bad_time", "lease_fields", "rejected", "write_fields"]

LeaseInfo = tuple[Any, float | None, str]
"""A lease event's token, deadline (None: not an acquire or renew) and mode."""


def rejected(ev: dict[str, Any], rev: Any, op: Any, agent: Any, last_rev: int) -> str:
    """Why an event with a bad ``rev``, ``op`` or ``agent`` cannot be checked."""
    if type(rev) is not int:
        if is_foreign(ev):
            return (
                "a foreign event (no rev) in an accord history; a history is either all "
                "accord events or all foreign events."
            )
        return f"missing or non-integer 'rev' ({rev!r})."
    if rev <= last_rev:
        return (
            f"revision {rev} comes after revision {last_rev}: events are out of "
            "revision order. Sort the file by rev (accord export writes it in order)."
        )
    if type(op) is not str or op not in NATIVE_OPS:
        return f"unknown op {op!r}; expected one of {', '.join(sorted(NATIVE_OPS))}."
    return f"missing or invalid 'agent' ({agent!r})."


def bad_time(name: str, value: Any) -> str:
    """Why the time field ``name`` cannot be read."""
    if value is None:
        return (
            f"an event without '{name}': the checker needs it for lease deadlines, stale "
            "reads and explanations. Give an RFC 3339 time such as "
            "2026-11-28T19:00:00.123456Z."
        )
    return f"'{name}' must be an RFC 3339 time such as 2026-11-28T19:00:00.123456Z, not {value!r}."


def write_fields(ev: dict[str, Any]) -> tuple[tuple[Any, ...] | None, str | None]:
    """The fields of a committed write that decide findings, ``(prev,
    based_on, check, lease, clock, idem, request)``, or why one is unreadable."""
    try:
        prev = ev["prev"]
        based = ev["based_on"]
        check_kind = ev["check"]
        lease = ev["lease"]
        clock = ev["clock"]
        idem = ev["idem"]
        request = ev["request"]
    except KeyError:
        get = ev.get
        prev = get("prev")
        based = get("based_on")
        check_kind = get("check")
        lease = get("lease")
        clock = get("clock")
        idem = get("idem")
        request = get("request")
    # Each of these decides a finding (what was replaced, what the writer
    # had seen, which lease guarded it, whether two writers had met): one
    # that cannot be read would silently turn a finding into "clean".
    why = None
    if prev is not None and type(prev) is not int:
        why = f"'prev' must be the version this write replaced (an integer) or null, not {prev!r}."
    elif based is not None and type(based) is not int:
        why = (
            f"'based_on' must be the version the writer had read (an integer) or null, not "
            f"{based!r}."
        )
    elif lease is not None and type(lease) is not int and type(lease) is not str:
        why = f"'lease' must be the lease's token (an integer or a string) or null, not {lease!r}."
    elif clock is not None and type(clock) is not dict:
        why = f"'clock' must be a vector clock (an object of agent: count) or null, not {clock!r}."
    if why is not None:
        return None, why
    return (prev, based, check_kind or "none", lease, clock, idem, request), None


def lease_fields(
    ev: dict[str, Any], op: str, key: Any, time: str
) -> tuple[LeaseInfo | None, str | None]:
    """A committed lease event's token, deadline and mode, and why they
    cannot be read (None: they can).

    The deadline decides whether a write under the lease came too late,
    so an acquire or renew must say it: ``expires`` (a time) or ``ttl``
    (seconds from the event's ``time``). When only the deadline is
    unreadable, the token and mode are returned with the why (deadline
    None): a write under that token is then undecidable, never clean.
    """
    token = ev.get("lease")
    if type(token) is not int and type(token) is not str:
        return None, (
            f"a {op} needs 'lease': the lease's token (an integer or a string), not {token!r}."
        )
    if type(key) is not str or not key:
        return None, f"a {op} event without a 'key' (the key the lease is on)."
    mode = ev.get("mode")
    if mode is None:
        mode = "exclusive"
    elif mode not in ("exclusive", "shared"):
        return None, f"'mode' must be exclusive or shared, not {mode!r}."
    if op not in ("lease_acquire", "lease_renew"):
        return (token, None, mode), None
    expires = ev.get("expires")
    ttl = ev.get("ttl")
    why = None
    deadline: float | None = None
    if expires is not None:
        try:
            deadline = parse_time(expires)
        except ValueError:
            why = (
                f"'expires' must be a time (RFC 3339, or seconds since the epoch), not {expires!r}."
            )
    elif ttl is None:
        why = (
            f"a {op} without 'ttl' (seconds from its time) or 'expires' (a time): without a "
            "deadline the checker cannot tell whether a write under this lease came too late."
        )
    elif type(ttl) not in (int, float) or not math.isfinite(ttl) or ttl < 0:
        why = f"'ttl' must be a number of seconds (0 or more), not {ttl!r}."
    else:
        deadline = parse_time(time)
        assert deadline is not None
        deadline += ttl
    return (token, deadline, mode), why
