"""Leases on every backend: tokens, fencing, FIFO, shared/exclusive, deadlocks, bad input."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import accord
from accord.strategies import lease as lease_mod

BOUND = 20.0  # every wait in these tests is bounded by this many seconds


def until(condition: Callable[[], bool], what: str, bound: float = BOUND) -> None:
    """Poll ``condition`` until it holds; fail (never hang) after ``bound`` seconds."""
    deadline = time.monotonic() + bound
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def until_expired(store: accord.Store, lease: accord.Lease) -> None:
    """Wait on the store's own clock until ``lease``'s deadline has passed."""
    until(lambda: store.backend.now() > lease.expires, f"{lease!r} to expire")


def waiters(store: accord.Store, key: str) -> list[str]:
    return [w.agent for w in accord.lease_status(store, key).waiters]


class Runner:
    """Run a function in a thread, keeping its result or exception."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.result: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self.thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.result = fn()
        except BaseException as exc:  # handed to the test
            self.error = exc

    def join(self) -> Runner:
        self.thread.join(BOUND)
        assert not self.thread.is_alive(), "thread did not finish in time"
        return self


# --- tokens and fencing -------------------------------------------------------------


def test_tokens_start_at_one_and_grow_per_key(open_store: Callable[..., accord.Store]) -> None:
    store = open_store()
    a = store.session("agent-a")
    tokens = []
    for _ in range(3):
        with a.lease("docs/plan.md", ttl=10) as lease:
            tokens.append(lease.token)
    assert tokens == [1, 2, 3]
    with a.lease("docs/other.md", ttl=10) as other:
        assert other.token == 1  # tokens are per key
    # A second Store object on the same backend (a restart) continues the sequence.
    again = open_store().session("agent-b")
    with again.lease("docs/plan.md", ttl=10) as lease:
        assert lease.token == 4


def test_write_under_live_lease_is_accepted_and_recorded(store: accord.Store) -> None:
    a = store.session("agent-a")
    a.write("doc", "v1")
    with a.lease("doc", ttl=10) as lease:
        doc = a.write("doc", "v2", lease=lease)  # no expect needed under a lease
        assert doc.version == 2
    events = [e for e in store.history(key="doc")]
    ops = [(e.op, e.lease, e.outcome) for e in events]
    assert ops == [
        ("write", None, "ok"),
        ("lease_acquire", 1, "ok"),
        ("write", 1, "ok"),
        ("lease_release", 1, "ok"),
    ]
    write = events[2]
    assert write.check == "lease"
    acquire = events[1]
    assert acquire.version is None and acquire.extra["mode"] == "exclusive"
    assert acquire.extra["expires"] > acquire.time  # ISO times compare as text
    assert acquire.extra["ttl"] == 10


