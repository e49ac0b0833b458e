"""The rules of leases, without I/O: what a lease's records mean, who blocks
whom, what a grant, a release or a wake-up compares and writes, and every
message a lease error carries.

Both faces run these: :mod:`accord.strategies.lease` (generated) and its
async source :mod:`accord.strategies._lease_async` read the records, call
the functions here on what they read, and commit what they return. The
record layout (``.accord/lease/K/{tickets,tokens,q/N,held/N}`` and
``.accord/waitfor/``) is described in :mod:`accord.strategies.lease`.
Nothing here reads or writes a store, sleeps or reads a clock: ``now`` is
always the store's clock, read by the caller.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from .. import params
from ..errors import (
    AccordError,
    Deadlock,
    Fenced,
    LeaseHeld,
    LeaseLost,
    LeaseTimeout,
    UsageError,
    call,
    option,
    var,
)
from ..keys import internal
from ..records import NOW, Compare, Op, Put, Record
from .write import make_event

Mode = Literal["exclusive", "shared"]
MODES: tuple[Mode, ...] = ("exclusive", "shared")
MIN_TTL = 0.01
"""Shortest TTL accepted, in seconds: a lease must outlive its own grant."""
MAX_TTL = 86400.0
"""Longest TTL accepted (one day). Renew, or use ``keepalive=True``, for longer work."""
MAX_WAIT = 86400.0
"""Longest ``wait`` accepted (one day)."""

DIGITS = 20
MAX_SLEEP = 1.0
"""Longest one wait of an acquirer: a lost wake-up costs at most this much
latency, never correctness."""
DEADLOCK_RECHECK = 5.0
"""Seconds between the waiter's re-checks for a deadlock. A cycle can only be
closed by a request joining a line, and the last one to join sees every edge
(each reads after its own commit), so the check at enqueue finds every
deadlock; the slow re-check is a safety net."""
SPIN_LIMIT = 10_000
"""Compare-and-swap retries before we call the store broken."""
CANCEL_LATENCY = 0.05
"""Longest a cancellable acquire of the sync face sleeps before it looks at its
``cancel`` event."""


class LeaseCancelled(AccordError):
    """An acquire given up through its ``cancel`` event; nothing is held.

    The sync face's way to stop a waiting acquire from another thread; on the
    async face a cancelled acquire raises the caller's ``asyncio.CancelledError``.
    """


class CancelFlag(Protocol):
    """What ``acquire(cancel=...)`` takes: a ``threading.Event`` (or anything with ``is_set``)."""

    def is_set(self) -> bool: ...


# --- layout -------------------------------------------------------------------


def prefix(key: str) -> str:
    return internal("lease", key) + "/"


def tickets_key(key: str) -> str:
    return prefix(key) + "tickets"


def tokens_key(key: str) -> str:
    return prefix(key) + "tokens"


def queue_key(key: str, ticket: int) -> str:
    return f"{prefix(key)}q/{ticket:0{DIGITS}d}"


def held_prefix(key: str) -> str:
    return prefix(key) + "held/"


def held_key(key: str, token: int) -> str:
    return f"{held_prefix(key)}{token:0{DIGITS}d}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def waitfor_prefix(agent: str) -> str:
    return internal("waitfor", _digest(agent)) + "/"


def waitfor_key(agent: str, key: str, ticket: int) -> str:
    return f"{waitfor_prefix(agent)}{_digest(key)}-{ticket:0{DIGITS}d}"


def pack(data: dict[str, Any]) -> bytes:
    """A lease record's JSON payload (sorted, compact)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- what the store holds about one key ----------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One ticket (``q``) or grant (``held``) record, decoded."""

    kind: Literal["q", "held"]
    number: int
    record_key: str
    agent: str
    mode: str
    expires: float | None
    version: int
    data: bytes
    ticket: int | None

    def live(self, now: float) -> bool:
        return self.expires is None or self.expires > now


