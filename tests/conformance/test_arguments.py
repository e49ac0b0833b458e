"""Every timeout, TTL, wait, backoff, window and count is checked the same way.

NaN, infinities, negatives, text and booleans give a clear ``UsageError``
naming the argument, before anything is changed: never a hang (a NaN bound
makes every comparison false), never a raw ``TypeError``, never a
``Timeout`` "after nan s".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

import accord
from accord import params
from tests.conformance.queue_face import queue_of

NAN, INF = float("nan"), float("inf")
BAD_SECONDS = [NAN, INF, -INF, -1, -0.5, "x", "5", True, False, None, [1]]
BOUND = 20.0


def refused(fn: Callable[[], Any], name: str) -> None:
    """``fn()`` raises UsageError naming ``name``, quickly, from another thread
    (so a regression to an endless wait fails the test instead of hanging it)."""
    out: dict[str, BaseException | None] = {"error": None}

    def run() -> None:
        try:
            result = fn()
            if hasattr(result, "__next__"):
                next(result)
        except BaseException as exc:  # handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), f"the call with a bad {name} did not return (it hangs)"
    error = out["error"]
    assert isinstance(error, accord.UsageError), f"{name}: expected UsageError, got {error!r}"
    assert name in str(error) and "Nothing was changed" in str(error)


@pytest.mark.parametrize("bad", BAD_SECONDS, ids=repr)
def test_request_waits_and_writer_loops_refuse_bad_seconds(store: accord.Store, bad: Any) -> None:
    a, w = store.session("agent-a"), store.session("writer")
    request = a.submit("k", "change")
    revision = store.revision()
    refused(lambda: request.wait(timeout=bad), "timeout")
    refused(lambda: w.requests("k", timeout=bad), "timeout")
    refused(lambda: w.requests("k", role_wait=bad), "role_wait")
    if bad is not None:  # serve(timeout=None) means: until stopped
        refused(lambda: w.serve("k", lambda v, c: c, timeout=bad), "timeout")
    refused(lambda: w.serve("k", lambda v, c: c, role_wait=bad), "role_wait")
    assert store.revision() == revision  # nothing claimed, nothing written
    assert queue_of(store).writer_of(store, "k") is None


@pytest.mark.parametrize("bad", [*BAD_SECONDS, 0], ids=repr)
def test_writer_role_ttls_must_be_positive(store: accord.Store, bad: Any) -> None:
    w = store.session("writer")
    refused(lambda: w.requests("k", ttl=bad), "ttl")
    refused(lambda: w.serve("k", lambda v, c: c, ttl=bad), "ttl")


@pytest.mark.parametrize("bad", BAD_SECONDS, ids=repr)
def test_lease_ttl_and_wait_refuse_bad_seconds(store: accord.Store, bad: Any) -> None:
    a = store.session("agent-a")
    refused(lambda: a.acquire("k", ttl=bad), "ttl")
    refused(lambda: a.acquire("k", wait=bad), "wait")
    refused(lambda: a.lease_all(["k", "j"], ttl=bad), "ttl")
    refused(lambda: a.lease_all(["k", "j"], wait=bad), "wait")
    with a.lease("k", ttl=10) as lease:
        if bad is not None:  # renew(None) means: the TTL it was granted with
            refused(lambda: lease.renew(bad), "ttl")
    assert accord.lease_status(store, "k").holders == []


@pytest.mark.parametrize("bad", BAD_SECONDS, ids=repr)
def test_update_backoff_refuses_bad_seconds(store: accord.Store, bad: Any) -> None:
    a = store.session("agent-a")
    refused(lambda: a.update("k", lambda v: 1, backoff=bad), "backoff")
    refused(lambda: a.update("k", lambda v: 1, max_backoff=bad), "max_backoff")
    assert list(store.history()) == []


@pytest.mark.parametrize("bad", [*BAD_SECONDS, 0], ids=repr)
def test_idempotency_window_refuses_bad_seconds(
    open_store: Callable[..., accord.Store], bad: Any
) -> None:
    refused(lambda: open_store(idempotency_window=bad), "idempotency_window")


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None, NAN], ids=repr)
def test_counts_refuse_non_whole_numbers(store: accord.Store, bad: Any) -> None:
    a, w = store.session("agent-a"), store.session("writer")
    refused(lambda: a.update("k", lambda v: 1, retries=bad), "retries")
    refused(lambda: w.serve("k", lambda v, c: c, retries=bad), "retries")
    refused(lambda: w.serve("k", lambda v, c: c, batch=bad), "batch")
    if bad is not None:  # limit=None means: no limit
        refused(lambda: w.serve("k", lambda v, c: c, limit=bad), "limit")
    refused(lambda: store.history(since=bad), "since")
    assert list(store.history()) == []


@pytest.mark.parametrize("bad", [0, -1, 2.5, "16", True, NAN], ids=repr)
def test_max_value_size_must_be_a_positive_whole_number(
    open_store: Callable[..., accord.Store], bad: Any
) -> None:
    refused(lambda: open_store(max_value_size=bad), "max_value_size")


def test_serve_batch_must_be_at_least_one(store: accord.Store) -> None:
    refused(lambda: store.session("w").serve("k", lambda v, c: c, batch=0), "batch")


def test_stop_must_be_an_event(store: accord.Store) -> None:
    w = store.session("writer")
    refused(lambda: w.requests("k", stop="yes"), "stop")
    refused(lambda: w.serve("k", lambda v, c: c, stop=True), "stop")


def test_good_values_still_work(store: accord.Store) -> None:
    a, w = store.session("agent-a"), store.session("writer")
    a.update("k", lambda v: 1, retries=0, backoff=0, max_backoff=0)
    request = a.submit("k", "change")
    assert next(w.requests("k", timeout=0, ttl=60, role_wait=0)).id == request.id
    with pytest.raises(accord.Timeout):
        request.wait(timeout=0)
    assert w.serve("k", lambda v, c: v + 1, limit=0) == 0
    assert w.serve("k", lambda v, c: v + 1, timeout=0, batch=1, retries=0, limit=1) == 1
    assert request.wait(timeout=0).accepted


def test_the_messages_say_what_to_pass() -> None:
    with pytest.raises(accord.UsageError, match=r"timeout must be a number of seconds, not 'x'"):
        params.seconds("x", "timeout", example="30")
    with pytest.raises(accord.UsageError, match=r"not NaN\. Pass, say, timeout=30"):
        params.seconds(NAN, "timeout", example="30")
    with pytest.raises(accord.UsageError, match=r"timeout=-1 is out of range: use a finite"):
        params.seconds(-1, "timeout")
    with pytest.raises(accord.UsageError, match=r"more than 0"):
        params.seconds(0, "ttl", above=True)
    with pytest.raises(accord.UsageError, match="whole number"):
        params.count(True, "retries")


def test_the_command_line_refuses_nan_waits_without_hanging(sqlite_url: str) -> None:
    from click.testing import CliRunner

    from accord.cli import cli

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(cli, [*args, "--store", sqlite_url, "--agent", "w"])
        return result.exit_code, result.output

    for args in (
        ("requests", "k", "--wait", "nan"),
        ("requests", "k", "--wait", "-1"),
        ("lease", "acquire", "k", "--wait", "nan"),
        ("lease", "acquire", "k", "--ttl", "inf"),
    ):
        code, out = run(*args)
        assert code == 1 and "Nothing was changed" in out, (args, out)


# --- booleans are not versions, and flags are real bools (item 10) -----------------------


@pytest.mark.parametrize("bad", [True, False, -1, 1.0, "1", None.__class__])
def test_expect_must_be_a_whole_version(store: accord.Store, bad: Any) -> None:
    a = store.session("agent-a")
    a.write("k", "v1")
    revision = store.revision()
    with pytest.raises(accord.UsageError, match="expect must be a version number"):
        a.write("k", "v2", expect=bad)
    with pytest.raises(accord.UsageError, match="expect must be a version number"):
        a.delete("k", expect=bad)
    assert store.revision() == revision and a.read("k").value == "v1"


def test_expect_true_is_not_version_one(store: accord.Store) -> None:
    """issue 11, item 10: expect=True was accepted as version 1."""
    a = store.session("agent-a")
    a.write("k", "v1")
    with pytest.raises(accord.UsageError, match=r"not True"):
        a.write("k", "v2", expect=True)
    assert a.read("k").value == "v1"


@pytest.mark.parametrize("bad", ["no", "yes", 1, 0, None, "False"])
def test_force_must_be_a_bool(store: accord.Store, bad: Any) -> None:
    """issue 11, item 10: force="no" counted as true (a blind write)."""
    a = store.session("agent-a")
    a.write("k", "v1")
    revision = store.revision()
    with pytest.raises(accord.UsageError, match="force must be True or False"):
        a.write("k", "blind", force=bad)
    with pytest.raises(accord.UsageError, match="force must be True or False"):
        a.delete("k", force=bad)
    assert store.revision() == revision and a.read("k").value == "v1"


def test_other_flags_and_versions(store: accord.Store, open_store: Callable[..., Any]) -> None:
    a, w = store.session("agent-a"), store.session("writer")
    a.write("k", "v1")
    with pytest.raises(accord.UsageError, match="keepalive must be True or False"):
        a.acquire("k", keepalive="no")
    with pytest.raises(accord.UsageError, match="keepalive must be True or False"):
        a.lease_all(["k"], keepalive=1)
    with pytest.raises(accord.UsageError, match="positive integer"):
        a.write("k", "x", lease=True)
    with pytest.raises(accord.UsageError, match="record_reads must be True or False"):
        open_store(record_reads="yes")
    with pytest.raises(accord.UsageError, match="takes a function"):
        a.update("k", "not a function")  # type: ignore[arg-type]
    with pytest.raises(accord.UsageError, match="takes a function"):
        w.serve("k", None)  # type: ignore[arg-type]
    a.submit("k", "change")
    request = next(w.requests("k", timeout=0))
    with pytest.raises(accord.UsageError, match="expect must be a version number"):
        w.accept(request, "v2", expect=True)
    assert a.read("k").value == "v1" and request.refresh().pending
    assert accord.lease_status(store, "k").holders == []


def test_a_store_clock_must_be_a_function() -> None:
    with pytest.raises(accord.UsageError, match="clock must be a function"):
        accord.open("memory://", clock=5)  # type: ignore[arg-type]
