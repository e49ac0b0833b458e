"""The one-pass checker of accord histories (events in revision order).

:class:`NativeChecker` reads ``accord export`` events one at a time and
finds lost updates, concurrent writes, writes accepted under a lapsed lease,
duplicate applies and stale reads, in memory bounded by the number of keys
and agents (not by the history's length): per key it keeps the last
:data:`WINDOW_VERSIONS` versions, and nothing older than
:data:`WINDOW_REVISIONS` revisions.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from typing import Any
from zlib import crc32

from .format import NATIVE_OPS, EventStream, clock_time, parse_time
from .native_explain import (
    concurrent,
    duplicate_apply,
    fenced_write,
    lost_update,
    notes,
    stale_read,
    unknown_concurrent,
)
from .native_fields import LeaseInfo, bad_time, lease_fields, rejected, write_fields
from .native_state import (
    AGENT,
    KEYED,
    LEASE,
    LOSTBY,
    MUTATING,
    ONPATH,
    OP,
    PARENT,
    REV,
    TIME,
    WINDOW_REVISIONS,
    WINDOW_VERSIONS,
    KeyState,
    LeaseState,
    V,
    W,
    clock_leq,
    lease_after,
    older,
    on_runs,
    push,
)
from .result import ANOMALY_NAMES, MAX_REPORTED, Anomaly, CheckResult

__all__ = [
    "KEYED",
    "MUTATING",
    "WINDOW_REVISIONS",
    "WINDOW_VERSIONS",
    "NativeChecker",
    "notes",
]

_fromiso = datetime.fromisoformat


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
        self.keys: dict[str, KeyState] = {}
        self.agent_rev: dict[str, int] = {}
        self.queue: deque[tuple[int, KeyState, int]] = deque()
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
            return self._fail(line, rejected(ev, rev, op, agent, self.last_rev))
        try:
            _fromiso(time)
        except (TypeError, ValueError):
            return self._fail(line, bad_time("time", time))
        keyed = op in KEYED
        if keyed and (
            type(key) is not str or not key or (version is not None and type(version) is not int)
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
                        return self._fail(line, bad_time("start", started))
            else:
                outcome = ev.get("outcome", "ok")
                if outcome == "ok":
                    if version is not None:
                        fields, why = write_fields(ev)
                        if why is not None:
                            return self._fail(line, why)
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

    def _fail(self, line: int, why: str) -> bool:
        """Report line ``line`` malformed (``why``): raise, or skip it (lenient)."""
        self.stream.fail(line, why)
        return False

    def _commit(
        self,
        line: int,
        ev: dict[str, Any],
        rev: int,
        op: str,
        agent: str,
        key: str,
        version: int,
        time: str,
        fields: tuple[Any, ...],
    ) -> None:
        prev, based, check_kind, lease, clock, idem, request = fields
        k = self.keys.get(key)
        if k is None:
            k = self.keys[key] = KeyState()
        if prev is None:
            prev = k.cur
        elif k.last is not None and prev != k.cur:
            self.gaps += 1
        read_time = None
        if based is not None and k.reads is not None:
            held = k.reads.get(agent)
            if held is not None and held[0] == based:
                read_time = held[1]
        # The record of this version (see native_state.W; built inline: this is hot).
        w = [
            version,
            rev,
            time,
            agent,
            op,
            prev,
            based,
            check_kind,
            lease,
            line,
            read_time,
            prev if based is None else based,
            False,
            None,
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
                self._add(lost_update(key, k, w, based, prev))
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
            and not lease_after(lease, last[LEASE])
        ):
            ordered = clock_leq(k.last_clock, clock)
            if ordered is None:
                self._unknown(unknown_concurrent(key, last, w, k.last_clock, clock))
            elif not ordered and self._report("concurrent-writes"):
                self._add(concurrent(key, last, w, k.last_clock, clock))

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

    def _evict(self, recent: dict[int, W], w: W) -> None:
        del recent[w[V]]
        if w[LOSTBY] is not None and w[OP] != "delete":
            self.lost_final += 1

    def _ancestry(self, k: KeyState, w: W) -> None:
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
                x: W | None = pw
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
                    push(path, b[V])
            else:
                if pw is None and parent > 0 and not on_runs(path, parent):
                    self.approximate = True
                self._drop(k, w, parent)
        push(path, w[V])
        w[ONPATH] = True

    def _drop(self, k: KeyState, w: W, floor: int) -> None:
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
        newest: W | None = None
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
        self._add(stale_read(key, newest, read_ev, before, version))

    def _lease_fields(
        self, line: int, ev: dict[str, Any], op: str, key: Any, time: str
    ) -> LeaseInfo | None:
        """A committed lease event's token, deadline and mode; None if unreadable."""
        info, why = lease_fields(ev, op, key, time)
        if why is None:
            return info
        self.stream.fail(line, why)
        if info is None:
            return None
        # Lenient mode skipped the line; a write under this token must not
        # then pass as clean: remember that its deadline could not be read.
        token, _, mode = info
        if not self.shards > 1 or crc32(key.encode()) % self.shards == self.shard:
            k = self.keys.get(key)
            if k is None:
                k = self.keys[key] = KeyState()
            if k.leases is None:
                k.leases = {}
            lease = k.leases.get(token)
            if lease is None:
                lease = k.leases[token] = LeaseState(token, ev.get("agent") or "?", 0, mode)
            lease.unreadable = line
        return None

    def _lease(
        self,
        info: LeaseInfo,
        rev: int,
        op: str,
        agent: str,
        key: str,
        time: str,
    ) -> None:
        token, deadline, mode = info
        k = self.keys.get(key)
        if k is None:
            k = self.keys[key] = KeyState()
        if k.leases is None:
            k.leases = {}
        leases = k.leases
        lease = leases.get(token)
        if op == "lease_acquire" or (op == "lease_renew" and lease is None):
            if lease is None:
                lease = leases[token] = LeaseState(token, agent, rev, mode)
            if mode != "shared":
                # A newer exclusive grant supersedes every older token.
                for other in leases.values():
                    if other is not lease and other.end_reason is None and older(other, lease):
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
        k: KeyState,
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
            self._unknown(fenced_write(line, ev, key, token, agent, time, rev, lease, None))
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
        self._add(fenced_write(line, ev, key, token, agent, time, rev, lease, why))

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
        self._add(duplicate_apply(what, ident, first, line, ev, rev, agent, key))

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
