"""The one-pass checker of accord histories (events in revision order).

:class:`NativeChecker` reads ``accord export`` events one at a time and
finds lost updates, concurrent writes, writes accepted under a lapsed lease,
duplicate applies and stale reads, in memory bounded by the number of keys
and agents (not by the history's length): per key it keeps the last
:data:`WINDOW_VERSIONS` versions, and nothing older than
:data:`WINDOW_REVISIONS` revisions.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import deque
from datetime import datetime
from typing import Any
from zlib import crc32

from .format import NATIVE_OPS, EventStream, clock_time, is_foreign, parse_time
from .result import ANOMALY_NAMES, MAX_REPORTED, Anomaly, CheckResult

WINDOW_VERSIONS = 100_000
"""Versions of one key remembered for explanations and lost-write accounting."""

WINDOW_REVISIONS = 100_000
"""Revisions after which a version is forgotten (the memory bound)."""

MUTATING = frozenset({"write", "delete", "accept", "merge"})
"""Operations that change a key when their outcome is ok."""

KEYED = MUTATING | {"read"}

_fromiso = datetime.fromisoformat


V, REV, TIME, AGENT, OP, PREV, BASED, CHECK, LEASE, LINE, READ, PARENT, ONPATH, LOSTBY = range(14)
_W = list[Any]


def _new_w(
    version: int,
    rev: int,
    time: str,
    agent: str,
    op: str,
    prev: int,
    based_on: int | None,
    check: str,
    lease: Any,
    line: int,
    read_time: str | None,
) -> list[Any]:
    parent = prev if based_on is None else based_on
    return [
        version, rev, time, agent, op, prev, based_on, check, lease, line, read_time, parent,
        False, None,
    ]


def _summary(w: list[Any], key: str) -> dict[str, Any]:
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


def _label(w: list[Any]) -> str:
    return f"{w[AGENT]}'s {w[OP]} of v{w[V]}"


class _Key:
    """What the checker remembers about one key."""

    __slots__ = ("cur", "deleted", "last", "last_clock", "leases", "path", "reads", "recent")

    def __init__(self) -> None:
        self.cur = 0
        self.deleted = False
        self.last: _W | None = None
        self.last_clock: dict[str, int] | None = None
        self.recent: dict[int, _W] = {}
        # The ancestry of the current version (newest last): the versions
        # whose changes the current value contains, through based_on links.
        self.path: list[list[int]] = []
        self.leases: dict[Any, _Lease] | None = None
        # agent -> (version, time) of its last read of this key
        self.reads: dict[str, tuple[int, str]] | None = None


class _Lease:
    __slots__ = (
        "agent", "end_reason", "end_rev", "end_time", "expires", "mode", "rev", "token",
        "unreadable",
    )

    def __init__(self, token: Any, agent: str, rev: int, mode: str) -> None:
        self.token = token
        self.agent = agent
        self.rev = rev
        self.mode = mode
        self.expires: float | None = None
        self.end_time: str | None = None
        self.end_rev: int | None = None
        self.end_reason: str | None = None
        # The line of an acquire or renew whose deadline could not be read
        # (skipped in lenient mode): writes under this token are undecidable.
        self.unreadable: int | None = None


class NativeChecker:
    """The one-pass checker for accord histories (events in revision order).

    Feed events with :meth:`feed`, then call :meth:`finish`. Used by
    :func:`check`; exposed for tools that check a live stream.
    """

    def __init__(
        self,
        stream: EventStream | None = None,
        *,
        window_versions: int = WINDOW_VERSIONS,
        window_revisions: int = WINDOW_REVISIONS,
        max_reported: int = MAX_REPORTED,
        shard: int = 0,
        shards: int = 1,
    ) -> None:
        self.stream = stream or EventStream([], lenient=False)
        # With several shards this checker owns the keys (and idempotency
        # keys and request ids) whose CRC-32 falls in its share; it still
        # reads every event, for the order checks and each agent's events.
        self.shard = shard
        self.shards = shards
        self.window_versions = window_versions
        self.window_revisions = window_revisions
        self.max_reported = max_reported
        self.keys: dict[str, _Key] = {}
        self.agent_rev: dict[str, int] = {}
        self.queue: deque[tuple[int, _Key, int]] = deque()
        self.idem: dict[str, tuple[int, str, str | None, int]] = {}
        self.requests: dict[str, tuple[int, str, str | None, int]] = {}
        self.last_rev = 0
        self.next_sweep = window_revisions
        self.events = 0
        self.writes = 0
        self.refused = 0
        self.lost_final = 0
        self.approximate = False
        self.gaps = 0
        self.result = CheckResult(format="accord")
        self.counts = dict.fromkeys(ANOMALY_NAMES, 0)
        self.unknown_counts = dict.fromkeys(ANOMALY_NAMES, 0)

    # --- reporting --------------------------------------------------------

    def _report(self, anomaly_name: str) -> bool:
        """Count one anomaly; True if it should be built in full."""
        n = self.counts[anomaly_name] = self.counts[anomaly_name] + 1
        return n <= self.max_reported

    def _add(self, anomaly: Anomaly) -> None:
        self.result.anomalies.append(anomaly)

    def _unknown(self, anomaly: Anomaly) -> None:
        """Record a finding the history can neither confirm nor rule out."""
        n = self.unknown_counts[anomaly.name] = self.unknown_counts[anomaly.name] + 1
        if n <= self.max_reported:
            self.result.unknown.append(anomaly)

    # --- the pass ---------------------------------------------------------

    def feed(self, line: int, ev: dict[str, Any]) -> bool:
        """Take one event; returns False if it was skipped (lenient mode).

        A field that decides a finding and cannot be read (a time that is not
        RFC 3339, a lease without a readable deadline, a version that is not
        an integer) makes the line malformed: :class:`HistoryFormatError`, or
        in lenient mode a skipped line (a write under a lease whose deadline
        was unreadable is then an *unknown* finding, never clean).
        """
        # The hot path of the checker: one call per event, so it binds what it
        # uses to locals and looks each field up once.
        # Exports carry every field, so plain subscripts (cheaper than get)
        # serve them; histories written by others may leave fields out.
        try:
            rev = ev["rev"]
            op = ev["op"]
            agent = ev["agent"]
            key: Any = ev["key"]
            version: Any = ev["version"]
            time: Any = ev["time"]
        except KeyError:
            get = ev.get
            rev = get("rev")
            op = get("op")
            agent = get("agent")
            key = get("key")
            version = get("version")
            time = get("time")
        if (
            type(rev) is not int
            or rev <= self.last_rev
            or type(op) is not str
            or op not in NATIVE_OPS
            or type(agent) is not str
            or not agent
        ):
            return self._reject(line, ev, rev, op, agent)
        try:
            _fromiso(time)
        except (TypeError, ValueError):
            return self._bad_time(line, "time", time)
        keyed = op in KEYED
        if keyed and (
            type(key) is not str
            or not key
            or (version is not None and type(version) is not int)
        ):
            if type(key) is not str or not key:
                self.stream.fail(line, f"a {op} event without a 'key'.")
            else:
                self.stream.fail(line, f"'version' must be an integer or null, not {version!r}.")
            return False
        fields = None
        lease_info = None
        if keyed:
            if op == "read":
                started = ev.get("start")
                if started is not None:
                    try:
                        _fromiso(started)
                    except (TypeError, ValueError):
                        return self._bad_time(line, "start", started)
            else:
                outcome = ev.get("outcome", "ok")
                if outcome == "ok":
                    if version is not None:
                        fields = self._write_fields(line, ev)
                        if fields is None:
                            return False
                elif type(outcome) is not str:
                    self.stream.fail(
                        line,
                        f"'outcome' must be a word such as ok or conflict, not {outcome!r}: it "
                        "says whether the write took effect.",
                    )
                    return False
        elif op[:6] == "lease_" and ev.get("outcome", "ok") == "ok":
            lease_info = self._lease_fields(line, ev, op, key, time)
            if lease_info is None:
                return False
        self.last_rev = rev
        self.events += 1
        agent_rev = self.agent_rev
        before = agent_rev.get(agent)
        agent_rev[agent] = rev
        if self.shards > 1 and type(key) is str and crc32(key.encode()) % self.shards != self.shard:
            # Another shard's key: only the ids this shard owns are its business.
            if fields is not None:
                self._ids(line, ev, rev, agent, key)
            if rev >= self.next_sweep:
                self._sweep(rev)
            return True
        if keyed:
            if op == "read":
                if version is not None:
                    self._read(line, ev, rev, agent, key, before, version)
            elif fields is not None:
                self._commit(line, ev, rev, op, agent, key, version, time, fields)
            else:
                self.refused += 1
        elif lease_info is not None:
            self._lease(lease_info, rev, op, agent, key, time)
        if rev >= self.next_sweep:
            self._sweep(rev)
        return True

    def _bad_time(self, line: int, name: str, value: Any) -> bool:
        if value is None:
            self.stream.fail(
                line,
                f"an event without '{name}': the checker needs it for lease deadlines, stale "
                "reads and explanations. Give an RFC 3339 time such as "
                "2026-11-28T19:00:00.123456Z.",
            )
        else:
            self.stream.fail(
                line,
                f"'{name}' must be an RFC 3339 time such as 2026-11-28T19:00:00.123456Z, not "
                f"{value!r}.",
            )
        return False

    def _write_fields(self, line: int, ev: dict[str, Any]) -> tuple[Any, ...] | None:
        """The fields of a committed write that decide findings, or None if one is unreadable.

        Returns ``(prev, based_on, check, lease, clock, idem, request)``.
        """
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
            why = (
                f"'prev' must be the version this write replaced (an integer) or null, not "
                f"{prev!r}."
            )
        elif based is not None and type(based) is not int:
            why = (
                f"'based_on' must be the version the writer had read (an integer) or null, not "
                f"{based!r}."
            )
        elif lease is not None and type(lease) is not int and type(lease) is not str:
            why = (
                f"'lease' must be the lease's token (an integer or a string) or null, not "
                f"{lease!r}."
            )
        elif clock is not None and type(clock) is not dict:
            why = (
                f"'clock' must be a vector clock (an object of agent: count) or null, not "
                f"{clock!r}."
            )
        if why is not None:
            self.stream.fail(line, why)
            return None
        return prev, based, check_kind or "none", lease, clock, idem, request

    def _reject(self, line: int, ev: dict[str, Any], rev: Any, op: Any, agent: Any) -> bool:
        if type(rev) is not int:
            if is_foreign(ev):
                self.stream.fail(
                    line,
                    "a foreign event (no rev) in an accord history; a history is either all "
                    "accord events or all foreign events.",
                )
            else:
                self.stream.fail(line, f"missing or non-integer 'rev' ({rev!r}).")
        elif rev <= self.last_rev:
            self.stream.fail(
                line,
                f"revision {rev} comes after revision {self.last_rev}: events are out of "
                "revision order. Sort the file by rev (accord export writes it in order).",
            )
        elif type(op) is not str or op not in NATIVE_OPS:
            self.stream.fail(
                line,
                f"unknown op {op!r}; expected one of {', '.join(sorted(NATIVE_OPS))}.",
            )
        else:
            self.stream.fail(line, f"missing or invalid 'agent' ({agent!r}).")
        return False

    def _commit(
        self, line: int, ev: dict[str, Any], rev: int, op: str, agent: str, key: str,
        version: int, time: str, fields: tuple[Any, ...],
    ) -> None:
        prev, based, check_kind, lease, clock, idem, request = fields
        k = self.keys.get(key)
        if k is None:
            k = self.keys[key] = _Key()
        if prev is None:
            prev = k.cur
        elif k.last is not None and prev != k.cur:
            self.gaps += 1
        read_time = None
        if based is not None and k.reads is not None:
            held = k.reads.get(agent)
            if held is not None and held[0] == based:
                read_time = held[1]
        # The record of this version (see _new_w; built inline: this is hot).
        w = [
            version, rev, time, agent, op, prev, based, check_kind, lease, line, read_time,
            prev if based is None else based, False, None,
        ]
        self.writes += 1
        last = k.last

        lost = based is not None and based < prev
        if lost and k.deleted:
            # Re-creating a deleted key while believing it absent replaces an
            # absence with a value: nothing anyone wrote is erased.
            basis = k.recent.get(based) if based else None
            if based == 0 or (basis is not None and basis[OP] == "delete"):
                lost = False
                w[PARENT] = prev
        if lost:
            if self._report("lost-update"):
                self._add(self._lost_update(key, k, w, based, prev))
        elif (
            # A write that names the version it replaced (based_on == prev)
            # knew that version: it came after it. Only a write with no basis
            # can race; its vector clock says whether it had seen the write
            # it replaced, and a newer lease token orders it after the holder
            # of the older one.
            based is None
            and last is not None
            and last[AGENT] != agent
            and clock
            and k.last_clock
            and not _lease_after(lease, last[LEASE])
        ):
            ordered = _clock_leq(k.last_clock, clock)
            if ordered is None:
                self._unknown(
                    Anomaly(
                        name="concurrent-writes",
                        key=key,
                        certain=False,
                        explanation=(
                            f"Unknown: {agent}'s {op} of {key} v{version} (rev {rev}) replaced "
                            f"{_label(last)} (rev {last[REV]}) without having read it, and their "
                            f"vector clocks cannot be compared (an entry that is not an integer: "
                            f"{_clock_text(k.last_clock)} and {_clock_text(clock)}). Whether the "
                            "writer had seen the write it replaced is undecided: fix the clocks."
                        ),
                        events=(_summary(last, key), _summary(w, key)),
                        agents=(last[AGENT], agent),
                    )
                )
            elif not ordered and self._report("concurrent-writes"):
                self._add(self._concurrent(key, last, w, k.last_clock, clock))

        path = k.path
        if path and path[-1][1] == w[PARENT]:
            # The common case: built on the current version, the path grows.
            run = path[-1]
            if run[1] == version - 1:
                run[1] = version
            else:
                path.append([version, version])
            w[ONPATH] = True
        else:
            self._ancestry(k, w)
        k.cur = version
        k.deleted = op == "delete"
        k.last = w
        k.last_clock = clock
        recent = k.recent
        recent[version] = w
        self.queue.append((rev, k, version))
        if len(recent) > self.window_versions:
            self._evict(recent, recent[next(iter(recent))])

        if idem is not None or request is not None:
            self._ids(line, ev, rev, agent, key)
        if lease is not None and k.leases is not None:
            self._fence(line, ev, k, key, lease, agent, time, rev)

    def _ids(self, line: int, ev: dict[str, Any], rev: int, agent: str, key: str) -> None:
        """Record a committed write's idempotency key and request id (duplicate-apply)."""
        for field_name, what, seen in (
            ("idem", "idempotency key", self.idem),
            ("request", "request", self.requests),
        ):
            ident = ev.get(field_name)
            if ident is None:
                continue
            if self.shards > 1 and crc32(str(ident).encode()) % self.shards != self.shard:
                continue
            self._once(seen, what, ident, line, ev, rev, agent, key)

    def _evict(self, recent: dict[int, _W], w: _W) -> None:
        del recent[w[V]]
        if w[LOSTBY] is not None and w[OP] != "delete":
            self.lost_final += 1

    def _ancestry(self, k: _Key, w: _W) -> None:
        """Move the current version's ancestry to ``w``'s.

        The current value contains the changes of exactly the versions on the
        ancestry path. A write based on an older version drops the versions
        above its basis from the path (their changes are now missing); a
        write based on a version that had been dropped brings that version's
        own ancestry back. What is off the path at the end was lost. The path
        is kept as runs of consecutive versions, so it costs memory per gap
        (per lost update), not per write.
        """
        path = k.path
        recent = k.recent
        parent = w[PARENT]
        if path and path[-1][1] != parent:
            pw = recent.get(parent)
            if pw is not None and not pw[ONPATH]:
                # Built on a version that had been erased: its ancestry comes back.
                branch = []
                x: _W | None = pw
                while x is not None and not x[ONPATH]:
                    branch.append(x)
                    x = recent.get(x[PARENT]) if x[PARENT] != x[V] else None
                if x is None:
                    # The erased branch reaches below the window: its lower
                    # part cannot be brought back exactly.
                    self.approximate = True
                    self._drop(k, w, branch[-1][PARENT])
                else:
                    self._drop(k, w, x[V])
                for b in reversed(branch):
                    b[ONPATH] = True
                    b[LOSTBY] = None
                    _push(path, b[V])
            else:
                if pw is None and parent > 0 and not _on_runs(path, parent):
                    self.approximate = True
                self._drop(k, w, parent)
        _push(path, w[V])
        w[ONPATH] = True

    def _drop(self, k: _Key, w: _W, floor: int) -> None:
        """Take every version above ``floor`` off the ancestry path: ``w`` erased them."""
        path = k.path
        recent = k.recent
        oldest = next(iter(recent)) if recent else None
        while path and path[-1][1] > floor:
            run = path[-1]
            lo = max(run[0], floor + 1)
            v = run[1]
            while v >= lo and oldest is not None and v >= oldest:
                x = recent.get(v)
                if x is not None:
                    x[ONPATH] = False
                    if x[LOSTBY] is None:
                        x[LOSTBY] = w[V]
                v -= 1
            if v >= lo:
                # Versions already forgotten (outside the window) but still on
                # the path: their changes are lost now; count them.
                self.lost_final += v - lo + 1
            if lo > run[0]:
                run[1] = lo - 1
                break
            path.pop()

    def _read(
        self,
        line: int,
        ev: dict[str, Any],
        rev: int,
        agent: str,
        key: str,
        before: int | None,
        version: int,
    ) -> None:
        k = self.keys.get(key)
        if k is None:
            return  # nothing was ever written to it: nothing to be stale against
        time = ev.get("time") or ""
        if type(time) is not str:
            time = ""
        if k.reads is None:
            k.reads = {}
        k.reads[agent] = (version, time)
        if version >= k.cur or not k.recent:
            return  # nothing newer than what it read was ever committed
        started = ev.get("start")
        newest: _W | None = None
        if type(started) is str and started:
            # The read says when it began: every version committed before
            # that (same store clock, same format) was acknowledged before it.
            for w in reversed(k.recent.values()):
                if w[TIME] and w[TIME] < started:
                    newest = w
                    break
        elif before is not None:
            # Otherwise the read began after the agent's previous event
            # (program order; an agent's operations are taken as sequential),
            # so every version committed before that event was acknowledged
            # before the read began: the read must return it or something newer.
            for w in reversed(k.recent.values()):
                if w[REV] < before:
                    newest = w
                    break
        if newest is None:
            return
        expected = 0 if newest[OP] == "delete" else newest[V]
        if version == expected or (version > newest[V]):
            return
        if version == 0 and newest[OP] == "delete":
            return
        if not self._report("stale-read"):
            return
        read_ev = {
            "rev": rev,
            "time": time,
            "agent": agent,
            "op": "read",
            "key": key,
            "version": version,
            "line": line,
        }
        got = "absent" if version == 0 else f"v{version}"
        self._add(
            Anomaly(
                name="stale-read",
                key=key,
                explanation=(
                    f"Let W = {_label(newest)} of {key} (rev {newest[REV]}, committed at "
                    f"{clock_time(newest[TIME])}) and R = {agent}'s read of {key} (rev {rev}). "
                    f"W was acknowledged before {agent}'s previous operation (rev {before}), "
                    f"so before R began; yet R returned {got}, older than W's v"
                    f"{newest[V]}. R read stale state."
                ),
                events=(_summary(newest, key), read_ev),
                agents=tuple(dict.fromkeys((newest[AGENT], agent))),
                window=(newest[TIME], time),
            )
        )

    def _lease_fields(
        self, line: int, ev: dict[str, Any], op: str, key: Any, time: str
    ) -> tuple[Any, float | None, str] | None:
        """A committed lease event's token, deadline and mode; None if unreadable.

        The deadline decides whether a write under the lease came too late,
        so an acquire or renew must say it: ``expires`` (a time) or ``ttl``
        (seconds from the event's ``time``).
        """
        token = ev.get("lease")
        if type(token) is not int and type(token) is not str:
            self.stream.fail(
                line,
                f"a {op} needs 'lease': the lease's token (an integer or a string), not {token!r}.",
            )
            return None
        if type(key) is not str or not key:
            self.stream.fail(line, f"a {op} event without a 'key' (the key the lease is on).")
            return None
        mode = ev.get("mode")
        if mode is None:
            mode = "exclusive"
        elif mode not in ("exclusive", "shared"):
            self.stream.fail(line, f"'mode' must be exclusive or shared, not {mode!r}.")
            return None
        if op not in ("lease_acquire", "lease_renew"):
            return token, None, mode
        expires = ev.get("expires")
        ttl = ev.get("ttl")
        why = None
        deadline: float | None = None
        if expires is not None:
            try:
                deadline = parse_time(expires)
            except ValueError:
                why = (
                    f"'expires' must be a time (RFC 3339, or seconds since the epoch), not "
                    f"{expires!r}."
                )
        elif ttl is None:
            why = (
                f"a {op} without 'ttl' (seconds from its time) or 'expires' (a time): without a "
                "deadline the checker cannot tell whether a write under this lease came too late."
            )
        elif (
            type(ttl) not in (int, float)
            or not math.isfinite(ttl)
            or ttl < 0
        ):
            why = f"'ttl' must be a number of seconds (0 or more), not {ttl!r}."
        else:
            deadline = parse_time(time)
            assert deadline is not None
            deadline += ttl
        if why is None:
            return token, deadline, mode
        self.stream.fail(line, why)
        # Lenient mode skipped the line; a write under this token must not
        # then pass as clean: remember that its deadline could not be read.
        if not self.shards > 1 or crc32(key.encode()) % self.shards == self.shard:
            k = self.keys.get(key)
            if k is None:
                k = self.keys[key] = _Key()
            if k.leases is None:
                k.leases = {}
            lease = k.leases.get(token)
            if lease is None:
                lease = k.leases[token] = _Lease(token, ev.get("agent") or "?", 0, mode)
            lease.unreadable = line
        return None

    def _lease(
        self,
        info: tuple[Any, float | None, str],
        rev: int,
        op: str,
        agent: str,
        key: str,
        time: str,
    ) -> None:
        token, deadline, mode = info
        k = self.keys.get(key)
        if k is None:
            k = self.keys[key] = _Key()
        if k.leases is None:
            k.leases = {}
        leases = k.leases
        lease = leases.get(token)
        if op == "lease_acquire" or (op == "lease_renew" and lease is None):
            if lease is None:
                lease = leases[token] = _Lease(token, agent, rev, mode)
            if mode != "shared":
                # A newer exclusive grant supersedes every older token.
                for other in leases.values():
                    if other is not lease and other.end_reason is None and _older(other, lease):
                        other.end_reason = f"superseded by token {token} granted to {agent}"
                        other.end_time = time
                        other.end_rev = rev
            if len(leases) > 64:
                for old in list(leases)[:-32]:
                    del leases[old]
        if lease is None:
            return
        if op in ("lease_acquire", "lease_renew"):
            lease.expires = deadline
            lease.unreadable = None
        elif op == "lease_release" and lease.end_reason is None:
            lease.end_reason = f"released by {agent}"
            lease.end_time = time
            lease.end_rev = rev
        elif op == "lease_expire" and lease.end_reason is None:
            lease.end_reason = "expired"
            lease.end_time = time
            lease.end_rev = rev

    def _fence(
        self,
        line: int,
        ev: dict[str, Any],
        k: _Key,
        key: str,
        token: Any,
        agent: str,
        time: str,
        rev: int,
    ) -> None:
        assert k.leases is not None
        lease = k.leases.get(token)
        if lease is None:
            return
        why = None
        if lease.unreadable is not None and (lease.end_rev is None or lease.end_rev >= rev):
            self._unknown(
                Anomaly(
                    name="fenced-write-accepted",
                    key=key,
                    certain=False,
                    explanation=(
                        f"Unknown: {agent}'s write of {key} v{ev.get('version')} (rev {rev}, at "
                        f"{clock_time(time)}) was accepted under lease token {token}, whose "
                        f"deadline could not be read (line {lease.unreadable} was skipped). "
                        "Whether the lease was still held is undecided: fix that line and "
                        "check again."
                    ),
                    events=({"rev": rev, "time": time, "agent": agent, "op": ev.get("op"),
                             "key": key, "version": ev.get("version"), "lease": token,
                             "line": line},),
                    agents=tuple(dict.fromkeys((lease.agent, agent))),
                    details={"token": token, "unreadable_line": lease.unreadable},
                )
            )
            return
        if lease.end_reason is not None and lease.end_rev is not None and lease.end_rev < rev:
            why = f"the lease had been {lease.end_reason} at {clock_time(lease.end_time)}"
        elif lease.expires is not None:
            at = parse_time(time)
            # Event times are printed to the microsecond, so a deadline and a
            # commit time taken from them may each be short by up to 1 us.
            if at is not None and at > lease.expires + 1e-5:
                why = f"the lease had expired {at - lease.expires:.3f} s earlier"
        if why is None or not self._report("fenced-write-accepted"):
            return
        w_ev = {k_: ev.get(k_) for k_ in ("rev", "time", "agent", "op", "key", "version", "lease")}
        w_ev["line"] = line
        self._add(
            Anomaly(
                name="fenced-write-accepted",
                key=key,
                explanation=(
                    f"{agent}'s write of {key} v{ev.get('version')} (rev {rev}, at "
                    f"{clock_time(time)}) was accepted under lease token {token}, but {why}. "
                    "The store should have fenced it off: the writer no longer held the key."
                ),
                events=(w_ev,),
                agents=tuple(dict.fromkeys((lease.agent, agent))),
                window=(lease.end_time or "", time) if lease.end_time else None,
                details={"token": token, "reason": why},
            )
        )

    def _once(
        self,
        seen: dict[str, tuple[int, str, str | None, int]],
        what: str,
        ident: Any,
        line: int,
        ev: dict[str, Any],
        rev: int,
        agent: str,
        key: str,
    ) -> None:
        ident = str(ident)
        first = seen.get(ident)
        if first is None:
            seen[ident] = (rev, agent, key, line)
            return
        if not self._report("duplicate-apply"):
            return
        f_rev, f_agent, f_key, f_line = first
        self._add(
            Anomaly(
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
        )

    def _sweep(self, rev: int) -> None:
        """Forget the versions older than the revision window.

        Every remembered version is queued in commit order, so forgetting
        costs time per forgotten version, not per key.
        """
        horizon = rev - self.window_revisions
        self.next_sweep = rev + self.window_revisions // 2
        queue = self.queue
        while queue and queue[0][0] < horizon:
            _, k, version = queue.popleft()
            w = k.recent.get(version)
            if w is not None and w is not k.last:
                self._evict(k.recent, w)

    # --- explanations -------------------------------------------------------

    def _lost_update(self, key: str, k: _Key, w: _W, based: int, prev: int) -> Anomaly:
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
        events = (*tuple(_summary(x, key) for x in erased[:20]), _summary(w, key))
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
                "erased": [
                    {"version": x[V], "agent": x[AGENT], "rev": x[REV]} for x in erased[:100]
                ],
                "erased_count": prev - based,
            },
        )

    def _concurrent(
        self, key: str, a: _W, b: _W, ca: dict[str, int], cb: dict[str, int]
    ) -> Anomaly:
        return Anomaly(
            name="concurrent-writes",
            key=key,
            explanation=(
                f"Let W1 = {a[AGENT]}'s {a[OP]} of {key} v{a[V]} (rev {a[REV]}, clock "
                f"{_clock_text(ca)}) and W2 = {b[AGENT]}'s {b[OP]} of {key} v{b[V]} "
                f"(rev {b[REV]}, clock {_clock_text(cb)}). Neither clock includes the other: "
                f"{b[AGENT]} replaced W1 without having seen it. Nothing was lost this time "
                f"(W2 was based on v{b[BASED] if b[BASED] is not None else '?'}), but the "
                "writes raced; guard them with an expected version, a lease or a queue."
            ),
            events=(_summary(a, key), _summary(b, key)),
            agents=(a[AGENT], b[AGENT]),
            window=(a[TIME], b[TIME]),
        )

    # --- the end ------------------------------------------------------------

    def finish(self) -> CheckResult:
        """Close the pass and return the result."""
        lost = self.lost_final
        for k in self.keys.values():
            for w in k.recent.values():
                if w[LOSTBY] is not None and w[OP] != "delete":
                    lost += 1
        r = self.result
        r.events = self.events
        r.keys = len(self.keys)
        r.agents = len(self.agent_rev)
        r.writes = self.writes
        r.counts = self.counts
        r.unknown_counts = self.unknown_counts
        r.lost_writes = lost
        r.notes += notes(
            self.gaps,
            self.approximate,
            self.counts,
            self.window_versions,
            self.window_revisions,
            self.max_reported,
        )
        return r


