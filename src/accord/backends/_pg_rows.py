"""What goes into the PostgreSQL backend's statements and what comes out of them.

No I/O, shared by both faces: a row read into a :class:`~accord.records.Record`
or a history event; a transaction's compares and ops written as the
arguments of ``accord_txn``, or of ``accord_put_if`` for the common
optimistic write; and the rows those functions return read into a
:class:`~accord.records.TxnResult`, with the same stamping ``plan_ops`` does
on the other backends.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailable, UsageError
from ..records import NOW, Append, Delete, Put, Record, TxnResult, fast_event_encoder, value_hash
from .base import _stamp, iso_time, plan_ops, short_put

if TYPE_CHECKING:
    from ..records import Compare, Op

__all__ = [
    "PutIf",
    "event",
    "matches",
    "put_if_done",
    "put_if_plan",
    "read_again",
    "record",
    "text_array",
    "token",
    "txn_result",
    "txn_spec",
]

_EVENT_JSON = json.JSONEncoder(separators=(",", ":"))
_SPEC_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_dumps_short_event = fast_event_encoder()


# --- rows read -------------------------------------------------------------


def record(row: Sequence[Any]) -> Record:
    """A row of ``_pg_sql.COLUMNS`` as a Record."""
    return Record(
        key=row[0],
        kind=row[1],
        data=b"" if row[2] is None else bytes(row[2]),
        version=row[3],
        revision=row[4],
        author=row[5],
        lamport=row[6],
        clock=row[7],
        deleted=row[8],
        expires=row[9],
    )


def event(
    rev: int,
    body: str,
    ts: float,
    version: int | None,
    prev: int | None,
    hash_: str | None,
    expires: float | None,
) -> dict[str, Any]:
    """A row of ``_pg_sql.EVENT_COLUMNS`` as a history event."""
    # The same stamping plan_ops does (base._stamp and the lease deadline),
    # done at read time from the columns the function stored.
    out = _stamp(json.loads(body), rev, iso_time(ts), version, prev, hash_)
    if expires is not None and "expires" not in out:
        out["expires"] = iso_time(expires)
    return out


def matches(changed: list[str] | None, keys: Sequence[str], prefixes: Sequence[str]) -> bool:
    """Whether a notification's keys (None: any) name a watched key."""
    if changed is None:
        return True
    return any(key in keys or key.startswith(tuple(prefixes)) for key in changed)


# --- arguments written -----------------------------------------------------


def text_array(items: Sequence[str | None]) -> str:
    """A text[] literal, for a parameter cast with ``::text[]``: psycopg's
    list adaptation, written in Python, costs tens of microseconds a call."""
    return (
        "{"
        + ",".join(
            "NULL" if item is None else '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
            for item in items
        )
        + "}"
    )


def _token_int() -> int:
    # Time first, then randomness: new tokens land at the right edge of the
    # tokens' primary key index instead of on random pages (which, after
    # every checkpoint, would each cost a full page image in the WAL).
    return ((time.time_ns() << 64) | random.getrandbits(64)) & ((1 << 128) - 1)


def token() -> uuid.UUID:
    """A new transaction token (see ``accord_txn``)."""
    return uuid.UUID(int=_token_int())


def _number(value: float) -> float | str:
    # JSON has no infinities; PostgreSQL reads these spellings as float8.
    return value if math.isfinite(value) else str(value).replace("inf", "Infinity")


