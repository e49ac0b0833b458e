"""Idempotency keys of the remote surfaces: remember an answer, replay it.

The HTTP API (``Idempotency-Key``) and the MCP tools (``idempotency_key``)
share this one mechanism; each surface brings its own fingerprint of a call,
its own answer form (an HTTP response; a tool's structured content) and its
own words for a refusal. Records live in the store, under
``.accord/idem/<surface>/`` (beside the library's own idempotency records),
one per agent and key, so every server process on the store (uvicorn
workers, a restarted server) sees the same memory:

1. **claim** (:func:`begin`): before the call runs, an in-flight record with
   the call's fingerprint and a deadline on the store's clock is created (its
   commit revision is where the call began: ``since``). A repeat that finds it
   gets :class:`Busy` while the deadline has not passed, :class:`Mismatch`
   if its fingerprint differs (the key was reused for another call), or
   :class:`Done` with the first answer once that was kept.
2. **finish** (:func:`finish`): the answer replaces the in-flight record and
   is kept for the store's idempotency window (24 hours by default). A
   surface may keep no answer (an HTTP 5xx; a refused tool call, which
   applied nothing): the record is then removed and a repeat runs again.

The server may die between the call's commit and step 2. The claim then
lapses at its deadline and a repeat takes it over: :class:`Claim` says so
(``retry``) and keeps the ``since`` of the first attempt, also across
several crashes, so the surface can look in the store for what the first
attempt did after that revision (a lease it was granted, a request it
decided) and answer with that instead of doing it again. Writes, deletes
and submissions need no such look: they pass :func:`session_key` to the
library's own idempotency, which commits with the write.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .keys import has_surrogate
from .records import Compare, Delete, Put

if TYPE_CHECKING:
    from .store import Store

__all__ = [
    "IN_FLIGHT",
    "MAX_KEY_LENGTH",
    "Busy",
    "Claim",
    "Done",
    "Mismatch",
    "begin",
    "check_key",
    "finish",
    "prefix",
    "record_key",
    "session_key",
]

IN_FLIGHT = 10.0
"""Seconds a claim lasts beyond the call's own waiting: after a crash, a
repeat runs again once the dead call's claim has lapsed."""

MAX_KEY_LENGTH = 256
"""The longest idempotency key, as the library takes it (``session.write``)."""

_counter = 0
_counter_lock = threading.Lock()


def prefix(surface: str) -> str:
    """Where ``surface``'s records live in the store."""
    return f".accord/idem/{surface}/"


def record_key(surface: str, agent: str, key: str) -> str:
    """The store key of ``agent``'s record for the idempotency key ``key``."""
    return prefix(surface) + hashlib.sha256(f"{agent}\0{key}".encode()).hexdigest()


def session_key(surface: str, agent: str, key: str) -> str:
    """The idempotency key handed to the library's own idempotency for the same call.

    Per surface and agent, as the records are: two agents' equal keys never
    meet in the library either.
    """
    text = f"{surface}:{agent}:{key}"
    if len(text) <= MAX_KEY_LENGTH:
        return text
    return f"{surface}:" + hashlib.sha256(text.encode()).hexdigest()


def check_key(key: object) -> str:
    """``key`` if it is a usable idempotency key (the library's rule), else :class:`UsageError`."""
    if (
        not isinstance(key, str)
        or not key
        or len(key) > MAX_KEY_LENGTH
        or has_surrogate(key)
    ):
        raise UsageError(
            f"An idempotency key must be a non-empty string of at most {MAX_KEY_LENGTH} "
            f"characters of Unicode text, not {key!r}. Use one unique id per logical change."
        )
    return key


@dataclass(frozen=True, slots=True)
class Claim:
    """This call holds the key: run it, then :func:`finish`.

    ``retry`` is true when an earlier attempt claimed the key and died
    before it finished; ``since`` is the store revision of the first
    attempt's claim (every change that attempt made has a later revision).
    """

    surface: str
    record_key: str
    version: int
    fingerprint: str
    agent: str
    key: str
    since: int
    retry: bool


@dataclass(frozen=True, slots=True)
class Done:
    """The call was made before: ``answer`` is what it answered (do nothing)."""

    answer: dict[str, Any]
    operation: str | None