@dataclass(slots=True)
class State:
    """Everything about one key's leases, from one scan (one snapshot)."""

    key: str
    tickets_version: int = 0
    tokens_version: int = 0
    queue: list[Entry] = field(default_factory=list)
    held: list[Entry] = field(default_factory=list)

    def entry(self, kind: str, number: int) -> Entry | None:
        for e in self.queue if kind == "q" else self.held:
            if e.number == number:
                return e
        return None


def state_of(key: str, records: Iterable[Record]) -> State:
    """The :class:`State` of ``key`` from a scan of :func:`prefix` ``(key)``."""
    start = prefix(key)
    state = State(key)
    for rec in records:
        rest = rec.key[len(start) :]
        if rest == "tickets":
            state.tickets_version = rec.version
        elif rest == "tokens":
            state.tokens_version = rec.version
        else:
            entry = decode(rec, rest)
            if entry is not None:
                (state.queue if entry.kind == "q" else state.held).append(entry)
    # Keys nested under K (say K/sub) share the prefix; decode drops them by shape.
    state.queue.sort(key=lambda e: e.number)
    state.held.sort(key=lambda e: e.number)
    return state


def decode(rec: Record, rest: str) -> Entry | None:
    """The entry of ``rec`` (``rest`` is its key after the lease prefix), or None."""
    kind, _, number = rest.partition("/")
    if kind not in ("q", "held") or len(number) != DIGITS or not number.isdigit():
        return None
    try:
        value = json.loads(rec.data)
    except ValueError:  # pragma: no cover - we wrote it
        return None
    return Entry(
        kind="q" if kind == "q" else "held",
        number=int(number),
        record_key=rec.key,
        agent=str(value.get("agent", rec.author)),
        mode=str(value.get("mode", "exclusive")),
        expires=rec.expires,
        version=rec.version,
        data=rec.data,
        ticket=value.get("ticket"),
    )


def blockers(state: State, now: float, ticket: int | None, mode: str) -> list[Entry]:
    """The live records that keep a request (``ticket``, ``mode``) waiting.

    ``ticket=None`` is a request that has no ticket yet: everything queued is
    ahead of it.
    """
    out: list[Entry] = []
    for e in state.queue:
        if ticket is not None and e.number >= ticket:
            break
        if e.live(now) and (mode == "exclusive" or e.mode == "exclusive"):
            out.append(e)
    for e in state.held:
        if e.live(now) and (mode == "exclusive" or e.mode == "exclusive"):
            out.append(e)
    return out


def grantable_after(state: State, now: float, removed: set[str]) -> list[Entry]:
    """Waiting tickets that are grantable once ``removed`` records are gone.

    Whoever frees a key rewrites these tickets to wake exactly their owners.
    """
    view = State(
        state.key,
        state.tickets_version,
        state.tokens_version,
        [e for e in state.queue if e.record_key not in removed],
        [e for e in state.held if e.record_key not in removed],
    )
    out: list[Entry] = []
    for e in view.queue:
        if not e.live(now):
            continue
        if not blockers(view, now, e.number, e.mode):
            out.append(e)
        if e.mode == "exclusive":
            break  # nobody behind a waiting exclusive request can be granted
    return out


def ring(entries: Sequence[Entry], now: float) -> tuple[list[Compare], list[Op]]:
    """Rewrite waiting tickets (unchanged data) so their owners wake up.

    The compares make sure a ticket that was granted or abandoned in the
    meantime is not brought back to life. The rewrite keeps each ticket's
    deadline (``now`` is the clock reading the caller decided on): only its
    owner extends it, so a dead waiter's ticket still lapses however often it
    is rung.
    """
    compares: list[Compare] = []
    ops: list[Op] = []
    for e in entries:
        compares.append(Compare(e.record_key, "expires", ">", NOW))
        compares.append(Compare(e.record_key, "holder", "==", e.agent))
        # Tickets always have a deadline; the fallback is for foreign records.
        ttl = max(MIN_TTL, e.expires - now) if e.expires is not None else _queue_ttl_from(e)
        ops.append(Put(e.record_key, "json", e.data, e.agent, ttl=ttl))
    return compares, ops


