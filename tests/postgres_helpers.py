"""Helpers for the PostgreSQL tests: fresh schemas, a fault-injecting TCP
relay, network namespaces, and workers for spawned processes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import accord

from .conftest import POSTGRES_URL, require_postgres

CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def schema_url(base: str = POSTGRES_URL, **options: Any) -> Iterator[str]:
    """A URL naming a fresh schema, dropped afterwards."""
    require_postgres()
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    query = "&".join([f"schema={schema}", *(f"{k}={v}" for k, v in options.items())])
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}{query}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def with_host(url: str, host: str, port: int | None = None) -> str:
    """``url`` pointed at another host (and port)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    netloc = f"{user}{host}:{port or parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


class Proxy:
    """A TCP relay in front of PostgreSQL that injects faults and latency.

    ``drop_next("response")`` closes the connection instead of delivering
    the server's next answer (the write committed, the client never hears
    of it); ``drop_next("request")`` closes it instead of forwarding the
    client's next message (the write never reaches the server).
    ``refuse = True`` closes every new connection at once; ``kill_all()``
    cuts every open one. ``latency`` delays each answer by that many seconds.
    """

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432), latency: float = 0.0) -> None:
        self.target = target
        self.latency = latency
        self.refuse = False
        self.dropped = 0
        self._armed = {"request": threading.Event(), "response": threading.Event()}
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, base: str) -> str:
        return with_host(base, "127.0.0.1", self.port)

    def drop_next(self, direction: str) -> None:
        self._armed[direction].set()

    def kill_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            _close(*pair)

    def close(self) -> None:
        self._listener.close()
        self.kill_all()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.refuse:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pairs.append((client, server))
            for src, dst, direction in ((client, server, "request"), (server, client, "response")):
                threading.Thread(
                    target=self._pump, args=(src, dst, direction), daemon=True
                ).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                armed = self._armed[direction]
                if armed.is_set():
                    armed.clear()
                    self.dropped += 1
                    break
                if self.latency and direction == "response":
                    time.sleep(self.latency)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src, dst)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


# --- network namespaces ------------------------------------------------------


def enter_netns(name: str) -> None:
    """Move the calling process into network namespace ``name`` (needs root)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({name}) failed: {os.strerror(err)}")
    finally:
        os.close(fd)


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


# --- PostgreSQL server control ------------------------------------------------


def cluster() -> tuple[str, str]:
    """(version, name) of the local Debian PostgreSQL cluster."""
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    return version, "main"


def pg_ctl(action: str) -> subprocess.CompletedProcess[str]:
    version, name = cluster()
    return subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
        capture_output=True,
        text=True,
        timeout=120,
    )


def wait_for_server(timeout: float = 60) -> None:
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(POSTGRES_URL, connect_timeout=2):
                return
        except psycopg.Error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def ensure_server_running() -> None:
    """Start the cluster if it is down, and wait until it accepts connections."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=2):
            return
    except psycopg.Error:
        pass
    pg_ctl("start")
    wait_for_server()


# --- workers (run in spawned processes) -----------------------------------------


def increment_worker(
    url: str,
    agent: str,
    key: str,
    n: int,
    mode: str,
    barrier: Any,
    results: Any,
    netns: str | None = None,
) -> None:
    """Increment ``key`` ``n`` times with update() (safe) or read + blind write."""
    if netns is not None:
        enter_netns(netns)
    peer = ""
    gave_up = 0
    with accord.open(url) as store:
        backend: Any = store.backend
        with backend._pool.connection() as conn:
            row = conn.execute("SELECT inet_client_addr()::text").fetchone()
            peer = str(row[0]) if row else ""
        s = store.session(agent)
        barrier.wait(timeout=120)
        for _ in range(n):
            if mode == "update":
                try:
                    s.update(key, lambda v: (v or 0) + 1, retries=1000, max_backoff=0.2)
                except accord.RetriesExhausted:
                    gave_up += 1
            else:
                value = s.read(key).value
                s.write(key, value + 1, force=True)
    results.put((agent, gave_up, peer))


def idempotent_writer(url: str, agent: str, acks: Any, stop: Any) -> None:
    """Append 0, 1, 2, ... to ``log/<agent>`` and bump ``counter``, each call
    with its own idempotency key, repeating a call that failed until it is
    acknowledged; report each acknowledged call."""
    with accord.open(url) as store:
        s = store.session(agent)
        i = 0
        while not stop.is_set():
            for key, fn in (
                (f"log/{agent}", lambda v, i=i: [*(v or []), i]),
                ("counter", lambda v: (v or 0) + 1),
            ):
                idem = f"{agent}:{key}:{i}"
                while True:
                    try:
                        s.update(key, fn, retries=1000, max_backoff=0.2, idempotency_key=idem)
                        break
                    except accord.BackendUnavailable as exc:
                        acks.put(("unavailable", agent, str(exc)[:200]))
                acks.put(("ack", agent, idem))
            i += 1
        backend: Any = store.backend
        acks.put(("done", agent, (i, backend.retried, backend.replayed)))


def plain_writer(url: str, agent: str, acks: Any, stop: Any) -> None:
    """Append 0, 1, 2, ... to ``log/<agent>`` with update() and no idempotency
    key: every write goes through accord_put_if, whose internal token is all
    that keeps a repeat after a lost connection from applying it twice (a
    second apply would show as a number twice in the log). Reports each
    acknowledged append."""
    with accord.open(url) as store:
        s = store.session(agent)
        key = f"log/{agent}"
        s.write(key, [])
        i = 0
        while not stop.is_set():
            while True:
                try:
                    s.update(key, lambda v, i=i: [*v, i], retries=1000, max_backoff=0.2)
                    break
                except accord.BackendUnavailable as exc:
                    # Fate unknown: look before repeating, as the error says.
                    acks.put(("unavailable", agent, str(exc)[:200]))
                    if s.read(key).value[-1:] == [i]:
                        break
            acks.put(("ack", agent, f"{agent}:{i}"))
            i += 1
        backend: Any = store.backend
        acks.put(("done", agent, (i, backend.retried, backend.replayed)))