@dataclass(frozen=True, slots=True)
class Busy:
    """The first call with this key is still running; its claim lapses in ``left`` seconds."""

    left: float


@dataclass(frozen=True, slots=True)
class Mismatch:
    """The key was first used for another call (``operation``, when known)."""

    operation: str | None


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def begin(
    store: Store,
    surface: str,
    agent: str,
    key: str,
    fingerprint: str,
    hold: float,
    operation: str | None = None,
) -> Claim | Done | Busy | Mismatch:
    """Claim ``key`` of ``agent`` on ``surface`` for a call, or say why not.

    ``hold`` is how long the claim lasts (:data:`IN_FLIGHT` plus the call's
    longest wait); ``operation`` describes the call for a later
    :class:`Mismatch`. Nothing else is changed.
    """
    _maybe_purge(store, surface)
    backend = store.backend
    rkey = record_key(surface, agent, key)
    for _ in range(16):
        rec = backend.get(rkey)
        now = backend.now()
        since: int | None = None
        if rec is not None and not rec.deleted and (rec.expires is None or rec.expires > now):
            data = json.loads(rec.data)
            first = data.get("operation", data.get("request"))
            if data.get("fingerprint") != fingerprint:
                return Mismatch(first)
            if data.get("state") == "done":
                answer = data.get("answer")
                if answer is None:  # a record of an older server: the answer's fields inline
                    answer = {k: data[k] for k in ("status", "headers", "body") if k in data}
                return Done(answer, first)
            deadline = float(data.get("deadline", rec.expires or now))
            if deadline > now:
                return Busy(deadline - now)
            # The claim lapsed: the call that made it died. Take it over, and
            # keep the revision its first attempt began at: that claim's own
            # commit (every change the attempt made comes after it).
            since = int(data.get("since", rec.revision))
        version = 0 if rec is None or rec.deleted else rec.version
        data = {
            "agent": agent,
            "fingerprint": fingerprint,
            "state": "in-flight",
            "operation": operation,
            "deadline": now + hold,
        }
        if since is not None:
            data["since"] = since
        # The record outlives its deadline (it lasts the idempotency window):
        # a repeat after a crash must still find when the first attempt began.
        result = backend.txn(
            [Compare(rkey, "version", "==", version)],
            [Put(rkey, "json", _json(data), agent, ttl=store.idempotency_window)],
        )
        if result.succeeded:
            mine = result.records[rkey]
            assert mine is not None
            began = mine.revision if since is None else since
            return Claim(surface, rkey, mine.version, fingerprint, agent, key, began,
                         since is not None)
    return Busy(1.0)  # pragma: no cover - 16 lost races on one key of one agent


def finish(
    store: Store, claim: Claim, operation: str | None, answer: dict[str, Any] | None
) -> None:
    """Keep ``answer`` for the claim's key; ``None`` keeps nothing, so a repeat runs again.

    Acts only while the record is still this claim's: if it lapsed and a
    repeat took it over, the repeat's answer is the one to keep.
    """
    backend = store.backend
    guard = [Compare(claim.record_key, "version", "==", claim.version)]
    if answer is None:
        if claim.retry:
            # What an earlier attempt did is still unknown to a later repeat:
            # leave a lapsed claim that remembers where it began.
            lapsed = {
                "agent": claim.agent,
                "fingerprint": claim.fingerprint,
                "state": "in-flight",
                "operation": operation,
                "since": claim.since,
                "deadline": 0,
            }
            backend.txn(guard, [Put(claim.record_key, "json", _json(lapsed), claim.agent,
                                    ttl=store.idempotency_window)])
        else:
            backend.txn(guard, [Delete(claim.record_key, purge=True)])
        return
    data = {
        "agent": claim.agent,
        "fingerprint": claim.fingerprint,
        "state": "done",
        "operation": operation,
        "answer": answer,
    }
    backend.txn(guard, [Put(claim.record_key, "json", _json(data), claim.agent,
                            ttl=store.idempotency_window)])


def _maybe_purge(store: Store, surface: str) -> None:
    # Lapsed records are ignored on read; purging now and then keeps them
    # from piling up, without a background thread.
    global _counter
    with _counter_lock:
        _counter += 1
        due = _counter % 512 == 1
    if due:
        store.backend.purge_expired(prefix(surface), store.backend.now())