def queue_ttl(ttl: float) -> float:
    """How long a silent waiter keeps its place: long enough to ride out a GC
    pause or a slow store, short enough that a dead waiter does not hold up
    the queue for long."""
    return min(max(ttl, 2.0), 30.0)


def _queue_ttl_from(e: Entry) -> float:
    try:
        return float(json.loads(e.data).get("qttl", 10.0))
    except (ValueError, TypeError):  # pragma: no cover - we wrote it
        return 10.0


def position(state: State, now: float, ticket: int | None) -> int:
    """A request's place in line (1 = next); ``ticket=None``: behind every live ticket."""
    return 1 + sum(1 for e in state.queue if (ticket is None or e.number < ticket) and e.live(now))


def nearest(found: list[Entry]) -> Entry:
    """The blocker whose change a waiter should wake for first: the waiter just
    ahead in line; a held lease only when nobody waits ahead."""
    queued = [e for e in found if e.kind == "q"]
    if queued:
        return queued[-1]
    return min(found, key=lambda e: e.expires if e.expires is not None else math.inf)


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """One holder or waiter of a key, as ``lease_status`` reports it.

    ``position`` is 1 for the first waiter in line (0 for holders).
    ``expires`` is on the store's clock (seconds since the epoch).
    """

    key: str
    agent: str
    mode: str
    state: Literal["held", "waiting"]
    token: int | None
    ticket: int | None
    position: int
    expires: float | None


@dataclass(frozen=True, slots=True)
class LeaseStatus:
    """Who holds ``key`` and who waits for it, in line order."""

    key: str
    holders: list[LeaseInfo]
    waiters: list[LeaseInfo]
    last_token: int


def lease_status(state: State, now: float) -> LeaseStatus:
    """The live holders and waiters in ``state`` (expired ones are left out)."""
    key = state.key
    holders = [
        LeaseInfo(key, e.agent, e.mode, "held", e.number, e.ticket, 0, e.expires)
        for e in state.held
        if e.live(now)
    ]
    live_queue = [e for e in state.queue if e.live(now)]
    waiters = [
        LeaseInfo(key, e.agent, e.mode, "waiting", None, e.number, i + 1, e.expires)
        for i, e in enumerate(live_queue)
    ]
    return LeaseStatus(key, holders, waiters, state.tokens_version)


# --- validation ------------------------------------------------------------------


def check_ttl(ttl: object, name: str = "ttl") -> float:
    return params.seconds(
        ttl,
        name,
        minimum=MIN_TTL,
        maximum=MAX_TTL,
        example="30",
        hint=f"A lease lives from {MIN_TTL} s to {MAX_TTL:.0f} s (one day): pick the longest "
        f"time your work may run without renewing, and renew it ({call('lease.renew')}) for "
        "longer work.",
    )


def check_wait(wait: object) -> float:
    return params.seconds(
        wait,
        "wait",
        maximum=MAX_WAIT,
        example="10",
        hint=f"{option('wait', 0)} means: do not wait at all.",
    )


def check_mode(mode: object) -> Mode:
    if mode == "exclusive":
        return "exclusive"
    if mode == "shared":
        return "shared"
    raise UsageError(
        f"mode must be 'exclusive' (one holder, may write) or 'shared' (many readers), "
        f"not {mode!r}."
    )


def check_token(token: object) -> int:
    if isinstance(token, bool) or not isinstance(token, int) or token < 1:
        raise UsageError(
            f"A lease token is a positive integer, the token of a lease "
            f"({call('session.acquire', var('key'))} gives it), not {token!r}."
        )
    return token


# --- history events ------------------------------------------------------------------


