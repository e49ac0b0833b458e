# WARNING: generated from src/accord/_watch_async.py by tools/async_to_sync.py; do not edit.
# Edit the async source and run: .venv/bin/python tools/async_to_sync.py
"""Watch: the loop that reads the history and waits, written once for both faces.

``session.watch(target, since)`` yields one :class:`~accord._core.watch.WatchEvent`
per write or delete of the watched keys committed after revision ``since``,
in revision order: none skipped, none twice. The bookkeeping (what to read,
what to wait on, the resume rule, the events) is :mod:`accord._core.watch`,
without I/O; this module is the I/O around it: it reads with
``Backend.history``, reads values with ``Backend.get``, waits with
``Backend.wait`` (on PostgreSQL the ``LISTEN`` connection) and retries while
the store is unavailable.

It is written once, as async code; the sync module (``Session.watch`` and
``accord watch``) is generated from it by ``tools/async_to_sync.py``, so the
two faces run the same loop. Where they differ:

* the sync call reads the store revision (for ``since=None``) and runs the
  session's hooks at the call; the async call checks its arguments at the
  call and does the rest at ``await session.watch(...)`` or at the first
  step of ``async for``, whichever comes first (:class:`Watching`);
* the sync face sleeps on ``stop`` (a ``threading.Event``) between retries,
  so setting it ends the watch at once; the async face sleeps on the loop.

A cancelled ``async for`` (or a ``break``) loses nothing: the caller holds
the revision of the last event it took and resumes from it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from . import params
from ._core.watch import STOP_POLL, WAIT_SLICE, WatchEvent, WatchState, backoff, unavailable
from .backends.base import CLOSED
from .errors import BackendUnavailable, UsageError

if TYPE_CHECKING:
    from .session import Session

__all__ = ["watch"]

# What ``stop`` may be, in each face's words (the async face takes either kind).
_STOP = "a threading.Event"


def watch(
    session: Session,
    key_or_prefix: str,
    since: int | None,
    prefix: bool,
    timeout: float | None,
    stop: Any,
    retry_timeout: float,
) -> Watching:
    """What :meth:`accord.Session.watch` returns (its arguments, all
    given). Arguments are checked now, not at the first step."""
    if timeout is not None:
        timeout = params.seconds(timeout, "timeout", example="30")
    retry_timeout = params.seconds(retry_timeout, "retry_timeout", example="30")
    if stop is not None and not (hasattr(stop, "is_set") and callable(stop.is_set)):
        raise UsageError(f"stop must be {_STOP} (or None), not {stop!r}. Nothing was changed.")
    now = session.store.backend.revision() if since is None else 0
    state = WatchState.open(key_or_prefix, since, prefix, now)
    session.store.writes.check(session, "watch", state.target)
    return _run(session, state, timeout, stop, retry_timeout)


Watching = Iterator[WatchEvent]  # type: ignore[misc, unused-ignore]


def _run(
    session: Session,
    state: WatchState,
    timeout: float | None,
    stop: Any,
    retry_timeout: float,
) -> Iterator[WatchEvent]:
    backend = session.store.backend
    quiet_since = time.monotonic()  # the idle timeout counts from the last change
    failed_at: float | None = None
    attempt = 0
    while True:
        if stop is not None and stop.is_set():
            return
        # One pass: read the history page by page from the position, handing
        # out each page's changes before reading the next (memory stays
        # bounded however far behind the watcher is).
        try:
            head = backend.revision()
        except BackendUnavailable as exc:
            failed_at, attempt = _retry(state, exc, failed_at, attempt, retry_timeout, stop)
            continue
        state.begin()
        done = False
        while not done:
            try:
                after, key, limit = state.read_args()
                page = [ev for ev in backend.history(after, key, limit)]
                changes, done = state.take(page)
                records = {k: backend.get(k) for k in state.keys_to_read(changes)}
                state.read(records)
            except BackendUnavailable as exc:
                failed_at, attempt = _retry(state, exc, failed_at, attempt, retry_timeout, stop)
                break
            failed_at, attempt = None, 0
            for ev in changes:
                event = state.event(ev, records)
                if event.kind == "write" and not event.superseded:
                    # Handing out a value is a read: it joins happened-before
                    # and is what a later write of this agent was based on.
                    rec = records[event.key]
                    assert rec is not None
                    session.clock.observe(rec.key, rec.lamport, rec.clock)
                    session.seen.remember(rec.key, rec.version, event.value)
                yield event
            state.handed_out()
            if changes:
                quiet_since = time.monotonic()
        if not done:
            continue  # the store went away: a new pass, from the position
        state.caught_up(head)
        read_at = time.monotonic()
        # Wait for a change (a hint), then read the history again; read it
        # again anyway every WAIT_SLICE, in case a hint was lost.
        while True:
            if stop is not None and stop.is_set():
                return
            now = time.monotonic()
            left = read_at + WAIT_SLICE - now
            if left <= 0:
                break
            if timeout is not None:
                idle = timeout - (now - quiet_since)
                if idle <= 0:
                    return
                left = min(left, idle)
            if stop is not None:
                left = min(left, STOP_POLL)
            keys, prefixes, mark = state.wait_args()
            try:
                if backend.wait(keys, prefixes, mark, left) > mark:
                    break
            except BackendUnavailable as exc:
                failed_at, attempt = _retry(state, exc, failed_at, attempt, retry_timeout, stop)
                break


def _retry(
    state: WatchState,
    exc: BackendUnavailable,
    failed_at: float | None,
    attempt: int,
    retry_timeout: float,
    stop: Any,
) -> tuple[float, int]:
    """Sleep before reading again, or raise when the store stayed away too long."""
    if exc.template == CLOSED:
        raise exc
    now = time.monotonic()
    if failed_at is None:
        failed_at = now
    waited = now - failed_at
    if waited >= retry_timeout:
        raise unavailable(state, exc, waited) from exc
    delay = min(backoff(attempt), retry_timeout - waited)
    # Setting stop ends the sleep at once.
    if stop is not None:
        stop.wait(delay)
    else:
        time.sleep(delay)
    return failed_at, attempt + 1