def txn_spec(
    compares: Sequence[Compare], success: Sequence[Op], failure: Sequence[Op]
) -> tuple[str, list[bytes]]:
    """The arguments of ``accord_txn``: JSON for the structure, and the byte
    strings (values) apart, referred to by 1-based index, so they travel in
    binary and are never escaped."""
    blobs: list[bytes] = []
    cs: list[list[Any]] = []
    for cmp in compares:
        value = cmp.value
        is_now = isinstance(value, str) and value == NOW
        num: float | str | None = None
        text: str | None = None
        js: Any = None
        blob: int | None = None
        if not is_now:
            if cmp.target in ("version", "expires"):
                if value is not None:
                    if not isinstance(value, int | float):
                        raise UsageError(f"A {cmp.target} compare needs a number, not {value!r}.")
                    num = _number(float(value))
            elif cmp.target in ("holder", "vacant"):
                text = value if isinstance(value, str) else None
            elif isinstance(value, bytes | bytearray | memoryview):
                blobs.append(bytes(value))
                blob = len(blobs)
            else:
                js = value
        cs.append([cmp.key, cmp.target, cmp.op, num, text, js, is_now, blob, cmp.refusal])
    ops: list[list[Any]] = []
    for branch, branch_ops in ((True, success), (False, failure)):
        for op in branch_ops:
            ev = op.event
            body = None if ev is None else _EVENT_JSON.encode(ev)
            evkey = None if ev is None else ev.get("key")
            if isinstance(op, Append):
                ops.append([branch, "a", None, "", None, "", 0, "{}", None, body, evkey, None])
            elif isinstance(op, Put):
                blobs.append(op.data)
                ttl = None if op.ttl is None else _number(float(op.ttl))
                hash_ = None if ev is None else value_hash(op.data)
                ops.append(
                    [
                        branch,
                        "p",
                        op.key,
                        op.kind,
                        len(blobs),
                        op.author,
                        op.lamport,
                        op.clock,
                        ttl,
                        body,
                        evkey,
                        hash_,
                    ]
                )
            elif isinstance(op, Delete):
                ops.append(
                    [
                        branch,
                        "x" if op.purge else "d",
                        op.key,
                        "",
                        None,
                        op.author,
                        op.lamport,
                        op.clock,
                        None,
                        body,
                        evkey,
                        None,
                    ]
                )
            else:  # pragma: no cover - guarded by the type
                raise TypeError(f"unknown op {op!r}")
    try:
        spec = _SPEC_JSON.encode({"c": cs, "o": ops})
    except (TypeError, ValueError) as exc:
        raise UsageError(f"A value compare needs str, bytes or JSON data ({exc}).") from exc
    return spec, blobs


@dataclass(frozen=True, slots=True)
class PutIf:
    """One ``accord_put_if`` call: its token and parameters, and what reads its result."""

    token: str
    params: tuple[Any, ...]
    hash: str
    event: dict[str, Any]
    keys: list[str]


def put_if_plan(
    put: Put,
    expect: int,
    guards: Sequence[Compare],
    failure: Sequence[Op],
    retry_timeout: float,
) -> PutIf | None:
    """The parameters of one ``accord_put_if`` call, or None when the write
    does not have the short path's shape (then it is a ``txn``)."""
    ev = put.event
    key = put.key
    short = (
        short_put(put, expect, guards)
        and ev is not None
        and len(failure) <= 1
        and all(
            isinstance(op, Append) and op.event is not None and op.event.get("key") == ev.get("key")
            for op in failure
        )
    )
    if not short or ev is None:
        return None
    failed = failure[0].event if failure else None
    vacant = guards[0] if guards and guards[0].target == "vacant" else None
    holders = guards[1:] if vacant is not None else guards
    refused = None
    if vacant is not None and vacant.refusal is not None and failed is not None:
        refused = dict(failed)
        refused["outcome"] = vacant.refusal
    hash_ = value_hash(put.data)
    params = (
        key,
        expect,
        put.kind,
        put.data,
        put.author,
        put.lamport,
        put.clock,
        hash_,
        _dumps_short_event(ev),
        ev.get("key"),
        None if failed is None else _dumps_short_event(failed),
        text_array([g.key for g in holders]) if holders else None,
        text_array([g.value if isinstance(g.value, str) else None for g in holders])
        if holders
        else None,
        # How far back a repeat looks for its first attempt's event: beyond
        # the time the backend keeps retrying, with a minute to spare.
        retry_timeout + 60.0,
        None if vacant is None else vacant.key,
        None if vacant is None or not isinstance(vacant.value, str) else vacant.value,
        None if refused is None else _dumps_short_event(refused),
    )
    # The token as text (the function casts it): cheaper than a UUID object.
    tok = f"{_token_int():032x}"
    keys = list(dict.fromkeys([key, *(g.key for g in holders)]))
    return PutIf(tok, params, hash_, ev, keys)