def lease_event(
    agent: str, op: str, key: str, token: int | None, lamport: int, vector: dict[str, int]
) -> dict[str, Any]:
    """A lease's history event (``lease_acquire``, ``lease_renew``, ``lease_release``)."""
    event = make_event(agent, op, key, lamport, vector, check="lease", lease=token)
    # The version/prev/hash a backend fills in would describe the internal
    # lease record, not the key: say plainly that there are none.
    event.update(version=None, prev=None, hash=None)
    return event


def expire_event(observer: str, key: str, e: Entry) -> dict[str, Any]:
    """The lease_expire event of a lapsed grant, recorded by whoever notices."""
    event = make_event(observer, "lease_expire", key, 0, {}, check="lease", lease=e.number)
    event.update(
        agent=e.agent,
        mode=e.mode,
        expires=iso(e.expires) if e.expires is not None else None,
        observed_by=observer,
        version=None,
        prev=None,
        hash=None,
    )
    return event


# --- deadlocks -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edge:
    """One edge of the wait-for graph: ``waiter`` waits for ``key``, blocked by ``blocker``."""

    waiter: str
    key: str
    waiting_record: str
    blocker: str
    blocker_record: str
    blocker_state: str

    def __str__(self) -> str:
        how = "held by" if self.blocker_state == "held" else "queued ahead by"
        return f"{self.waiter} waits for {self.key} ({how} {self.blocker})"

    def as_dict(self) -> dict[str, str]:
        return {
            "agent": self.waiter,
            "key": self.key,
            "blocked_by": self.blocker,
            "state": self.blocker_state,
        }


def cycle_compares(cycle: Sequence[Edge]) -> list[Compare]:
    """Compares that hold only while every edge of ``cycle`` still stands."""
    compares: list[Compare] = []
    for edge in cycle:
        compares.append(Compare(edge.waiting_record, "expires", ">", NOW))
        compares.append(Compare(edge.blocker_record, "expires", ">", NOW))
    return compares


def waitfor_entry(rec: Record, agent: str, now: float) -> tuple[str, int, str] | None:
    """``(key, ticket, mode)`` of ``agent``'s live wait-for index record, or None."""
    if rec.expires is not None and rec.expires <= now:
        return None
    try:
        info = json.loads(rec.data)
        found = str(info["key"]), int(info["ticket"]), str(info["mode"])
    except (ValueError, KeyError, TypeError):  # pragma: no cover - we wrote it
        return None
    if info.get("agent") != agent:
        return None  # a digest collision of two agent names: not this agent
    return found


def deadlock_error(key: str, cycle: Sequence[Edge]) -> Deadlock:
    text = " -> ".join(str(edge) for edge in cycle) + f" -> {cycle[0].waiter}"
    return Deadlock(
        f"Deadlock: {text}. Each agent holds a key the next one waits for, so none "
        f"could ever proceed; this request for {key} was chosen to fail (you hold "
        f"nothing new, but still hold your other leases). Release what you hold, then take "
        f"all the keys at once with {call('session.lease_all', var('keys'))}, which takes "
        "them in one order.",
        key=key,
        cycle=[edge.waiter for edge in cycle],
        edges=[edge.as_dict() for edge in cycle],
    )


# --- messages ------------------------------------------------------------------------


def whole(seconds: float) -> float | int:
    """``seconds`` as an int when it is whole, so a message says ``--wait 0``, not ``0.0``."""
    return int(seconds) if float(seconds).is_integer() else seconds


def live_tokens(state: State, now: float) -> list[tuple[int, str, str]]:
    """``(token, agent, mode)`` of each live grant."""
    return [(e.number, e.agent, e.mode) for e in state.held if e.live(now)]


def describe_holders(key: str, live: Sequence[tuple[int, str, str]]) -> str:
    if not live:
        return f"Nobody holds {key} now."
    parts = [f"{agent} (token {token}, {mode})" for token, agent, mode in live]
    return f"{key} is now leased by {', '.join(parts)}."


