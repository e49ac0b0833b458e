"""In-process backend, for tests and simulation.

URL: ``memory://`` (a new, empty store each time it is opened). It spans
threads, not processes. The clock may be replaced with any callable
returning seconds, so simulations can move time forward by hand.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, ClassVar

from ..records import Compare, Op, Record, TxnResult
from .base import Backend, first_failure, occupies, plan_ops, slot_range, touched_keys


class MemoryBackend(Backend):
    """Dicts behind one lock; ``wait`` uses a condition variable."""

    spans_processes: ClassVar[bool] = False
    spans_hosts: ClassVar[bool] = False
    clock_in_process: ClassVar[bool] = True
    """``now()`` calls the clock function and nothing else (no I/O): the
    thread adapter calls it inline, not in a worker."""

    def __init__(self, url: str = "memory://", clock: Callable[[], float] | None = None) -> None:
        self.url = url
        self._clock = clock or time.time
        self._records: dict[str, Record] = {}
        self._sorted: list[str] = []
        self._events: list[dict[str, Any]] = []
        self._changes: dict[str, list[dict[str, Any]]] = {}
        self._revision = 0
        # Last revision at which each key changed, purged rows included: wait()
        # must see a row vanish as well as change.
        self._touched: dict[str, int] = {}
        self._touched_sorted: list[str] = []
        self._cond = threading.Condition()

    def now(self) -> float:
        return self._clock()

    def get(self, key: str) -> Record | None:
        return self._records.get(key)

    def scan(self, prefix: str, limit: int | None = None) -> list[Record]:
        with self._cond:
            start = bisect.bisect_left(self._sorted, prefix)
            out: list[Record] = []
            for key in self._sorted[start:]:
                if not key.startswith(prefix):
                    break
                rec = self._records[key]
                if not rec.deleted:
                    out.append(rec)
                    if limit is not None and len(out) >= limit:
                        break
            return out

    def revision(self) -> int:
        return self._revision

    def txn(
        self, compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op] = ()
    ) -> TxnResult:
        with self._cond:
            now = self._clock()
            current: dict[str, Record | None] = {
                key: self._records.get(key) for key in touched_keys(compares, success, failure)
            }
            failed = first_failure(compares, current, now, self._vacant)
            ok = failed is None
            changes: list[dict[str, Any]] = []
            writes, events, revision = plan_ops(
                success if ok else failure,
                current,
                self._revision,
                now,
                changes,
                None if failed is None else failed.refusal,
            )
            for key, rec in writes:
                if rec is None:
                    if self._records.pop(key, None) is not None:
                        self._sorted.pop(bisect.bisect_left(self._sorted, key))
                else:
                    if key not in self._records:
                        bisect.insort(self._sorted, key)
                    self._records[key] = rec
                self._touch(key, revision)
            self._events.extend(events)
            for event in changes:
                self._changes.setdefault(event["key"], []).append(event)
            if writes or events:
                self._revision = revision
                self._cond.notify_all()
            return TxnResult(ok, self._revision, current, events, failed)

    def _vacant(self, cmp: Compare, now: float) -> bool:
        lo, hi = slot_range(cmp.key)
        keys = self._sorted
        i = bisect.bisect_left(keys, lo)
        while i < len(keys) and keys[i] < hi:
            if occupies(self._records[keys[i]], cmp, now):
                return False
            i += 1
        return True

    def history(
        self, since: int = 0, key: str | None = None, limit: int | None = None
    ) -> Iterator[dict[str, Any]]:
        with self._cond:
            revs = [e["rev"] for e in self._events]
            start = bisect.bisect_right(revs, since)
            selected = [e for e in self._events[start:] if key is None or e.get("key") == key]
        if limit is not None:
            selected = selected[:limit]
        return iter(selected)

    def changes(self, key: str) -> Iterator[dict[str, Any]]:
        with self._cond:
            found = list(self._changes.get(key, ()))
        found.reverse()
        return iter(found)

    def wait(self, keys: Sequence[str], prefixes: Sequence[str], since: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._changed(keys, prefixes, since):
                    return self._revision
                left = deadline - time.monotonic()
                if left <= 0:
                    return self._revision
                self._cond.wait(left)

    def _changed(self, keys: Sequence[str], prefixes: Sequence[str], since: int) -> bool:
        if self._revision <= since:
            return False
        if any(self._touched.get(key, 0) > since for key in keys):
            return True
        for prefix in prefixes:
            start = bisect.bisect_left(self._touched_sorted, prefix)
            for key in self._touched_sorted[start:]:
                if not key.startswith(prefix):
                    break
                if self._touched[key] > since:
                    return True
        return False

    def _touch(self, key: str, revision: int) -> None:
        if key not in self._touched:
            bisect.insort(self._touched_sorted, key)
        self._touched[key] = revision

    def purge_expired(self, prefix: str, before: float) -> int:
        with self._cond:
            doomed = [
                r.key for r in self.scan(prefix) if r.expires is not None and r.expires < before
            ]
            for key in doomed:
                del self._records[key]
                self._sorted.pop(bisect.bisect_left(self._sorted, key))
                self._revision += 1
                self._touch(key, self._revision)
            if doomed:
                self._cond.notify_all()
            return len(doomed)

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()
