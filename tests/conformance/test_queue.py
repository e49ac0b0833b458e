"""The single writer with a queue, on every backend.

Ordering, exactly-once application, writer failover with fencing, NotWriter
for direct writes, and the bad inputs (deciding twice, a request of another
key, deciding out of order).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import pytest

import accord
from tests.conformance.queue_face import queue_of

KEY = "docs/draft.md"


def _drain(writer: accord.Session, key: str = KEY) -> list[accord.Request]:
    decided = []
    for request in writer.requests(key, timeout=0):
        base = request.base.value if request.base is not None else ""
        decided.append(writer.accept(request, base + request.change))
    return decided


def test_submit_returns_a_pending_request(store: accord.Store) -> None:
    critic = store.session("critic")
    request = critic.submit(KEY, "add a summary\n")
    assert isinstance(request, accord.Request)
    assert request.key == KEY and request.change == "add a summary\n"
    assert request.submitter == "critic" and request.status == "pending"
    assert request.outcome is None and request.seq > 0
    assert queue_of(store).get_request(store, request.id) == request


def test_requests_oldest_first_and_each_applied_once(store: accord.Store) -> None:
    author = store.session("author")
    author.write(KEY, "draft\n")
    submitters = [store.session(f"critic-{i}") for i in range(3)]
    submitted = []
    for n in range(12):
        submitted.append(submitters[n % 3].submit(KEY, f"comment {n}\n"))
    decided = _drain(author)
    assert [r.id for r in decided] == [r.id for r in submitted]
    assert [r.seq for r in submitted] == sorted(r.seq for r in submitted)
    expected = "draft\n" + "".join(f"comment {n}\n" for n in range(12))
    assert author.read(KEY).value == expected
    assert author.read(KEY).version == 13
    for n, request in enumerate(submitted):
        done = request.wait(timeout=5)
        assert done.status == "accepted" and done.decided_by == "author"
        assert isinstance(done.outcome, accord.Doc)
        assert done.outcome.version == n + 2 and done.outcome.author == "author"
        assert done.outcome.revision > 0
    # Nothing left: a second pass applies nothing.
    assert _drain(author) == []
    assert author.read(KEY).version == 13


def test_accept_creates_an_absent_key(store: accord.Store) -> None:
    store.session("critic").submit("notes/new.md", "first line\n")
    author = store.session("author")
    [done] = _drain(author, "notes/new.md")
    assert done.outcome.version == 1  # type: ignore[union-attr]
    assert author.read("notes/new.md").value == "first line\n"


def test_json_and_bytes_changes_keep_their_type(store: accord.Store) -> None:
    critic = store.session("critic")
    r1 = critic.submit("cfg", {"set": {"depth": 3}})
    r2 = critic.submit("cfg", b"\x00\x01")
    author = store.session("author")
    got = [next(author.requests("cfg", timeout=0))]
    assert got[0].change == {"set": {"depth": 3}}
    author.accept(got[0], {"depth": 3})
    [second] = [next(author.requests("cfg", timeout=0))]
    assert second.change == b"\x00\x01"
    author.reject(second, "bytes are not a config change")
    assert r1.wait(5).outcome.value == {"depth": 3}  # type: ignore[union-attr]
    assert r2.wait(5).reason == "bytes are not a config change"


def test_wait_returns_the_decision_made_in_another_thread(
    open_store: Callable[..., accord.Store],
) -> None:
    writer_store, submitter_store = open_store(), open_store()
    author = writer_store.session("author")
    author.write(KEY, "v1\n")
    request = submitter_store.session("critic").submit(KEY, "more\n")
    results: list[accord.Request] = []
    started = threading.Event()

    def waiter() -> None:
        started.set()
        results.append(request.wait(timeout=30))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert started.wait(5)
    _drain(author)
    thread.join(30)
    assert not thread.is_alive()
    assert results[0].accepted and results[0].outcome.value == "v1\nmore\n"  # type: ignore[union-attr]


def test_wait_times_out_while_pending(store: accord.Store) -> None:
    request = store.session("critic").submit(KEY, "x")
    with pytest.raises(accord.Timeout, match="still pending"):
        request.wait(timeout=0.05)
    assert request.refresh().pending


def test_reject_writes_nothing_and_tells_the_reason(store: accord.Store) -> None:
    author = store.session("author")
    author.write(KEY, "keep\n")
    request = store.session("critic").submit(KEY, "delete everything")
    [taken] = [next(author.requests(KEY, timeout=0))]
    decided = author.reject(taken, "out of scope for this draft")
    assert decided.rejected and decided.reason == "out of scope for this draft"
    assert request.wait(5).reason == "out of scope for this draft"
    assert author.read(KEY).version == 1 and author.read(KEY).value == "keep\n"
    with pytest.raises(accord.UsageError, match="reason"):
        author.reject(taken, "  ")


def test_deciding_twice_is_refused_and_changes_nothing(store: accord.Store) -> None:
    author = store.session("author")
    author.write(KEY, "a\n")
    store.session("critic").submit(KEY, "b\n")
    [request] = [next(author.requests(KEY, timeout=0))]
    author.accept(request, "a\nb\n")
    revision = store.revision()
    with pytest.raises(accord.PreconditionFailed, match="already accepted by author"):
        author.accept(request, "a\nb\nb\n")
    with pytest.raises(accord.PreconditionFailed, match="decided once"):
        author.reject(request, "changed my mind")
    assert author.read(KEY).value == "a\nb\n" and author.read(KEY).version == 2
    assert store.revision() == revision


def test_direct_write_by_another_agent_is_not_writer(store: accord.Store) -> None:
    author, critic = store.session("author"), store.session("critic")
    author.write(KEY, "a\n")
    list(author.requests(KEY, timeout=0))  # claims the writer role
    doc = critic.read(KEY)
    with pytest.raises(accord.NotWriter) as info:
        critic.write(KEY, "mine", expect=doc.version)
    assert "submit" in str(info.value) and info.value.writer == "author"  # type: ignore[attr-defined]
    with pytest.raises(accord.NotWriter):
        critic.write(KEY, "mine", force=True)
    with pytest.raises(accord.NotWriter):
        critic.delete(KEY, expect=doc.version)
    assert author.read(KEY).value == "a\n"
    # The writer itself may still write directly, with the usual guards.
    author.write(KEY, "a\nb\n", expect=1)
    # Other keys are not affected.
    critic.write("elsewhere", "free")


def test_writer_role_refuses_a_second_writer_while_live(store: accord.Store) -> None:
    author, other = store.session("author"), store.session("other")
    list(author.requests(KEY, timeout=0))
    with pytest.raises(accord.NotWriter, match="author"):
        other.requests(KEY, timeout=0)
    assert queue_of(store).writer_of(store, KEY)["agent"] == "author"


def test_same_agent_in_another_store_continues_the_role(
    open_store: Callable[..., accord.Store],
) -> None:
    first, second = open_store(), open_store()
    first.session("author").write(KEY, "a\n")
    list(first.session("author").requests(KEY, timeout=0))
    request = second.session("critic").submit(KEY, "b\n")
    [taken] = [next(second.session("author").requests(KEY, timeout=0))]
    second.session("author").accept(taken, "a\nb\n")
    assert request.wait(5).accepted


def test_failover_fences_the_dead_writers_late_decision(
    open_store: Callable[..., accord.Store],
) -> None:
    old_store, new_store = open_store(), open_store()
    old, new = old_store.session("writer-a"), new_store.session("writer-b")
    old.write(KEY, "base\n")
    critic = new_store.session("critic")
    r1 = critic.submit(KEY, "one\n")
    r2 = critic.submit(KEY, "two\n")
    # The old writer takes r1 and stalls (or dies) before deciding it.
    stale = next(iter(old.requests(KEY, timeout=0, ttl=0.3)))
    assert stale.id == r1.id
    # The new writer waits for the old role to lapse, then takes over; r1 is
    # still pending and first in line.
    taken = new.requests(KEY, timeout=0, role_wait=30)
    role = queue_of(new_store).writer_of(new_store, KEY)
    assert role is not None and role["agent"] == "writer-b" and role["epoch"] == 2
    first = next(taken)
    assert first.id == r1.id
    # The old writer wakes up and decides: fenced, nothing written.
    revision = new_store.revision()
    with pytest.raises(accord.Fenced, match="writer-b took it over"):
        old.accept(stale, "base\none\n")
    assert new.read(KEY).version == 1
    assert new_store.revision() == revision + 1  # only the failed decision's history event
    new.accept(first, first.base.value + first.change)  # type: ignore[union-attr]
    second = next(taken)
    assert second.id == r2.id
    new.accept(second, second.base.value + second.change)  # type: ignore[union-attr]
    assert new.read(KEY).value == "base\none\ntwo\n"
    assert r1.wait(5).decided_by == "writer-b" and r2.wait(5).accepted
    accepted = [e for e in new_store.history(key=KEY) if e.op == "accept" and e.outcome == "ok"]
    assert [e.request for e in accepted] == [r1.id, r2.id]
    fenced = [e for e in new_store.history(key=KEY) if e.outcome == "fenced"]
    assert [(e.agent, e.request) for e in fenced] == [("writer-a", r1.id)]
    # A direct write by the old writer is refused as well.
    with pytest.raises(accord.NotWriter):
        old.write(KEY, "late", expect=3)


def test_a_writer_that_never_decided_leaves_the_request_for_the_next(
    open_store: Callable[..., accord.Store],
) -> None:
    s1, s2 = open_store(), open_store()
    s1.session("w1").write(KEY, "")
    request = s1.session("critic").submit(KEY, "x\n")
    next(iter(s1.session("w1").requests(KEY, timeout=0, ttl=0.2)))
    s1.close()  # the writer's process is gone, its role left behind
    applied = s2.session("w2").serve(
        KEY, lambda value, change: value + change, timeout=0, role_wait=30
    )
    assert applied == 1
    assert queue_of(s2).get_request(s2, request.id).status == "accepted"
    assert s2.session("w2").read(KEY).value == "x\n"


def test_decisions_must_follow_submission_order(store: accord.Store) -> None:
    author = store.session("author")
    author.write(KEY, "")
    critic = store.session("critic")
    first = critic.submit(KEY, "1\n")
    second = critic.submit(KEY, "2\n")
    author.read(KEY)
    with pytest.raises(accord.UsageError, match=f"{first.id} was submitted before"):
        author.accept(queue_of(store).get_request(store, second.id), "2\n")
    assert author.read(KEY).version == 1 and second.refresh().pending
    iterator = author.requests(KEY, timeout=0)
    assert next(iterator).id == first.id
    with pytest.raises(accord.UsageError, match="not decided"):
        next(iterator)


def test_request_of_another_key_is_refused(store: accord.Store) -> None:
    author, other = store.session("author"), store.session("other")
    author.write("a", "")
    other.write("b", "")
    list(author.requests("a", timeout=0))
    list(other.requests("b", timeout=0))
    for_b = store.session("critic").submit("b", "x")
    with pytest.raises(accord.NotWriter, match="other is"):
        author.accept(for_b, "x")
    forged = dataclasses.replace(for_b, key="a")
    with pytest.raises(accord.UsageError, match="is a request for b, not a"):
        author.accept(forged, "x")
    assert for_b.refresh().pending and author.read("a").version == 1
    with pytest.raises(accord.NotFound):
        queue_of(store).get_request(store, "r-doesnotexist")


def test_accept_carries_the_version_check(store: accord.Store) -> None:
    author = store.session("author")
    author.write(KEY, "a\n")
    request = store.session("critic").submit(KEY, "b\n")
    [taken] = [next(author.requests(KEY, timeout=0))]
    # The writer itself moves the key after reading it for this request.
    author.write(KEY, "a\nz\n", expect=1)
    with pytest.raises(accord.Conflict) as info:
        author.accept(taken, "a\nb\n")
    assert info.value.expected == 1 and info.value.current == 2  # type: ignore[attr-defined]
    assert request.refresh().pending
    author.accept(taken, "a\nz\nb\n", expect=2)
    assert request.wait(5).outcome.version == 3  # type: ignore[union-attr]


def test_idempotent_submit(store: accord.Store) -> None:
    critic = store.session("critic")
    first = critic.submit(KEY, "fix typo", idempotency_key="comment-17")
    again = critic.submit(KEY, "fix typo", idempotency_key="comment-17")
    assert again.id == first.id
    with pytest.raises(accord.IdempotencyMismatch, match="comment-17"):
        critic.submit(KEY, "another change", idempotency_key="comment-17")
    author = store.session("author")
    assert len(_drain(author)) == 1
    replay = critic.submit(KEY, "fix typo", idempotency_key="comment-17")
    assert replay.id == first.id and replay.accepted
    assert _drain(author) == []


def test_serve_applies_and_rejects(store: accord.Store) -> None:
    author = store.session("author")
    author.write(KEY, "")
    critic = store.session("critic")
    good = critic.submit(KEY, "keep\n")
    bad = critic.submit(KEY, "SPAM\n")

    def apply(value: str, change: str) -> str | accord.Reject:
        if change.isupper():
            return accord.Reject("no shouting")
        return value + change

    assert author.serve(KEY, apply, timeout=0) == 2
    assert good.wait(5).accepted and bad.wait(5).reason == "no shouting"
    assert author.read(KEY).value == "keep\n"
    # serve() released the role: another writer takes over at once.
    assert store.session("other").serve(KEY, apply, timeout=0) == 0


def test_concurrent_submitters_and_a_serving_writer(
    open_store: Callable[..., accord.Store],
) -> None:
    writer_store = open_store()
    writer_store.session("author").write("log", [])
    stop = threading.Event()
    served: list[int] = []

    def serve() -> None:
        served.append(
            writer_store.session("author").serve(
                "log", lambda value, change: [*value, change], stop=stop
            )
        )

    writer = threading.Thread(target=serve)
    writer.start()
    submitters = 4
    per = 15
    barrier = threading.Barrier(submitters)
    requests: list[list[accord.Request]] = [[] for _ in range(submitters)]

    def submit(i: int) -> None:
        s = open_store().session(f"critic-{i}")
        barrier.wait(10)
        for n in range(per):
            requests[i].append(s.submit("log", f"{i}:{n}"))

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(submitters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for mine in requests:
        for request in mine:
            assert request.wait(timeout=60).accepted
    stop.set()
    writer.join(30)
    assert not writer.is_alive() and served == [submitters * per]
    log = writer_store.session("author").read("log").value
    assert sorted(log) == sorted(f"{i}:{n}" for i in range(submitters) for n in range(per))
    for i in range(submitters):  # each submitter's requests in its own order
        assert [e for e in log if e.startswith(f"{i}:")] == [f"{i}:{n}" for n in range(per)]
    by_seq = sorted((r for mine in requests for r in mine), key=lambda r: r.seq)
    assert log == [r.change for r in by_seq]  # the log is the submission order


def test_history_records_submit_accept_reject(store: accord.Store) -> None:
    author = store.session("author")
    author.write(KEY, "")
    critic = store.session("critic")
    r1 = critic.submit(KEY, "a\n")
    r2 = critic.submit(KEY, "b\n")
    iterator = author.requests(KEY, timeout=0)
    author.accept(next(iterator), "a\n")
    author.reject(next(iterator), "no")
    events = [e for e in store.history(key=KEY) if e.op != "write"]
    assert [(e.op, e.request, e.check, e.agent) for e in events] == [
        ("submit", r1.id, "queue", "critic"),
        ("submit", r2.id, "queue", "critic"),
        ("accept", r1.id, "queue", "author"),
        ("reject", r2.id, "queue", "author"),
    ]
    accept = events[2]
    assert accept.version == 2 and accept.based_on == 1 and accept.outcome == "ok"
    assert events[3].outcome == "rejected"
    # The writer read the request, so the submit happened before the accept.
    assert accept.clock.get("critic", 0) >= events[0].clock["critic"]


def test_not_writer_is_a_precondition_failure_with_exit_code_3() -> None:
    assert issubclass(accord.NotWriter, accord.PreconditionFailed)
    assert accord.NotWriter.exit_code == 3


def test_serve_decides_waiting_requests_in_groups_each_with_its_own_version(
    store: accord.Store,
) -> None:
    author = store.session("author")
    author.write(KEY, [])
    critic = store.session("critic")
    submitted = [critic.submit(KEY, n) for n in range(20)]

    def apply(value: list[int], change: int) -> list[int] | accord.Reject:
        return accord.Reject("odd") if change % 2 else [*value, change]

    assert author.serve(KEY, apply, timeout=0, batch=8) == 20
    assert author.read(KEY).value == list(range(0, 20, 2))
    versions = []
    for request in submitted:
        done = request.refresh()
        if request.change % 2:
            assert done.reason == "odd"
        else:
            versions.append(done.outcome.version)  # type: ignore[union-attr]
    assert versions == list(range(2, 12))
    accepts = [e for e in store.history(key=KEY) if e.op == "accept"]
    assert [e.version for e in accepts] == versions
    assert [e.based_on for e in accepts] == [v - 1 for v in versions]


def test_serve_commits_what_it_decided_before_apply_failed(store: accord.Store) -> None:
    author = store.session("author")
    author.write(KEY, [])
    critic = store.session("critic")
    submitted = [critic.submit(KEY, n) for n in range(5)]

    def apply(value: list[int], change: int) -> list[int]:
        if change == 3:
            raise RuntimeError("the model timed out")
        return [*value, change]

    with pytest.raises(RuntimeError, match="timed out"):
        author.serve(KEY, apply, timeout=0)
    assert author.read(KEY).value == [0, 1, 2]
    assert [r.refresh().status for r in submitted] == ["accepted"] * 3 + ["pending"] * 2
    assert store.session("other").serve(KEY, lambda v, c: [*v, c], timeout=0) == 2
    assert author.read(KEY).value == [0, 1, 2, 3, 4]


def test_serve_limit(store: accord.Store) -> None:
    critic = store.session("critic")
    for n in range(5):
        critic.submit(KEY, f"{n}\n")
    author = store.session("author")
    assert author.serve(KEY, lambda v, c: (v or "") + c, timeout=0, limit=2) == 2
    assert author.read(KEY).value == "0\n1\n"
    assert len(queue_of(store).pending(store, KEY)) == 3


def test_a_request_pickles_without_its_store(store: accord.Store) -> None:
    import pickle

    request = store.session("critic").submit(KEY, {"a": 1})
    copy = pickle.loads(pickle.dumps(request))
    assert copy == request and copy.change == {"a": 1}
    with pytest.raises(accord.UsageError, match="not attached"):
        copy.wait(0)
    assert queue_of(store).get_request(store, copy.id) == request
