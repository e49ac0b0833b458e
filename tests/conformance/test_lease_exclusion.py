"""A live lease excludes every other write of its key, on every backend and write path.

While any lease (exclusive or shared) is live on a key, the store refuses,
inside the write's own transaction, every write and delete of the key that
does not carry a live exclusive lease of it: ``expect=`` writes, update(),
force, deletes, queue accepts, the queue writer's group decisions, merge
commits. And a write under a lease does not erase a version its writer never
saw.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

import accord
from accord.strategies import queue as queue_mod

from .test_lease import until_expired

KEY = "docs/plan.md"


def _holders(store: accord.Store, mode: str) -> list[accord.Lease]:
    """A holds KEY exclusively, or A and C hold it shared."""
    if mode == "exclusive":
        return [store.session("agent-a").acquire(KEY, ttl=30)]
    return [
        store.session("agent-a").acquire(KEY, ttl=30, mode="shared"),
        store.session("agent-c").acquire(KEY, ttl=30, mode="shared"),
    ]


def _write_expect(b: accord.Session) -> object:
    return b.write(KEY, "B's change", expect=b.read(KEY).version)


def _update(b: accord.Session) -> object:
    return b.update(KEY, lambda old: old + " + B")


def _force(b: accord.Session) -> object:
    return b.write(KEY, "B's blind write", force=True)


def _delete_expect(b: accord.Session) -> object:
    return b.delete(KEY, expect=b.read(KEY).version)


def _delete_force(b: accord.Session) -> object:
    return b.delete(KEY, force=True)


def _idempotent(b: accord.Session) -> object:
    return b.write(KEY, "B again", expect=b.read(KEY).version, idempotency_key="b-1")


def _accept(b: accord.Session) -> object:
    request = b.submit(KEY, "please")
    for req in b.requests(KEY, timeout=0):
        return b.accept(req, "accepted text")
    raise AssertionError(f"{request.id} was not handed out")


def _serve(b: accord.Session) -> object:
    b.submit(KEY, "please")
    return b.serve(KEY, lambda current, change: f"{current} + {change}", limit=1, timeout=5)


def _merge(b: accord.Session) -> object:
    # The branch was forked before the lease was taken (see the test).
    (branch,) = b.store.branches(KEY)
    return b.store.merge(KEY, [branch], agent=b.agent).commit()


PATHS: dict[str, Callable[[accord.Session], object]] = {
    "write-expect": _write_expect,
    "update": _update,
    "force": _force,
    "delete-expect": _delete_expect,
    "delete-force": _delete_force,
    "idempotent-write": _idempotent,
    "queue-accept": _accept,
    "queue-serve": _serve,
    "merge-commit": _merge,
}


@pytest.mark.parametrize("mode", ["exclusive", "shared"])
@pytest.mark.parametrize("path", sorted(PATHS))
def test_every_write_path_is_refused_while_a_lease_is_live(
    store: accord.Store, path: str, mode: str
) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write(KEY, "base")
    if path == "merge-commit":
        branch = b.fork(KEY)
        branch.write("base, edited on a branch")
    held = _holders(store, mode)
    with pytest.raises(accord.LeaseHeld) as info:
        PATHS[path](b)
    error = info.value
    assert error.exit_code == 4 and isinstance(error, accord.LeaseError)
    assert error.key == KEY and error.holder == "agent-a" and error.token == held[0].token
    assert error.mode == mode and error.expires == pytest.approx(held[0].expires, abs=1e-3)
    message = str(error)
    assert f"agent-a holds an exclusive lease on it (token {held[0].token})" in message or (
        mode == "shared" and "hold shared leases" in message
    )
    assert "store clock" in message and "nothing was written" in message
    assert f"session.acquire('{KEY}', wait=" in message
    # The same message on the command line says the command (issue 11 item 11).
    assert f"accord lease acquire {KEY} --wait " in error.render("cli")
    # Nothing was written, and the refusal is in the history as fenced.
    doc = a.read(KEY)
    assert (doc.value, doc.version) == ("base", 1)
    refused = [e for e in store.history(key=KEY) if e.agent == "agent-b" and e.outcome != "ok"]
    if path not in ("queue-serve",):
        assert [e.outcome for e in refused] == ["fenced"]
    for lease in held:
        lease.release()
    # With the lease gone, the same path goes through.
    PATHS[path](b)


def test_the_holder_writes_and_nothing_of_the_refused_write_is_lost(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write(KEY, "base")
    with a.lease(KEY, ttl=30) as lease:
        with pytest.raises(accord.LeaseHeld):
            b.write(KEY, "base\nB", expect=1)
        doc = a.write(KEY, "base\nA", lease=lease)
        assert doc.version == 2
    # B's change was never applied, so A's leased write erased nothing; B
    # now writes on top of A's version.
    assert b.read(KEY).value == "base\nA"
    b.write(KEY, "base\nA\nB", expect=2)
    assert [(e.agent, e.version, e.outcome) for e in store.history(key=KEY) if e.op == "write"] == [
        ("agent-a", 1, "ok"),
        ("agent-b", None, "fenced"),
        ("agent-a", 2, "ok"),
        ("agent-b", 3, "ok"),
    ]


def test_the_holder_must_write_under_its_lease(store: accord.Store) -> None:
    a = store.session("agent-a")
    a.write(KEY, "base")
    with a.lease(KEY, ttl=30) as lease:
        with pytest.raises(accord.LeaseHeld, match=r"You \(agent-a\) hold that lease") as info:
            a.write(KEY, "no lease passed", expect=1)
        assert f"lease={lease.token})" in str(info.value)
        assert f"accord write {KEY} --lease {lease.token}" in info.value.render("cli")
        a.write(KEY, "under the lease", lease=lease)


def test_a_shared_holder_is_told_to_take_an_exclusive_lease(store: accord.Store) -> None:
    a = store.session("agent-a")
    a.write(KEY, "base")
    with a.lease(KEY, ttl=30, mode="shared") as shared:
        with pytest.raises(accord.LeaseHeld, match="mode='exclusive'"):
            a.write(KEY, "x", expect=1)
        with pytest.raises(accord.Fenced, match="shared lease"):
            a.write(KEY, "x", lease=shared)
    assert a.read(KEY).version == 1


def test_a_create_of_a_leased_absent_key_is_refused(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    with a.lease("fresh", ttl=30) as lease:
        with pytest.raises(accord.LeaseHeld):
            b.write("fresh", "B creates", expect=0)
        with pytest.raises(accord.LeaseHeld):
            b.write("fresh", "B creates")
        a.write("fresh", "A creates", lease=lease)
    assert b.read("fresh").value == "A creates"


def test_an_expired_lease_no_longer_blocks(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write(KEY, "base")
    lease = a.acquire(KEY, ttl=0.3)
    with pytest.raises(accord.LeaseHeld):
        b.write(KEY, "too early", expect=1)
    until_expired(store, lease)
    # The held record is still there (nobody reaped it): the store's clock alone decides.
    assert store.backend.scan(".accord/lease/docs/plan.md/held/")
    assert b.write(KEY, "after expiry", expect=1).version == 2
    with pytest.raises(accord.Fenced, match="expired"):
        a.write(KEY, "late", lease=lease)
    assert a.read(KEY).value == "after expiry"


def test_a_released_lease_no_longer_blocks(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write(KEY, "base")
    a.acquire(KEY, ttl=30).release()
    assert b.write(KEY, "free", expect=1).version == 2


def test_leases_on_nested_and_similar_keys_do_not_block(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    for key in ("a", "a/held", "a/held/00000000000000000001", "a/held/7"):
        a.write(key, "v1")
    held = [b.acquire(k, ttl=30) for k in ("a/held", "a/held/00000000000000000001", "a/held/7")]
    assert a.write("a", "v2", expect=1).version == 2
    with b.lease("a", ttl=30):
        for key in ("a/held", "a/held/00000000000000000001", "a/held/7"):
            with pytest.raises(accord.LeaseHeld):
                a.write(key, "v2", expect=1)
    for lease in held:
        lease.release()


def test_a_leased_write_does_not_erase_a_version_its_session_never_saw(
    store: accord.Store,
) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write(KEY, "base")
    assert a.read(KEY).version == 1
    # B writes before A takes the lease: A's session last saw version 1.
    b.write(KEY, "base\nB", expect=1)
    with a.lease(KEY, ttl=30) as lease:
        lost = r"based on version 1, but it is at version 2 \(v2 by agent-b\)"
        with pytest.raises(accord.Conflict, match=lost) as info:
            a.write(KEY, "base\nA", lease=lease)
        assert info.value.current == 2
        refused = [e for e in store.history(key=KEY) if e.op == "write"][-1]
        assert (refused.outcome, refused.check, refused.extra["expected"]) == (
            "conflict",
            "lease",
            1,
        )
        # Re-read, apply on top, write under the lease again.
        current = a.read(KEY)
        assert a.write(KEY, current.value + "\nA", lease=lease).version == 3
        # The session saw its own write: the next one builds on it.
        assert a.write(KEY, "base\nB\nA\nA2", lease=lease).version == 4
    assert a.read(KEY).value == "base\nB\nA\nA2"


def test_a_leased_delete_checks_the_seen_version_too(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write(KEY, "base")
    b.write(KEY, "changed", expect=1)
    with a.lease(KEY, ttl=30) as lease:
        with pytest.raises(accord.Conflict):
            a.delete(KEY, lease=lease)
        a.read(KEY)
        assert a.delete(KEY, lease=lease) == 3


def test_a_leased_write_with_force_or_expect_is_checked_as_asked(store: accord.Store) -> None:
    a, b = store.session("agent-a"), store.session("agent-b")
    a.write(KEY, "base")
    b.write(KEY, "changed", expect=1)
    with a.lease(KEY, ttl=30) as lease:
        with pytest.raises(accord.Conflict, match="it is at version 2"):
            a.write(KEY, "x", lease=lease, expect=1)
        # force: an explicit blind write, asked for by name.
        assert a.write(KEY, "blind", lease=lease, force=True).version == 3


def test_successive_leased_writes_from_fresh_sessions_work(
    open_store: Callable[..., accord.Store],
) -> None:
    """The CLI's case: each `accord write --lease T` is a new process whose
    session read nothing; two of them in a row by the holder both succeed."""
    first = open_store()
    first.session("agent-a").write(KEY, "base")
    token = first.session("agent-a").acquire(KEY, ttl=30).token
    for n in (2, 3):
        process = open_store()
        doc = process.session("agent-a").write(KEY, f"edit {n}", lease=token)
        assert doc.version == n
    intruder = open_store().session("agent-b")
    with pytest.raises(accord.LeaseHeld):
        intruder.write(KEY, "no", force=True)
    assert intruder.read(KEY).value == "edit 3"


def test_a_queue_writer_waits_out_a_lease(store: accord.Store) -> None:
    a, w = store.session("agent-a"), store.session("writer")
    a.write(KEY, "base")
    request = a.submit(KEY, "change")
    with a.lease(KEY, ttl=30):
        with pytest.raises(accord.LeaseHeld):
            for req in w.requests(KEY, timeout=0):
                w.accept(req, "base + change")
        # Refused: still pending, nothing written.
        assert request.refresh().pending
        assert queue_mod.pending(store, KEY)[0].id == request.id
    assert a.read(KEY).value == "base"
    for req in w.requests(KEY, timeout=0):
        w.accept(req, "base + change")
    assert request.wait(5).accepted and a.read(KEY).value == "base + change"