def notes(
    gaps: int,
    approximate: bool,
    counts: dict[str, int],
    window_versions: int,
    window_revisions: int,
    max_reported: int,
) -> list[str]:
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


def _lease_after(token: Any, other: Any) -> bool:
    """True if lease ``token`` was granted after ``other`` (both known tokens)."""
    try:
        return token is not None and other is not None and bool(token > other)
    except TypeError:
        return False


def _clock_leq(a: dict[str, Any], b: dict[str, Any]) -> bool | None:
    """True if vector clock ``a`` happened before or equals ``b``; None if an entry is
    not a number (the clocks cannot be compared)."""
    for clock in (a, b):
        for n in clock.values():
            if type(n) is not int:
                return None
    return all(n <= b.get(who, 0) for who, n in a.items())


def _push(path: list[list[int]], v: int) -> None:
    if path and path[-1][1] == v - 1:
        path[-1][1] = v
    else:
        path.append([v, v])


def _on_runs(path: list[list[int]], v: int) -> bool:
    i = bisect_right(path, [v, _BIG]) - 1
    return i >= 0 and path[i][0] <= v <= path[i][1]


_BIG = 1 << 62


def _older(a: _Lease, b: _Lease) -> bool:
    try:
        return bool(a.token < b.token)
    except TypeError:
        return a.rev < b.rev


def _clock_text(clock: dict[str, int]) -> str:
    return "{" + ", ".join(f"{a}: {n}" for a, n in sorted(clock.items())) + "}"
