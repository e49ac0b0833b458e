# WARNING: generated from src/accord/backends/_pg_listener_async.py
# by tools/async_to_sync.py; do not edit.
# Edit the async source and run: .venv/bin/python tools/async_to_sync.py
"""The PostgreSQL backend's ``LISTEN`` connection: wake-up hints for ``wait()``.

One listener per store object, shared by all its waiters, opened the first
time something waits. Writers ``NOTIFY`` the store's channel with the
revision and the keys they changed, but only while a listener is registered
in ``accord_listeners``, so a store nobody waits on pays nothing for
``NOTIFY`` (whose commit takes a lock shared by the whole cluster).

Written once, as async code: the async face reads the connection in a task
on the event loop; the sync module (``_pg_listener.py``) is generated from
this one by ``tools/async_to_sync.py`` and reads it in a daemon thread.
"""

from __future__ import annotations

import threading
from collections import deque

import psycopg

from ._pg_sql import listen, listener_sql

__all__ = ["Listener"]


class Listener:
    """One LISTEN connection per store object, shared by all its waiters.

    ``gen`` counts events (notifications and connection changes). A waiter
    takes a mark, checks the tables, then asks for what came after its
    mark. ``lost`` tells it that notifications may have been missed (the
    connection dropped, came up, or the buffer overflowed), so it must check
    the tables again: the tables are the truth, notifications only a hint.
    """

    _BUFFER = 4096

    def __init__(self, conninfo: str, channel: str, schema: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._sql_register, self._sql_unregister = listener_sql(schema)
        self._gen = 0
        self._lost_gen = 0
        self._ready = False
        self._notes: deque[tuple[int, int, list[str] | None]] = deque(maxlen=self._BUFFER)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="accord-pg-listen", daemon=True)
        self._thread.start()

    def mark(self) -> tuple[int, bool]:
        """The mark to wait after, and whether the listener is up."""
        with self._cond:
            return self._gen, self._ready

    def wait_after(
        self, gen: int, timeout: float
    ) -> tuple[list[tuple[int, list[str] | None]], int, bool, bool]:
        """Wait up to ``timeout`` for anything after mark ``gen``.

        Returns (notifications after the mark as (rev, keys or None for
        "anything"), the new mark, whether the listener is up, whether
        notifications may have been lost since the mark).
        """
        with self._cond:
            if self._gen == gen:
                self._cond.wait(timeout)
            notes = [(rev, keys) for g, rev, keys in self._notes if g > gen]
            oldest = self._notes[0][0] if self._notes else self._gen + 1
            lost = self._lost_gen > gen or (oldest > gen + 1 and self._gen > gen)
            return notes, self._gen, self._ready, lost

    def _bump(self, ready: bool) -> None:
        with self._cond:
            self._gen += 1
            self._lost_gen = self._gen
            self._ready = ready
            self._cond.notify_all()

    def _deliver(self, payload: str) -> None:
        head, _, rest = payload.partition("\n")
        try:
            rev = int(head)
        except ValueError:
            return
        keys = None if rest == "*" else rest.split("\n")
        with self._cond:
            self._gen += 1
            self._notes.append((self._gen, rev, keys))
            self._cond.notify_all()

    def _pause(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or until :meth:`stop`."""
        self._stop.wait(delay)

    def _run(self) -> None:
        delay = 0.05
        while not self._stop.is_set():
            try:
                conn = psycopg.Connection.connect(self._conninfo, autocommit=True)
            except psycopg.Error:
                self._pause(delay)
                delay = min(delay * 2, 2.0)
                continue
            try:
                with conn:
                    conn.execute(listen(self._channel))
                    # Writers notify only while a listener is registered. A
                    # listener that may not register (a read-only user) is
                    # "not ready": its waiters poll quickly instead.
                    try:
                        with conn.transaction():
                            for statement in self._sql_register:
                                conn.execute(statement)
                        registered = True
                    except psycopg.errors.InsufficientPrivilege:
                        registered = False
                    self._bump(registered)
                    delay = 0.05
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=0.25):
                            self._deliver(note.payload)
                    if registered:
                        conn.execute(self._sql_unregister)
            except psycopg.Error:
                pass
            self._bump(False)
            if not self._stop.is_set():
                self._pause(delay)
                delay = min(delay * 2, 2.0)

    def stop(self) -> None:
        """Close the connection (unregistering it) and end the task or thread."""
        self._stop.set()
        self._thread.join(5)