def describe_blockers(found: list[Entry], now: float) -> str:
    held = [e for e in found if e.kind == "held"]
    queued = [e for e in found if e.kind == "q"]
    parts = []
    if held:
        parts.append(
            "held by "
            + ", ".join(
                f"{e.agent} (token {e.number}, {e.mode}"
                + (f", expires in {e.expires - now:.1f} s)" if e.expires is not None else ")")
                for e in held
            )
        )
    if queued:
        parts.append(f"{len(queued)} request(s) ahead in line")
    return "; ".join(parts) or "the key was busy"


def end_of(events: Iterable[dict[str, Any]], token: int) -> str:
    """How lease ``token`` ended, from its key's history ``events`` (oldest first)."""
    for ev in events:
        if ev.get("lease") != token:
            continue
        if ev.get("op") == "lease_release":
            return f"was released at {ev.get('time')}"
        if ev.get("op") == "lease_expire":
            return f"expired at {ev.get('expires')} (store clock)"
    return "is no longer held (it was released, or it expired)"


def timeout_error(
    key: str,
    mode: str,
    wait: float,
    waited: float,
    place: int,
    found: list[Entry],
    me: str,
    now: float,
) -> LeaseTimeout:
    """The :class:`LeaseTimeout` of a request that waited ``waited`` s at ``place`` in line."""
    who = describe_blockers(found, now)
    own = (
        f" {me} is you: leases are not re-entrant, so use the lease you already hold "
        "(or release it first)."
        if any(e.kind == "held" and e.agent == me for e in found)
        else ""
    )
    return LeaseTimeout(
        f"No {mode} lease on {key} within {wait:g} s "
        f"({option('wait', whole(wait))}): {who}; you were number {place} in "
        f"line. You hold nothing new now.{own} Retry with a longer wait "
        f"({call('session.acquire', key, wait=var('seconds'))}), or do other work and "
        "come back.",
        key=key,
        waited=waited,
        position=place,
        holders=[e.agent for e in found if e.kind == "held"],
    )


def lost_error(key: str, token: int, doing: str, why: str, holders: str) -> LeaseLost:
    """The :class:`LeaseLost` of a lease that could not be renewed, released or used."""
    what = {"renew": "renew", "release": "release", "check": "use"}[doing]
    return LeaseLost(
        f"Cannot {what} the lease on {key} (token {token}): {why}. {holders} "
        "Writes made under this lease after it lapsed were fenced. Stop, re-read "
        f"{key}, acquire a new lease and redo the work.",
        key=key,
        token=token,
    )


def expired_why(expired_at: float, now: float) -> str:
    return f"it expired at {iso(expired_at)} (store clock), {now - expired_at:.3f} s ago"


def is_shared(rec: Record | None) -> bool:
    """True if ``rec`` is a live grant record of a shared lease."""
    return rec is not None and not rec.deleted and json.loads(rec.data).get("mode") == "shared"


# --- exclusion: the guard ------------------------------------------------------------


def guard(session: object, key: str, token: int | None = None) -> list[Compare]:
    """The compare that keeps every write of ``key`` out while a lease on it is live.

    It holds only when no live grant record of ``key`` exists other than
    ``held/<token>`` (the lease the write carries, whose own fence compares
    check that it is live, exclusive and the writer's). The store evaluates
    it in the write's own transaction on its own clock, so a lease that
    lapses stops blocking at its deadline without any record changing, and
    a grant cannot slip between the check and the write. A refusal is
    recorded with outcome ``fenced``. ``session`` (the writer) is not needed:
    every writer carries the same compare.
    """
    if token is None:
        # Every write without a lease carries this one compare: built once
        # per key (Compare is immutable), not on every write.
        cached = _VACANT.get(key)
        if cached is None:
            if len(_VACANT) >= 4096:
                _VACANT.clear()
            cached = _VACANT[key] = Compare(
                held_prefix(key), "vacant", "==", None, refusal="fenced"
            )
        return [cached]
    return [Compare(held_prefix(key), "vacant", "==", held_key(key, token), refusal="fenced")]


