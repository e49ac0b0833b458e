"""Surrogates in names, keys and text are refused alike on every backend (issue 11 item 9).

A str holding a surrogate code point (U+D800 to U+DFFF) is not Unicode text:
UTF-8 cannot hold it, and each backend used to fail on it its own way (a
UnicodeEncodeError from SQLite, BackendUnavailable from PostgreSQL, nothing
at all from memory). Each is refused before the backend is touched, with the
same error everywhere, and nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import accord

LONE = "\ud800"


def _refused(store: accord.Store, call: Callable[[], Any]) -> accord.AccordError:
    before = store.revision()
    with pytest.raises(accord.UsageError) as info:
        call()
    assert store.revision() == before
    return info.value


@pytest.mark.parametrize(
    ("what", "call", "error", "words"),
    [
        ("key", lambda s: s.write(f"docs/{LONE}", "x"), accord.InvalidKey, "surrogate"),
        ("key read", lambda s: s.read(f"docs/{LONE}"), accord.InvalidKey, "surrogate"),
        ("scan prefix", lambda s: s.scan(f"docs/{LONE}"), accord.InvalidKey, "prefix"),
        ("text value", lambda s: s.write("k", f"a{LONE}b"), accord.InvalidValue, "surrogate"),
        ("json string", lambda s: s.write("k", {"a": LONE}), accord.InvalidValue, "$.a"),
        (
            "idempotency key",
            lambda s: s.write("k", "x", idempotency_key=f"req-{LONE}"),
            accord.UsageError,
            "Unicode text",
        ),
        (
            "submit idempotency key",
            lambda s: s.submit("q", "x", idempotency_key=f"req-{LONE}"),
            accord.UsageError,
            "Unicode text",
        ),
        ("submitted change", lambda s: s.submit("q", f"x{LONE}"), accord.InvalidValue, "surrogate"),
    ],
)
def test_surrogates_are_refused_before_the_backend(
    store: accord.Store, what: str, call: Callable[[Any], Any], error: type, words: str
) -> None:
    s = store.session("agent-a")
    exc = _refused(store, lambda: call(s))
    assert type(exc) is error, what
    assert words in exc.message, exc.message
    assert list(store.history()) == []


def test_an_agent_name_with_a_surrogate_is_refused(store: accord.Store) -> None:
    exc = _refused(store, lambda: store.session(f"agent-{LONE}"))
    assert type(exc) is accord.UsageError and "Invalid agent name" in exc.message


def test_ids_and_reasons_with_surrogates_are_refused(store: accord.Store) -> None:
    from accord.strategies.branch import get_branch
    from accord.strategies.queue import get_request

    a = store.session("agent-a")
    a.write("doc", "x")
    assert "not a branch id" in _refused(store, lambda: get_branch(store, "doc", LONE)).message
    assert "not a request id" in _refused(store, lambda: get_request(store, LONE)).message
    assert "prefix" in _refused(store, lambda: list(store.history(key=LONE))).message
    a.submit("q", "change")
    writer = store.session("writer")
    request = next(iter(writer.requests("q", timeout=1)))
    exc = _refused(store, lambda: writer.reject(request, f"no {LONE}"))
    assert "surrogate" in exc.message and "nothing was decided" in exc.message
    writer.reject(request, "no")


def test_a_pair_of_surrogates_is_refused_but_the_character_is_not(store: accord.Store) -> None:
    s = store.session("agent-a")
    _refused(store, lambda: s.write("k", "\ud83d\ude00"))
    assert s.write("k", "\U0001f600").version == 1
    assert s.read("k").value == "\U0001f600"