def test_late_write_after_expiry_is_fenced(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write("doc", "v1")
    old = a.acquire("doc", ttl=0.2)
    until_expired(store, old)
    with pytest.raises(accord.Fenced, match="expired at") as info:
        a.write("doc", "late", lease=old)
    assert info.value.reason == "expired" and info.value.token == old.token
    new = b.acquire("doc", ttl=10)
    assert new.token > old.token
    with pytest.raises(accord.Fenced, match=r"now leased by agent-b \(token 2") as info:
        a.write("doc", "late again", lease=old)
    assert info.value.current_token == new.token and info.value.holder == "agent-b"
    assert a.read("doc").value == "v1"
    b.write("doc", "v2", lease=new)
    new.release()
    fenced = [e for e in store.history(key="doc") if e.outcome == "fenced"]
    assert len(fenced) == 2 and all(e.lease == old.token for e in fenced)
    # The new holder's grant recorded the old lease's expiry.
    expired = [e for e in store.history(key="doc") if e.op == "lease_expire"]
    assert len(expired) == 1
    assert expired[0].lease == old.token and expired[0].agent == "agent-a"
    assert expired[0].extra["observed_by"] == "agent-b"


def test_superseded_token_is_fenced_even_with_int_token(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    lease = a.acquire("doc", ttl=10)
    a.write("doc", "v1", lease=lease.token)  # the CLI passes an int
    lease.release()
    with b.lease("doc", ttl=10) as newer:
        with pytest.raises(accord.Fenced, match="was released"):
            a.write("doc", "stale", lease=lease.token)
        with pytest.raises(accord.Fenced, match="held by agent-b"):
            a.write("doc", "not mine", lease=newer.token)
    assert a.read("doc").value == "v1"


def test_lease_guards_only_its_own_key_and_agent(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    with a.lease("one", ttl=10) as lease_one, a.lease("two", ttl=10):
        # token 1 of "two" is also a's, but the Lease object is for "one".
        with pytest.raises(accord.Fenced, match="lease of one") as info:
            a.write("two", "x", lease=lease_one)
        assert info.value.reason == "wrong-key"
        with pytest.raises(accord.Fenced, match="belongs to agent-a"):
            b.write("one", "x", lease=lease_one)
        with pytest.raises(accord.Fenced, match="was ever granted"):
            a.write("one", "x", lease=99)
    with pytest.raises(accord.UsageError, match="positive integer"):
        a.write("one", "x", lease=0)
    assert [d.key for d in a.scan("")] == []


def test_ensure_held_and_leaving_the_block_report_a_lapse(store: accord.Store) -> None:
    a = store.session("agent-a")
    lease = a.acquire("doc", ttl=10)
    lease.ensure_held()
    assert lease.held
    lease.release()
    with pytest.raises(accord.LeaseLost, match="released"):
        lease.ensure_held()
    # Leaving the block is what raises.
    with pytest.raises(accord.LeaseLost), a.lease("doc", ttl=0.2) as short:
        until_expired(store, short)
        with pytest.raises(accord.LeaseLost, match="expired at"):
            short.ensure_held()
    # An error inside the block is not masked by the lapse.
    with pytest.raises(KeyError), a.lease("doc", ttl=0.2) as short:
        until_expired(store, short)
        raise KeyError("boom")


def test_keepalive_renews_and_never_reclaims(store: accord.Store) -> None:
    a = store.session("agent-a")
    with a.lease("doc", ttl=0.3, keepalive=True) as lease:
        first = lease.expires
        until(lambda: store.backend.now() > first + 0.3, "two TTLs to pass")
        lease.ensure_held()
        a.write("doc", "still mine", lease=lease)
        assert lease.keepalive
    assert not lease.keepalive
    renewals = [e for e in store.history(key="doc") if e.op == "lease_renew"]
    assert renewals and all(e.lease == lease.token and "expires" in e.extra for e in renewals)


def test_renew_extends_and_an_expired_lease_is_not_revived(store: accord.Store) -> None:
    a = store.session("agent-a")
    lease = a.acquire("doc", ttl=0.2)
    before = lease.expires
    after = lease.renew(ttl=5)
    assert after > before and lease.remaining() > 1
    lease.renew(ttl=0.2)
    until_expired(store, lease)
    with pytest.raises(accord.LeaseLost, match="expired"):
        lease.renew()
    assert not lease.held
    assert accord.lease_status(store, "doc").holders == []


# --- waiting ----------------------------------------------------------------------


def test_waiters_are_served_first_come_first_served(
    open_store: Callable[..., accord.Store],
) -> None:
    store = open_store()
    holder = store.session("holder")
    first = holder.acquire("hot", ttl=30)
    order: list[str] = []
    positions: dict[str, list[int]] = {}
    runners = []
    names = ["w1", "w2", "w3", "w4"]
    for i, name in enumerate(names):
        session = open_store().session(name)
        positions[name] = []

        def take(session: accord.Session = session, name: str = name) -> None:
            lease = lease_mod.acquire(
                session, "hot", ttl=30, wait=BOUND, on_wait=positions[name].append
            )
            order.append(name)
            session.write("hot", name, lease=lease)
            lease.release()

        runners.append(Runner(take))
        until(lambda i=i: len(waiters(store, "hot")) == i + 1, f"{name} to queue")
    status = accord.lease_status(store, "hot")
    assert [w.agent for w in status.waiters] == names
    assert [w.position for w in status.waiters] == [1, 2, 3, 4]
    assert [h.agent for h in status.holders] == ["holder"]
    first.release()
    for r in runners:
        assert r.join().error is None
    assert order == names
    # Each waiter learnt its place when it queued. It is not woken just to be
    # told it moved up (no herd); lease_status() shows the live line.
    assert [positions[name][0] for name in names] == [1, 2, 3, 4]
    tokens = [e.lease for e in store.history(key="hot") if e.op == "lease_acquire"]
    assert tokens == sorted(tokens) and len(set(tokens)) == 5


def test_timeout_leaves_the_line_and_holds_nothing(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    with a.lease("doc", ttl=30):
        with pytest.raises(accord.LeaseTimeout, match="held by agent-a") as info:
            b.acquire("doc", ttl=5, wait=0.1)
        assert info.value.position == 1
        with pytest.raises(accord.LeaseTimeout):
            b.acquire("doc", ttl=5, wait=0)
        assert waiters(store, "doc") == []
    rejected = [e for e in store.history(key="doc") if e.outcome == "rejected"]
    assert rejected and rejected[0].extra["reason"] == "timeout"
    with a.lease("doc", ttl=30), pytest.raises(accord.LeaseTimeout, match="not re-entrant"):
        a.acquire("doc", ttl=5, wait=0)


def test_expired_holder_is_replaced_with_a_higher_token(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    dead = a.acquire("doc", ttl=0.3)  # never released: the holder "died"
    lease = b.acquire("doc", ttl=10, wait=BOUND)
    assert lease.token == dead.token + 1
    assert store.backend.now() >= dead.expires
    lease.release()


# --- shared and exclusive ----------------------------------------------------------


def test_shared_holders_coexist_and_exclude_writers(
    open_store: Callable[..., accord.Store],
) -> None:
    store = open_store()
    r1, r2 = store.session("reader-1"), store.session("reader-2")
    s1 = r1.acquire("doc", ttl=30, mode="shared")
    s2 = r2.acquire("doc", ttl=30, mode="shared", wait=0)
    assert s2.token > s1.token
    writer = open_store().session("writer")
    with pytest.raises(accord.LeaseTimeout):
        writer.acquire("doc", ttl=5, wait=0)
    with pytest.raises(accord.Fenced, match="shared"):
        r1.write("doc", "x", lease=s1)
    with pytest.raises(accord.Fenced, match="shared"):
        r1.write("doc", "x", lease=s1.token)
    got = Runner(lambda: writer.acquire("doc", ttl=30, wait=BOUND))
    until(lambda: waiters(store, "doc") == ["writer"], "the writer to queue")
    s1.release()
    assert got.thread.is_alive()  # one shared holder left
    s2.release()
    lease = got.join().result
    assert lease.mode == "exclusive"
    with pytest.raises(accord.LeaseTimeout):
        r1.acquire("doc", ttl=5, wait=0, mode="shared")
    lease.release()


def test_waiting_writer_is_not_starved_by_later_readers(
    open_store: Callable[..., accord.Store],
) -> None:
    store = open_store()
    s1 = store.session("reader-1").acquire("doc", ttl=30, mode="shared")
    writer = open_store().session("writer")
    w = Runner(lambda: writer.acquire("doc", ttl=30, wait=BOUND))
    until(lambda: waiters(store, "doc") == ["writer"], "the writer to queue")
    late_reader = open_store().session("reader-2")
    # A shared lease is compatible with the shared holder, but the writer
    # waits ahead of it: the reader must queue behind the writer.
    with pytest.raises(accord.LeaseTimeout, match="ahead in line"):
        late_reader.acquire("doc", ttl=30, mode="shared", wait=0)
    r = Runner(lambda: late_reader.acquire("doc", ttl=30, mode="shared", wait=BOUND))
    until(lambda: waiters(store, "doc") == ["writer", "reader-2"], "the reader to queue")
    s1.release()
    wl = w.join().result
    assert r.thread.is_alive()
    assert waiters(store, "doc") == ["reader-2"]
    wl.release()
    rl = r.join().result
    assert rl.token > wl.token
    rl.release()


# --- several keys and deadlocks ------------------------------------------------------


def test_lease_all_takes_keys_in_order_all_or_nothing(
    open_store: Callable[..., accord.Store],
) -> None:
    store = open_store()
    a, b = store.session("agent-a"), open_store().session("agent-b")
    with a.lease_all(["k3", "k1", "k2"], ttl=30) as leases:
        assert leases.keys == ["k1", "k2", "k3"]
        assert set(leases.tokens) == {"k1", "k2", "k3"}
        a.write("k2", "x", lease=leases["k2"])
        assert "k1" in leases and len(leases) == 3
    with b.lease("k2", ttl=30):
        with pytest.raises(accord.LeaseTimeout):
            a.lease_all(["k3", "k1", "k2"], ttl=30, wait=0.1)
        # k1 was taken first and given back: a holds nothing.
        assert accord.lease_status(store, "k1").holders == []
    with pytest.raises(accord.UsageError, match="more than once"):
        a.lease_all(["k1", "k1"])
    with pytest.raises(accord.UsageError, match="at least one"):
        a.lease_all([])


def _cycle(open_store: Callable[..., accord.Store], n: int) -> None:
    store = open_store()
    agents = [f"agent-{chr(ord('a') + i)}" for i in range(n)]
    keys = [f"res/{i}" for i in range(n)]
    sessions = [open_store().session(name) for name in agents]
    held = [s.acquire(k, ttl=60) for s, k in zip(sessions, keys, strict=True)]
    runners: list[Runner] = []
    for i, s in enumerate(sessions):
        want = keys[(i + 1) % n]

        def take(s: accord.Session = s, want: str = want, mine: accord.Lease = held[i]) -> Any:
            try:
                got = s.acquire(want, ttl=60, wait=BOUND)
            finally:
                mine.release()  # done (or the victim): give back what it holds
            got.release()
            return got.token

        runners.append(Runner(take))
        if i < n - 1:
            until(lambda want=want: len(waiters(store, want)) == 1, f"{s.agent} to queue")
    done = [r.join() for r in runners]
    victims = [r for r in done if isinstance(r.error, accord.Deadlock)]
    assert len(victims) == 1, [r.error for r in done]
    exc = victims[0].error
    assert isinstance(exc, accord.Deadlock)
    assert sorted(exc.cycle) == agents
    text = str(exc)
    for name, key in zip(agents, keys, strict=True):
        assert name in text and key in text
    # The victim's release let its predecessor on the cycle through, and the
    # others followed as each finished.
    winners = [r for r in done if r.error is None]
    assert len(winners) == n - 1
    rejected = [e for e in store.history() if e.extra.get("reason") == "deadlock"]
    assert len(rejected) == 1 and len(rejected[0].extra["cycle"]) == n


def test_two_agent_deadlock_is_detected(open_store: Callable[..., accord.Store]) -> None:
    _cycle(open_store, 2)


def test_three_agent_deadlock_is_detected(open_store: Callable[..., accord.Store]) -> None:
    _cycle(open_store, 3)


def test_waiting_without_a_cycle_is_not_a_deadlock(
    open_store: Callable[..., accord.Store],
) -> None:
    store = open_store()
    a, b = store.session("agent-a"), open_store().session("agent-b")
    la = a.acquire("x", ttl=30)
    lb = b.acquire("y", ttl=30)
    r = Runner(lambda: a.acquire("y", ttl=30, wait=BOUND))  # a -> b, b waits on nothing
    until(lambda: waiters(store, "y") == ["agent-a"], "agent-a to queue")
    lb.release()
    got = r.join()
    assert got.error is None
    got.result.release()
    la.release()


# --- bad input ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ttl": -1}, "out of range"),
        ({"ttl": 0}, "out of range"),
        ({"ttl": 10**9}, "out of range"),
        ({"ttl": float("nan")}, "number of seconds"),
        ({"ttl": True}, "number of seconds"),
        ({"ttl": "30"}, "number of seconds"),
        ({"wait": -1}, "out of range"),
        ({"wait": float("nan")}, "number of seconds"),
        ({"mode": "write"}, "exclusive"),
    ],
)
def test_bad_arguments_change_nothing(
    store: accord.Store, kwargs: dict[str, Any], match: str
) -> None:
    a = store.session("agent-a")
    revision = store.revision()
    with pytest.raises(accord.UsageError, match=match):
        a.acquire("doc", **kwargs)
    with pytest.raises(accord.InvalidKey):
        a.acquire(".accord/lease/x")
    assert store.revision() == revision


def test_release_and_renew_of_a_lease_not_held(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    lease = a.acquire("doc", ttl=10)
    lease.release()
    revision = store.revision()
    with pytest.raises(accord.LeaseLost, match="already released"):
        lease.release()
    with pytest.raises(accord.LeaseLost, match="released"):
        lease.renew()
    assert store.revision() == revision
    mine = a.acquire("doc", ttl=10)
    # Tokens from tools (the CLI) are checked for key and agent.
    with pytest.raises(accord.UsageError, match="belongs to agent-a"):
        lease_mod.from_token(b, "doc", mine.token)
    with pytest.raises(accord.UsageError, match="ever granted on other"):
        lease_mod.from_token(a, "other", mine.token)
    with pytest.raises(accord.LeaseLost, match="was released"):
        lease_mod.from_token(a, "doc", lease.token)
    same = lease_mod.from_token(a, "doc", mine.token)
    assert same.renew(ttl=20) > mine.expires
    same.release()
    with pytest.raises(accord.LeaseLost):
        mine.release()
    assert accord.lease_status(store, "doc").holders == []


def test_release_after_expiry_raises_and_records_the_expiry(store: accord.Store) -> None:
    a = store.session("agent-a")
    lease = a.acquire("doc", ttl=0.2)
    until_expired(store, lease)
    with pytest.raises(accord.LeaseLost, match="expired at"):
        lease.release()
    ops = [(e.op, e.lease) for e in store.history(key="doc")]
    assert ops == [("lease_acquire", 1), ("lease_expire", 1)]
    with pytest.raises(accord.LeaseLost, match="expired"):
        lease_mod.from_token(a, "doc", lease.token)


def test_nested_keys_do_not_mix(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    with a.lease("docs", ttl=30), b.lease("docs/q", ttl=30, wait=0), b.lease(
        "docs/held", ttl=30, wait=0
    ):
        status = accord.lease_status(store, "docs")
        assert [h.agent for h in status.holders] == ["agent-a"]


def test_release_wakes_only_the_next_waiter(open_store: Callable[..., accord.Store]) -> None:
    store = open_store()
    holder = store.session("holder").acquire("hot", ttl=30)
    runners: dict[str, Runner] = {}
    gate = threading.Event()
    for i, name in enumerate(["w1", "w2", "w3", "w4"]):
        session = open_store().session(name)

        def take(session: accord.Session = session) -> int:
            lease = session.acquire("hot", ttl=30, wait=BOUND)
            gate.wait(BOUND)  # hold it until the test has looked
            lease.release()
            return lease.token

        runners[name] = Runner(take)
        until(lambda i=i: len(waiters(store, "hot")) == i + 1, f"{name} to queue")

    def tickets() -> dict[str, int]:
        prefix = ".accord/lease/hot/q/"
        return {
            str(rec.value["agent"]): rec.version for rec in store.backend.scan(prefix)
        }

    before = tickets()
    holder.release()
    until(lambda: waiters(store, "hot") == ["w2", "w3", "w4"], "w1 to be granted")
    after = tickets()
    # The release rewrote (rang) w1's ticket only; nobody else was woken.
    assert after == {name: before[name] for name in ("w2", "w3", "w4")}
    gate.set()
    tokens = [runners[name].join().result for name in ["w1", "w2", "w3", "w4"]]
    assert tokens == sorted(tokens)
