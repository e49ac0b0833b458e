"""16 real processes contend on one PostgreSQL store.

* 16 x 200 update() increments of one hot counter end at exactly 3,200, with
  a history of versions 1..3,201 where every write builds on its predecessor;
* the same with 16 counters, one per process;
* the blind-write baseline of the same shape loses increments (so the test
  can fail);
* several hosts: the hot-counter run again with the agents in two network
  namespaces of their own, reaching PostgreSQL over veth links and a bridge
  (each worker checks the address the server sees it from). Where the
  machine cannot make namespaces (not root, no ``ip``), the agents go
  through a TCP relay with injected latency instead (also when
  ``ACCORD_TEST_NO_NETNS=1``); the test says which ran in its output (``-s``).
"""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import queue
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import accord

from .conftest import require_postgres
from .postgres_helpers import (
    POSTGRES_URL,
    Proxy,
    increment_worker,
    ip,
    pg_ctl,
    schema_url,
    wait_for_server,
    with_host,
)

PROCS, N = 16, 200


def run(
    url_for: Callable[[int], str],
    keys: list[str],
    mode: str,
    netns_for: Callable[[int], str | None] = lambda i: None,
) -> list[tuple[str, int, str]]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(PROCS)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=increment_worker,
            args=(url_for(i), f"agent-{i}", keys[i % len(keys)], N, mode, barrier, results,
                  netns_for(i)),
        )
        for i in range(PROCS)
    ]
    for w in workers:
        w.start()
    out: list[tuple[str, int, str]] = []
    try:
        deadline = time.monotonic() + 300
        while len(out) < PROCS:
            try:
                out.append(results.get(timeout=1))
            except queue.Empty:
                dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
                assert not dead, f"workers died with exit codes {dead}"
                assert time.monotonic() < deadline, "workers did not finish in 300 s"
    finally:
        for w in workers:
            w.join(timeout=60)
            if w.is_alive():
                w.kill()
    assert [w.exitcode for w in workers] == [0] * PROCS
    return out


def seed(url: str, keys: list[str]) -> None:
    with accord.open(url) as store:
        for key in keys:
            store.session("setup").write(key, 0)


def check_chain(url: str, key: str, total: int) -> None:
    with accord.open(url) as store:
        assert store.session("check").read(key).value == total
        writes = [e for e in store.history(key=key) if e.op == "write" and e.outcome == "ok"]
        revs = [e.rev for e in store.history()]
    assert [e.version for e in writes] == list(range(1, total + 2))
    assert all(e.based_on == e.prev for e in writes[1:])
    assert revs == sorted(set(revs))


@pytest.mark.slow
def test_hot_counter_16_processes() -> None:
    with schema_url() as url:
        seed(url, ["counter"])
        results = run(lambda i: url, ["counter"], "update")
        assert [gave_up for _, gave_up, _ in results] == [0] * PROCS
        check_chain(url, "counter", PROCS * N)


@pytest.mark.slow
def test_own_counters_16_processes() -> None:
    keys = [f"counter/{i}" for i in range(PROCS)]
    with schema_url() as url:
        seed(url, keys)
        results = run(lambda i: url, keys, "update")
        assert [gave_up for _, gave_up, _ in results] == [0] * PROCS
        for key in keys:
            check_chain(url, key, N)


@pytest.mark.slow
def test_blind_writes_lose_increments() -> None:
    with schema_url() as url:
        seed(url, ["counter"])
        run(lambda i: url, ["counter"], "blind")
        with accord.open(url) as store:
            final = store.session("check").read("counter").value
            writes = [
                e for e in store.history(key="counter") if e.op == "write" and e.outcome == "ok"
            ]
    assert final < PROCS * N, "blind writes lost nothing: the stress test cannot fail"
    erased = sum(1 for e in writes[1:] if e.based_on is not None and e.based_on < e.prev)
    assert erased > 0


# --- several hosts --------------------------------------------------------------

BRIDGE, HOST_ADDR = "acbr0", "10.213.0.1"
NAMESPACES = {"acc_ns_a": "10.213.0.2", "acc_ns_b": "10.213.0.3"}
HBA_LINE = "host all all 10.213.0.0/24 trust  # accord tests: agents in network namespaces"


def _can_make_namespaces() -> str | None:
    if os.environ.get("ACCORD_TEST_NO_NETNS"):
        return "ACCORD_TEST_NO_NETNS is set"
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no ip command"
    try:
        ip("netns", "add", "acc_ns_probe")
        ip("netns", "del", "acc_ns_probe")
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"ip netns failed ({exc})"
    return None