# --- results read ----------------------------------------------------------


def read_again(
    rows: list[tuple[Any, ...]], keys: Sequence[str], success: Sequence[Op], failure: Sequence[Op]
) -> list[str] | None:
    """The keys whose records must be read now to rebuild the result of a
    transaction that committed on an earlier attempt, or None when the rows
    hold all of it (the first attempt, or a repeat without a token row).

    A repeat finds the "before" rows of the keys it wrote in its token row;
    the keys it only compared are reported as they are now.
    """
    header = rows[-1]
    ok, replay, before_text = header[10], header[14], header[15]
    if not replay or before_text is None:
        return None
    ops = success if ok else failure
    written = {op.key for op in ops if not isinstance(op, Append)}
    return [key for key in keys if key not in written]


def txn_result(
    rows: list[tuple[Any, ...]],
    keys: list[str],
    compares: Sequence[Compare],
    success: Sequence[Op],
    failure: Sequence[Op],
    now_read: Mapping[str, Record | None],
    where: str,
) -> TxnResult:
    """The TxnResult of a call of accord_txn or accord_put_if: its rows of
    the touched keys before the transaction, then a header row.
    ``compares`` are the compares in the order the function checked them
    (its ``h_failed`` counts from 1 in that order); ``now_read``: the
    records :func:`read_again` asked for."""
    header = rows[-1]
    ok, rev0, rev1, now, replay, before_text, failed_at = header[10:17]
    failed = None
    if not ok and failed_at is not None and 1 <= failed_at <= len(compares):
        failed = compares[failed_at - 1]
    ops = success if ok else failure
    current: dict[str, Record | None] = dict.fromkeys(keys)
    if replay and before_text is not None:
        # The keys it wrote from its token row (absent there: absent then),
        # the keys it only compared as they are now.
        written = {op.key for op in ops if not isinstance(op, Append)}
        before = {row[0]: row for row in json.loads(before_text)}
        for key in current:
            if key not in written:
                current[key] = now_read.get(key)
            elif key in before:
                _, kind, version, revision, author, lamport, clock, deleted, expires = before[key]
                current[key] = Record(
                    key, kind, b"", version, revision, author, lamport, clock, deleted, expires
                )
    else:
        for row in rows[:-1]:
            current[row[0]] = record(row)
    # The function already gave the refused events the failed compare's
    # refusal as their outcome; plan_ops rebuilds them the same way.
    outcome = None if failed is None else failed.refusal
    _, events, revision = plan_ops(ops, current, rev0, now, None, outcome)
    if revision != rev1:
        raise BackendUnavailable(
            f"{where}: the database applied a transaction as revisions "
            f"{rev0}..{rev1} but accord expected {revision}; the schema's functions do "
            "not match this accord. Open the store with the accord that created it."
        )
    return TxnResult(ok, revision, current, events, failed)


def put_if_done(rows: list[tuple[Any, ...]], plan: PutIf, expect: int) -> TxnResult | None:
    """The TxnResult of an ``accord_put_if`` call that wrote (a repeat of
    one that committed reports the same way), or None when it was refused
    (then its rows are read as a ``txn``'s, with ``base.put_if_compares``)."""
    ok, rev1, now = rows[-1][10], rows[-1][12], rows[-1][13]
    if not ok:
        return None
    out = _stamp(plan.event, rev1, iso_time(now), expect + 1, expect, plan.hash)
    return TxnResult(True, rev1, {}, [out])