_VACANT: dict[str, Compare] = {}


def fence(key: str, agent: str, token: int, impossible: bool) -> list[Compare]:
    """Compares that hold only while lease ``token`` of ``key`` is ``agent``'s live
    lease; ``impossible`` adds one that always fails (a lease of another key,
    another agent, or a shared lease), so the refusal is recorded as ``fenced``."""
    hk = held_key(key, token)
    compares = [
        Compare(hk, "expires", ">", NOW, refusal="fenced"),
        Compare(hk, "holder", "==", agent, refusal="fenced"),
    ]
    if impossible:
        compares.append(Compare(hk, "version", "<", 0, refusal="fenced"))
    return compares


def held_error(agent: str, key: str, live: Sequence[Entry], now: float) -> LeaseHeld:
    """The :class:`LeaseHeld` error for ``agent``'s write of ``key`` refused by the
    ``live`` grants."""
    rule = (
        "While a lease on a key is live, the store accepts only writes and deletes made under "
        "an exclusive lease of that key; nothing was written."
    )
    if not live:
        return LeaseHeld(
            f"Write to {key} refused: a lease on {key} was live when the store checked the "
            f"write, and it has ended since. {rule} Nobody holds {key} now: re-read it and "
            "write again.",
            key=key,
            holder=None,
            token=None,
            mode=None,
            expires=None,
            holders=[],
        )
    first = live[0]
    last = max((e.expires for e in live if e.expires is not None), default=None)
    if last is None:
        until = "with no deadline"
    else:
        until = f"until {iso(last)} (store clock, {max(0.0, last - now):.1f} s from now)"
    if len(live) == 1:
        who = (
            f"{first.agent} holds a{'n' if first.mode == 'exclusive' else ''} {first.mode} "
            f"lease on it (token {first.number}) {until} unless renewed"
        )
    else:
        names = ", ".join(f"{e.agent} (token {e.number})" for e in live)
        who = f"{names} hold {first.mode} leases on it, the last {until} unless renewed"
    mine = [e for e in live if e.agent == agent]
    if mine and mine[0].mode == "exclusive":
        todo = (
            f" You ({agent}) hold that lease (token {mine[0].number}): write under it, "
            f"{call('session.write', key, var('value'), lease=mine[0].number)}."
        )
    elif mine:
        todo = (
            f" You ({agent}) hold a shared lease (token {mine[0].number}), which is for "
            f"reading: release it, then acquire {key} exclusively "
            f"({call('session.acquire', key, mode='exclusive')}) and write under that lease."
        )
    else:
        wait = 10 if last is None else max(1, math.ceil(last - now))
        todo = (
            f" Wait for it: {call('session.acquire', key, wait=wait)}, then re-read {key}, "
            "write under your lease "
            f"({call('session.write', key, var('value'), lease=var('lease'))}) and release it."
        )
    return LeaseHeld(
        f"Write to {key} refused: {who}. {rule}{todo}",
        key=key,
        holder=first.agent,
        token=first.number,
        mode=first.mode,
        expires=first.expires,
        holders=[
            {"agent": e.agent, "token": e.number, "mode": e.mode, "expires": e.expires}
            for e in live
        ],
    )


@dataclass(frozen=True, slots=True)
class Carried:
    """What a refused write's lease said about itself: a Lease object's key,
    agent and mode, or None of them for a bare token (the CLI's ``--lease``)."""

    token: int
    key: str | None = None
    agent: str | None = None
    mode: str | None = None


def fenced_reason(
    writer: str, key: str, carried: Carried, rec: Record | None, now: float
) -> str | None:
    """Why a write under ``carried`` was fenced, when the grant record ``rec``
    (or the lease object) says; None when the history must tell (``rec`` is
    gone) or the lease is live and the version check failed."""
    if carried.key is not None and carried.key != key:
        return "wrong-key"
    if carried.agent is not None and carried.agent != writer:
        return "other-agent"
    if carried.mode == "shared" or is_shared(rec):
        return "shared"
    if rec is not None and not rec.deleted and rec.author != writer:
        return "other-agent"
    if rec is not None and not rec.deleted and rec.expires is not None and rec.expires <= now:
        return "expired"
    return None