def _teardown_namespaces() -> None:
    for ns in NAMESPACES:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
    for link in (BRIDGE, *(f"acveth{n}" for n in range(len(NAMESPACES)))):
        subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)


def _make_namespaces() -> None:
    _teardown_namespaces()
    ip("link", "add", BRIDGE, "type", "bridge")
    ip("addr", "add", f"{HOST_ADDR}/24", "dev", BRIDGE)
    ip("link", "set", BRIDGE, "up")
    for n, (ns, addr) in enumerate(NAMESPACES.items()):
        host_end, ns_end = f"acveth{n}", f"acveth{n}p"
        ip("netns", "add", ns)
        ip("link", "add", host_end, "type", "veth", "peer", "name", ns_end)
        ip("link", "set", ns_end, "netns", ns)
        ip("link", "set", host_end, "master", BRIDGE)
        ip("link", "set", host_end, "up")
        ip("-n", ns, "addr", "add", f"{addr}/24", "dev", ns_end)
        ip("-n", ns, "link", "set", ns_end, "up")
        ip("-n", ns, "link", "set", "lo", "up")


def _server_listens_on_bridge() -> bool:
    import psycopg

    try:
        with psycopg.connect(with_host(POSTGRES_URL, HOST_ADDR), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _let_server_listen_on_bridge() -> None:
    """Make PostgreSQL accept the namespaces: listen on the bridge address and
    trust its subnet. Kept afterwards (ALTER SYSTEM and one pg_hba.conf line),
    so only the first run restarts the server."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        row = conn.execute("SHOW listen_addresses").fetchone()
        hba = conn.execute("SHOW hba_file").fetchone()
        assert row is not None and hba is not None
        current = [a.strip() for a in str(row[0]).split(",") if a.strip()]
        if "*" not in current and HOST_ADDR not in current:
            value = sql.Literal(",".join([*current, HOST_ADDR]))
            conn.execute(sql.SQL("ALTER SYSTEM SET listen_addresses = {}").format(value))
        with open(str(hba[0]), encoding="utf-8") as f:
            text = f.read()
        if HBA_LINE not in text:
            with open(str(hba[0]), "a", encoding="utf-8") as f:
                f.write(("" if text.endswith("\n") else "\n") + HBA_LINE + "\n")
    result = pg_ctl("restart")
    assert result.returncode == 0, result.stderr
    wait_for_server()


@pytest.fixture
def hosts() -> Iterator[dict[str, Any]]:
    """How agents reach the server from "other hosts": namespaces, or a relay."""
    require_postgres()  # before touching the server's configuration
    problem = _can_make_namespaces()
    if problem is None:
        # Names and addresses are fixed (the server listens on HOST_ADDR), so
        # two runs on one machine take turns instead of tearing down each
        # other's namespaces.
        lock = open("/tmp/accord-netns-test.lock", "w")  # noqa: SIM115
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _make_namespaces()
            if not _server_listens_on_bridge():
                _let_server_listen_on_bridge()
            assert _server_listens_on_bridge(), "PostgreSQL does not answer on the bridge"
            names = list(NAMESPACES)
            yield {
                "how": "network namespaces over veth",
                "url": lambda base, i: with_host(base, HOST_ADDR),
                "netns": lambda i: names[i % 2],
                "peers": set(NAMESPACES.values()),
            }
        finally:
            _teardown_namespaces()
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()
    else:
        proxies = [Proxy(latency=0.001), Proxy(latency=0.002)]
        try:
            yield {
                "how": f"TCP relays with 1 and 2 ms latency (no namespaces: {problem})",
                "url": lambda base, i: proxies[i % 2].url(base),
                "netns": lambda i: None,
                "peers": {"127.0.0.1"},
            }
        finally:
            for p in proxies:
                p.close()


@pytest.mark.slow
def test_hot_counter_from_two_hosts(hosts: dict[str, Any]) -> None:
    print(f"several hosts: {hosts['how']}")
    with schema_url() as url:
        seed(url, ["counter"])
        results = run(lambda i: hosts["url"](url, i), ["counter"], "update", hosts["netns"])
        assert [gave_up for _, gave_up, _ in results] == [0] * PROCS
        # The server saw the agents come from where they were put.
        assert {peer.split("/")[0] for _, _, peer in results} == hosts["peers"]
        check_chain(url, "counter", PROCS * N)