def fenced_error(
    writer: str,
    key: str,
    carried: Carried,
    rec: Record | None,
    now: float,
    live: Sequence[tuple[int, str, str]],
    last_token: int,
    ended: str,
    version: int,
) -> Fenced:
    """The :class:`Fenced` error of ``writer``'s write of ``key`` under ``carried``.

    ``rec`` is the grant record of the token (None if gone), ``live`` the
    key's live grants now, ``last_token`` its latest token, ``ended`` how the
    lease ended (:func:`end_of`; read only when ``rec`` is gone), ``version``
    the key's version (for a live lease whose version check failed).
    """
    token = carried.token
    tail = (
        f" Stop writing {key}: re-read it (it may have changed), acquire a new lease and redo "
        "your change under it."
    )
    reason = fenced_reason(writer, key, carried, rec, now)
    if reason == "wrong-key":
        why = (
            f"the write carried the lease of {carried.key} (token {token}), and a lease guards "
            "only its own key."
        )
        tail = f" Acquire a lease on {key} and write with that one."
    elif reason == "other-agent" and carried.agent is not None and carried.agent != writer:
        why = f"that lease (token {token}) belongs to {carried.agent}, not to {writer}."
        tail = " Each agent writes under its own lease."
    elif reason == "shared":
        why = f"token {token} is a shared lease, for reading; writes need an exclusive one."
        tail = (
            f" Acquire {key} exclusively ({call('session.acquire', key, mode='exclusive')}) to "
            "write it."
        )
    elif reason == "other-agent":
        assert rec is not None
        why = f"token {token} of {key} is held by {rec.author}, not by {writer}."
        tail = " Each agent writes under its own lease: acquire one."
    elif reason == "expired":
        assert rec is not None and rec.expires is not None
        why = (
            f"your lease (token {token}) expired at {iso(rec.expires)} (store clock), "
            f"{now - rec.expires:.3f} s before this write was refused."
        )
    elif rec is None or rec.deleted:
        if token > last_token:
            reason = "unknown-token"
            why = (
                f"no lease with token {token} was ever granted on {key} (its latest token is "
                f"{last_token}). Tokens are per key: check the key and the token."
            )
            tail = f" Acquire a lease on {key} and write with its token."
        else:
            reason = "ended"
            why = f"your lease (token {token}) {ended}."
    else:
        # The lease is live and ours: what failed is the version check
        # (expect=) that came with it.
        reason = "version"
        why = (
            f"your lease (token {token}) is live, but the version check failed: {key} is at "
            f"version {version}."
        )
        tail = (
            f" Re-read {key} and write with {option('expect', version)} (or with no expected "
            "version, under the lease)."
        )
    return Fenced(
        f"Write to {key} refused: {why} {describe_holders(key, live)}{tail}",
        key=key,
        token=token,
        reason=reason,
        current_token=live[0][0] if live else None,
        holder=live[0][1] if live else None,
    )


def unknown_token(key: str, token: int, last_token: int) -> UsageError:
    return UsageError(
        f"No lease with token {token} was ever granted on {key} (its latest token is "
        f"{last_token}). Tokens are per key: check the key and the token.",
        key=key,
        token=token,
    )


def not_holder(key: str, token: int, holder: str, agent: str) -> UsageError:
    return UsageError(
        f"Token {token} of {key} belongs to {holder}, not to {agent}. Only the "
        f"holder may renew or release a lease: act as {holder} "
        f"({call('store.session', holder)}).",
        key=key,
        token=token,
    )


def unpack(data: bytes) -> dict[str, Any]:
    """A lease record's JSON payload, decoded."""
    value = json.loads(data)
    return value if isinstance(value, dict) else {}
