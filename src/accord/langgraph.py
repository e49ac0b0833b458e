"""LangGraph's long-term memory store on accord: ``AccordStore``, a drop-in ``BaseStore``.

LangGraph's stores assume that the last write wins: two parallel nodes that
read one item, change it and put it back keep one change and lose the other,
silently. :class:`AccordStore` keeps LangGraph's interface and adds what the
race needs::

    from accord.langgraph import AccordStore

    graph = builder.compile(store=AccordStore("sqlite:///state.db"))

* every :class:`VersionedItem` carries its ``version``;
* ``put(namespace, key, value, expect=item.version)`` writes only if nobody
  wrote the item since that version (:class:`accord.Conflict` otherwise,
  whose message says who changed it and the version to use);
* ``update(namespace, key, fn)`` is the read-modify-write loop that never
  loses a change (:func:`updates` turns ``fn`` into a node);
* a plain ``put`` over an existing item follows ``on_overwrite``:
  ``"refuse"`` (the default) raises :class:`accord.PreconditionRequired`;
  ``"last-write-wins"`` overwrites with a recorded blind write, which
  ``accord check`` reports as the lost update it may be.

Each item is one accord key, ``<prefix>/<label>/.../<key>`` (see
:func:`encode_key`), whose value is the JSON object ``{"value": ...,
"created_at": ..., "updated_at": ...}``. Which agent wrote it is the
LangGraph node that called the store (see ``agent=``).

No semantic index: ``search(query=...)`` raises :class:`accord.UsageError`
(``filter``, ``limit`` and ``offset`` work). No TTL: accord has no expiry for
agent keys, so ``supports_ttl`` is False and ``put(..., ttl=...)`` raises
``NotImplementedError`` as LangGraph's ``BaseStore`` does for such stores.

The async methods (``abatch``, ``aget``, ``aput``, ``adelete``,
``aupdate``, ...) run on accord's async API (:mod:`accord.aio`), opened on
first use over the same store: natively on PostgreSQL (no worker thread),
through the thread-offload adapter on SQLite and memory. Both faces share
one session per agent, so the history is the same whichever LangGraph uses
(see :meth:`AccordStore.astore`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal, cast

try:
    from langgraph.config import get_config
    from langgraph.store.base import (
        NOT_PROVIDED,
        BaseStore,
        GetOp,
        InvalidNamespaceError,
        Item,
        ListNamespacesOp,
        MatchCondition,
        NotProvided,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        validate_op_namespace,
    )
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "accord.langgraph needs LangGraph: pip install 'accord[langgraph]'."
    ) from exc

from ._async_twin import AsyncTwin
from ._segments import decode_segment as _decode_segment
from ._segments import encode_segment as _encode_segment
from ._session_async import AsyncSession
from ._store_async import AsyncStore
from .errors import InvalidKey, InvalidValue, NotFound, PreconditionRequired, UsageError
from .keys import MAX_KEY_LENGTH, validate_key
from .records import Doc, Record
from .session import Session
from .store import Store
from .store import open as open_store

__all__ = [
    "AccordStore",
    "OnOverwrite",
    "VersionedItem",
    "VersionedSearchItem",
    "decode_key",
    "encode_key",
    "updates",
]

OnOverwrite = Literal["refuse", "last-write-wins"]

DEFAULT_PREFIX = "langgraph"
DEFAULT_AGENT = "langgraph"
_PUSH = "__pregel_push"

# --- the key mapping ------------------------------------------------------------

def encode_key(namespace: Sequence[str], key: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The accord key of the LangGraph item ``(namespace, key)`` under ``prefix``.

    Each label and the key become one ``/``-separated segment: ``%``, ``/``
    and control characters are written ``%XX`` (upper-case hex), the
    segments ``.`` and ``..`` are written ``%2E`` and ``%2E%2E``, and the
    empty string is written ``%``. Everything else (non-ASCII included)
    stays as it is, so ``("docs", "user-1"), "plan"`` is
    ``langgraph/docs/user-1/plan``. :func:`decode_key` is the inverse.
    Raises :class:`accord.InvalidKey` when the result is longer than accord's
    512-character limit.
    """
    segments = [prefix, *(_encode_segment(label) for label in namespace), _encode_segment(key)]
    out = "/".join(segments)
    if len(out) > MAX_KEY_LENGTH:
        raise InvalidKey(
            f"The LangGraph item {tuple(namespace)!r} / {key!r} maps to an accord key of "
            f"{len(out)} characters, over the limit of {MAX_KEY_LENGTH}. Use shorter namespace "
            "labels or keys.",
            key=out[:80],
        )
    return out


def decode_key(accord_key: str, prefix: str = DEFAULT_PREFIX) -> tuple[tuple[str, ...], str] | None:
    """``(namespace, key)`` of an accord key made by :func:`encode_key`, else None."""
    head = prefix + "/"
    if not accord_key.startswith(head):
        return None
    parts = accord_key[len(head) :].split("/")
    decoded = [_decode_segment(p) for p in parts]
    if any(d is None for d in decoded):
        return None
    labels = cast(list[str], decoded)
    return tuple(labels[:-1]), labels[-1]


# --- items ------------------------------------------------------------------------


class VersionedItem(Item):
    """A LangGraph :class:`~langgraph.store.base.Item` with accord's ``version``.

    Pass ``version`` back as ``put(..., expect=item.version)`` to write only
    if nobody changed the item since you read it.
    """

    __slots__ = ("version",)

    def __init__(
        self,
        *,
        value: dict[str, Any],
        key: str,
        namespace: tuple[str, ...],
        created_at: datetime,
        updated_at: datetime,
        version: int,
    ) -> None:
        super().__init__(
            value=value,
            key=key,
            namespace=namespace,
            created_at=created_at,
            updated_at=updated_at,
        )
        self.version = version

    def dict(self) -> dict[str, Any]:
        out: dict[str, Any] = super().dict()
        out["version"] = self.version
        return out


class VersionedSearchItem(SearchItem):
    """A search result (``SearchItem``, ``score`` always None) with ``version``."""

    __slots__ = ("version",)

    def __init__(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        created_at: datetime,
        updated_at: datetime,
        score: float | None = None,
        *,
        version: int,
    ) -> None:
        super().__init__(namespace, key, value, created_at, updated_at, score)
        self.version = version

    def dict(self) -> dict[str, Any]:
        out: dict[str, Any] = super().dict()
        out["version"] = self.version
        return out


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _envelope(value: Mapping[str, Any], created_at: str, updated_at: str) -> dict[str, Any]:
    return {"created_at": created_at, "updated_at": updated_at, "value": dict(value)}


def _is_envelope(stored: Any) -> bool:
    return (
        isinstance(stored, dict)
        and set(stored) == {"created_at", "updated_at", "value"}
        and isinstance(stored["value"], dict)
        and isinstance(stored["created_at"], str)
        and isinstance(stored["updated_at"], str)
    )


def _check_value(namespace: tuple[str, ...], key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidValue(
            f"A LangGraph item's value must be a dict, not {type(value).__name__} "
            f"(item {namespace!r} / {key!r}). Wrap it: {{'value': ...}}."
        )
    return value


# --- filters and namespace matching (the semantics of LangGraph's InMemoryStore) ----


def _compare(item_value: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_operator(item_value, op, v) for op, v in wanted.items())
        if not isinstance(item_value, dict):
            return False
        return all(_compare(item_value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(item_value, (list, tuple))
            and len(item_value) == len(wanted)
            and all(_compare(a, b) for a, b in zip(item_value, wanted, strict=True))
        )
    return bool(item_value == wanted)


def _field(value: dict[str, Any], name: str) -> Any:
    # A dotted name reaches into nested objects ({"user.level": 1} matches
    # {"user": {"level": 1}}), as newer LangGraph stores do; a key that
    # itself contains the dots wins.
    if name in value or "." not in name:
        return value.get(name)
    current: Any = value
    for part in name.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def _operator(value: Any, op: str, wanted: Any) -> bool:
    if op == "$eq":
        return bool(value == wanted)
    if op == "$ne":
        return bool(value != wanted)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if value is None:
            return False
        try:
            a, b = float(value), float(wanted)
        except (TypeError, ValueError):
            return False
        return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]
    raise UsageError(
        f"Unsupported filter operator {op!r}: use $eq, $ne, $gt, $gte, $lt or $lte, or a "
        "plain value for equality."
    )


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        pairs = zip(namespace, path, strict=False)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(namespace), reversed(path), strict=False)
    else:
        raise UsageError(
            f"Unsupported namespace match type {condition.match_type!r}: use 'prefix' or 'suffix'."
        )
    return all(p == "*" or n == p for n, p in pairs)


# --- the store ----------------------------------------------------------------------


class AccordStore(BaseStore):
    """A LangGraph ``BaseStore`` whose items are versioned accord keys.

    ``store`` is an :class:`accord.Store` or a store URL (``sqlite:///...``,
    ``postgresql://...``, ``memory://``); a store opened here from a URL is
    closed by :meth:`close`. ``prefix`` is the accord key under which every
    item lives (default ``"langgraph"``). ``on_overwrite`` decides a plain
    ``put`` (no ``expect``) over an item that exists: ``"refuse"`` raises
    :class:`accord.PreconditionRequired`, ``"last-write-wins"`` overwrites
    with a blind write that the history records as one. A plain ``delete``
    of an existing item follows the same policy.

    ``agent`` names who does each operation: a fixed name, or a callable
    returning one. By default it is the LangGraph node that calls the store
    (its name, plus ``#`` and the task id for tasks started by ``Send``, so
    that parallel copies of one node are told apart), and ``"langgraph"``
    outside a graph run. Each name gets its own :class:`accord.Session`, so
    the history says which node wrote what and on which version it built.

    Safe to share between threads, nodes and graphs.
    """

    supports_ttl: bool = False

    def __init__(
        self,
        store: Store | str,
        *,
        prefix: str = DEFAULT_PREFIX,
        on_overwrite: OnOverwrite = "refuse",
        agent: str | Callable[[], str] | None = None,
    ) -> None:
        if on_overwrite not in ("refuse", "last-write-wins"):
            raise UsageError(
                f"on_overwrite must be 'refuse' or 'last-write-wins', not {on_overwrite!r}."
            )
        if not isinstance(prefix, str) or not prefix:
            raise UsageError("prefix must be a non-empty key prefix such as 'langgraph'.")
        validate_key(prefix)
        owned = isinstance(store, str)
        self.store: Store = open_store(store) if isinstance(store, str) else store
        self.prefix = prefix
        self.on_overwrite: OnOverwrite = on_overwrite
        self._agent = agent
        self._twin = AsyncTwin(self.store, owns_store=owned)

    def __repr__(self) -> str:
        return (
            f"AccordStore({self.store.url!r}, prefix={self.prefix!r}, "
            f"on_overwrite={self.on_overwrite!r})"
        )

    def close(self) -> None:
        """Close the async face (if opened), and the accord store if this
        object opened it from a URL."""
        self._twin.close()

    async def aclose(self) -> None:
        """:meth:`close` from async code."""
        await self._twin.aclose()

    def __enter__(self) -> AccordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> AccordStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- identity -------------------------------------------------------------

    def agent_name(self) -> str:
        """The agent name the next operation from this context runs as."""
        if callable(self._agent):
            return self._agent()
        if self._agent is not None:
            return self._agent
        try:
            config = get_config()
        except RuntimeError:
            return DEFAULT_AGENT
        metadata = config.get("metadata") or {}
        node = metadata.get("langgraph_node")
        if not isinstance(node, str) or not node:
            return DEFAULT_AGENT
        if _PUSH in (metadata.get("langgraph_triggers") or ()):
            task = (config.get("configurable") or {}).get("__pregel_task_id")
            if not isinstance(task, str) or not task:
                # The checkpoint namespace ends with "node:task_id".
                task = str(metadata.get("langgraph_checkpoint_ns", "")).rpartition(":")[2]
            if task:
                return f"{node}#{task[:8]}"
        return node

    def session(self) -> Session:
        """The :class:`accord.Session` of the calling node (see ``agent``)."""
        return self.store.session(self.agent_name())

    # --- keys -------------------------------------------------------------------

    def accord_key(self, namespace: Sequence[str], key: str) -> str:
        """The accord key that holds the item ``(namespace, key)``."""
        return encode_key(tuple(namespace), key, self.prefix)

    def _decode(self, accord_key: str) -> tuple[tuple[str, ...], str] | None:
        return decode_key(accord_key, self.prefix)

    # --- batch --------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops`` in order, each as its own accord operation (not one transaction)."""
        results: list[Result] = []
        for op in ops:
            step = _step(op)
            kind = step[0]
            if kind == "get":
                results.append(self._get(step[1], step[2]))
            elif kind == "search":
                results.append(self._search(step[1]))
            elif kind == "list":
                results.append(self._list_namespaces(step[1]))
            elif kind == "put":
                self._put(step[1], step[2], step[3], None)
                results.append(None)
            else:
                self._delete(step[1], step[2], None)
                results.append(None)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` on accord's async API (see the module docstring)."""
        results: list[Result] = []
        for op in ops:
            step = _step(op)
            kind = step[0]
            if kind == "get":
                results.append(await self._aget(step[1], step[2]))
            elif kind == "search":
                results.append(await self._asearch(step[1]))
            elif kind == "list":
                results.append(await self._alist_namespaces(step[1]))
            elif kind == "put":
                await self._aput(step[1], step[2], step[3], None)
                results.append(None)
            else:
                await self._adelete(step[1], step[2], None)
                results.append(None)
        return results

    # --- the versioned calls ----------------------------------------------------------

    def get(
        self,
        namespace: tuple[str, ...],
        key: str,
        *,
        refresh_ttl: bool | None = None,
    ) -> VersionedItem | None:
        """The item, with its ``version``, or None if it does not exist."""
        return cast(VersionedItem | None, super().get(namespace, key, refresh_ttl=refresh_ttl))

    async def aget(
        self,
        namespace: tuple[str, ...],
        key: str,
        *,
        refresh_ttl: bool | None = None,
    ) -> VersionedItem | None:
        """:meth:`get` from async code."""
        item = await super().aget(namespace, key, refresh_ttl=refresh_ttl)
        return cast(VersionedItem | None, item)

    def put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
        expect: int | None = None,
    ) -> None:
        """Store ``value`` as the item ``(namespace, key)``.

        With ``expect=v`` the write happens only if the item is still at
        version ``v`` (``expect=0``: only if it does not exist); otherwise
        :class:`accord.Conflict` says who changed it and which version to use.
        Without ``expect`` a new item is created; an existing one is handled
        as ``on_overwrite`` says. ``index`` is ignored (no semantic index).
        """
        _check_ttl(ttl)
        _check_namespace(namespace)
        self._put(tuple(namespace), str(key), value, expect)

    async def aput(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        index: Literal[False] | list[str] | None = None,
        *,
        ttl: float | NotProvided | None = NOT_PROVIDED,
        expect: int | None = None,
    ) -> None:
        """:meth:`put` from async code."""
        _check_ttl(ttl)
        _check_namespace(namespace)
        await self._aput(tuple(namespace), str(key), value, expect)

    def delete(self, namespace: tuple[str, ...], key: str, *, expect: int | None = None) -> None:
        """Delete the item; nothing happens if it does not exist.

        With ``expect=v`` only if it is still at version ``v``. Without it an
        existing item is handled as ``on_overwrite`` says (refused by default).
        """
        validate_op_namespace(GetOp(namespace, str(key)))
        self._delete(tuple(namespace), str(key), expect)

    async def adelete(
        self, namespace: tuple[str, ...], key: str, *, expect: int | None = None
    ) -> None:
        """:meth:`delete` from async code."""
        validate_op_namespace(GetOp(namespace, str(key)))
        await self._adelete(tuple(namespace), str(key), expect)

    def update(
        self,
        namespace: tuple[str, ...],
        key: str,
        fn: Callable[[dict[str, Any] | None], Mapping[str, Any]],
        *,
        retries: int = 8,
    ) -> VersionedItem:
        """Read the item, compute ``fn(value)`` and write it back if nobody wrote between.

        ``fn`` receives the current value (None if the item does not exist)
        and returns the new value (a dict). On a conflict the loop re-reads
        and calls ``fn`` again, so ``fn`` must be safe to call more than once
        and must not change its argument in place. Returns the written item.
        Raises :class:`accord.RetriesExhausted` after ``retries`` lost rounds.
        """
        _check_namespace(namespace)
        ns, k = tuple(namespace), str(key)
        akey = self.accord_key(ns, k)
        apply = self._updater(ns, k, fn, self._unwrap)
        doc = self.session().update(akey, apply, retries=retries)
        return self._item(ns, k, doc)

    async def aupdate(
        self,
        namespace: tuple[str, ...],
        key: str,
        fn: Callable[[dict[str, Any] | None], Mapping[str, Any]],
        *,
        retries: int = 8,
    ) -> VersionedItem:
        """:meth:`update` from async code (``fn`` runs on the event loop)."""
        _check_namespace(namespace)
        ns, k = tuple(namespace), str(key)
        akey = self.accord_key(ns, k)
        session = await self.asession()
        times: tuple[str, str] | None = None

        def unwrap(akey: str, stored: Any) -> tuple[dict[str, Any], str, str]:
            # ``fn`` runs inside the update loop, where nothing is awaited: a
            # value that needs its history for its times asks for it first.
            known = self._unwrap_known(akey, stored)
            if known is not None:
                return known
            if times is None:
                raise _NeedTimes
            return stored, *times

        while True:
            try:
                doc = await session.update(
                    akey, self._updater(ns, k, fn, unwrap), retries=retries
                )
            except _NeedTimes:
                times = await self._atimes_from_history(akey)
                continue
            return await self._aitem(ns, k, doc)

    # --- the async face ----------------------------------------------------------------

    async def astore(self) -> AsyncStore:
        """The :class:`accord.aio.AsyncStore` the async methods run on.

        Opened on first use over :attr:`store`: on PostgreSQL natively (its
        own async connection pool on the same URL), on SQLite and memory
        through the thread-offload adapter over the same backend. It shares
        :attr:`store`'s sessions, hooks, guards and policy; :meth:`close`
        (or :meth:`aclose`) closes it.
        """
        return await self._twin.get()

    async def asession(self) -> AsyncSession:
        """The :class:`accord.aio.AsyncSession` of the calling node (see ``agent``)."""
        return (await self.astore()).session(self.agent_name())

    # --- implementation (each rule once; the I/O of each face around it) ---------------

    def _get(self, namespace: tuple[str, ...], key: str) -> VersionedItem | None:
        akey = self.accord_key(namespace, key)
        try:
            doc = self.session().read(akey)
        except NotFound:
            return None
        return self._item(namespace, key, doc)

    async def _aget(self, namespace: tuple[str, ...], key: str) -> VersionedItem | None:
        akey = self.accord_key(namespace, key)
        try:
            doc = await (await self.asession()).read(akey)
        except NotFound:
            return None
        return await self._aitem(namespace, key, doc)

    def _put(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        expect: int | None,
    ) -> None:
        value, akey = self._put_args(namespace, key, value)
        session = self.session()
        if self._overwrites(expect):
            envelope = self._overwrite_envelope(akey, value, expect, self.store.backend.get(akey))
            session.write(akey, envelope, **_guard(expect))
            return
        try:
            session.write(akey, _new_envelope(value))
        except PreconditionRequired as exc:
            raise _refused_put(exc, namespace, key) from None

    async def _aput(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: Mapping[str, Any],
        expect: int | None,
    ) -> None:
        value, akey = self._put_args(namespace, key, value)
        session = await self.asession()
        if self._overwrites(expect):
            rec = await session.store.backend.get(akey)
            envelope = await self._aoverwrite_envelope(akey, value, expect, rec)
            await session.write(akey, envelope, **_guard(expect))
            return
        try:
            await session.write(akey, _new_envelope(value))
        except PreconditionRequired as exc:
            raise _refused_put(exc, namespace, key) from None

    def _put_args(
        self, namespace: tuple[str, ...], key: str, value: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], str]:
        _check_namespace(namespace)
        return _check_value(namespace, key, value), self.accord_key(namespace, key)

    def _overwrites(self, expect: int | None) -> bool:
        # A write over what may exist: versioned, or blind by policy; the
        # item's creation time is carried over.
        return expect is not None or self.on_overwrite == "last-write-wins"

    def _overwrite_envelope(
        self, akey: str, value: Mapping[str, Any], expect: int | None, rec: Record | None
    ) -> dict[str, Any]:
        now = _now()
        stored = _carried(rec, expect)
        created = None if stored is None else self._unwrap(akey, stored)[1]
        return _envelope(value, created or now, now)

    async def _aoverwrite_envelope(
        self, akey: str, value: Mapping[str, Any], expect: int | None, rec: Record | None
    ) -> dict[str, Any]:
        now = _now()
        stored = _carried(rec, expect)
        created = None if stored is None else (await self._aunwrap(akey, stored))[1]
        return _envelope(value, created or now, now)

    def _delete(self, namespace: tuple[str, ...], key: str, expect: int | None) -> None:
        akey = self.accord_key(namespace, key)
        session = self.session()
        if expect is not None:
            session.delete(akey, expect=expect)
        elif self.on_overwrite == "last-write-wins":
            with contextlib.suppress(NotFound):
                session.delete(akey, force=True)
        else:
            _refuse_delete(namespace, key, akey, self.store.backend.get(akey))

    async def _adelete(self, namespace: tuple[str, ...], key: str, expect: int | None) -> None:
        akey = self.accord_key(namespace, key)
        session = await self.asession()
        if expect is not None:
            await session.delete(akey, expect=expect)
        elif self.on_overwrite == "last-write-wins":
            with contextlib.suppress(NotFound):
                await session.delete(akey, force=True)
        else:
            _refuse_delete(namespace, key, akey, await session.store.backend.get(akey))

    def _unwrap_known(self, akey: str, stored: Any) -> tuple[dict[str, Any], str, str] | None:
        """The value and times of a stored item, or None if its times are in its history."""
        if _is_envelope(stored):
            return stored["value"], stored["created_at"], stored["updated_at"]
        if isinstance(stored, dict):
            return None
        raise InvalidValue(
            f"{akey} holds {type(stored).__name__} data, not a LangGraph item (a JSON object). "
            f"Something other than AccordStore wrote it; move it out of the '{self.prefix}/' "
            "prefix or write a JSON object there.",
            key=akey,
        )

    def _unwrap(self, akey: str, stored: Any) -> tuple[dict[str, Any], str, str]:
        known = self._unwrap_known(akey, stored)
        if known is not None:
            return known
        return stored, *_times_of(self.store.backend.changes(akey))

    async def _aunwrap(self, akey: str, stored: Any) -> tuple[dict[str, Any], str, str]:
        known = self._unwrap_known(akey, stored)
        if known is not None:
            return known
        return stored, *(await self._atimes_from_history(akey))

    async def _atimes_from_history(self, akey: str) -> tuple[str, str]:
        events: list[dict[str, Any]] = []
        async for event in (await self.astore()).backend.changes(akey):
            events.append(event)
            if event.get("op") == "delete":
                break
        return _times_of(events)

    def _updater(
        self,
        namespace: tuple[str, ...],
        key: str,
        fn: Callable[[dict[str, Any] | None], Mapping[str, Any]],
        unwrap: Callable[[str, Any], tuple[dict[str, Any], str, str]],
    ) -> Callable[[Any], dict[str, Any]]:
        akey = self.accord_key(namespace, key)

        def apply(stored: Any) -> dict[str, Any]:
            now = _now()
            if stored is None:
                old, created = None, now
            else:
                old, created, _ = unwrap(akey, stored)
            new = fn(None if old is None else dict(old))
            return _envelope(_check_value(namespace, key, new), created, now)

        return apply

    def _item(self, namespace: tuple[str, ...], key: str, doc: Doc) -> VersionedItem:
        return _item_of(namespace, key, doc, self._unwrap(doc.key, doc.value))

    async def _aitem(self, namespace: tuple[str, ...], key: str, doc: Doc) -> VersionedItem:
        return _item_of(namespace, key, doc, await self._aunwrap(doc.key, doc.value))

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix, scan = self._search_scan(op)
        found = [
            (decoded, doc, self._unwrap(doc.key, doc.value))
            for doc in self.session().scan(scan)
            if (decoded := self._search_decode(prefix, doc)) is not None
        ]
        return _search_results(op, found)

    async def _asearch(self, op: SearchOp) -> list[SearchItem]:
        prefix, scan = self._search_scan(op)
        found = [
            (decoded, doc, await self._aunwrap(doc.key, doc.value))
            for doc in await (await self.asession()).scan(scan)
            if (decoded := self._search_decode(prefix, doc)) is not None
        ]
        return _search_results(op, found)

    def _search_scan(self, op: SearchOp) -> tuple[tuple[str, ...], str]:
        if op.query is not None:
            raise UsageError(
                "AccordStore has no semantic index, so search(query=...) is not supported. "
                "Search with filter= (exact values and $eq/$ne/$gt/$gte/$lt/$lte), or keep "
                "semantic memories in a store configured with index=."
            )
        prefix = tuple(op.namespace_prefix)
        return prefix, self.prefix + "/" + "".join(_encode_segment(lb) + "/" for lb in prefix)

    def _search_decode(
        self, prefix: tuple[str, ...], doc: Doc
    ) -> tuple[tuple[str, ...], str] | None:
        decoded = self._decode(doc.key)
        if decoded is None or not decoded[0] or decoded[0][: len(prefix)] != prefix:
            return None
        return decoded

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        # Listing reads keys, not items: straight from the backend, so it
        # does not count as having read (and built on) every item.
        records = self.store.backend.scan(self._list_scan(op))
        return self._namespaces(op, records)

    async def _alist_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        records = await (await self.astore()).backend.scan(self._list_scan(op))
        return self._namespaces(op, records)

    def _list_scan(self, op: ListNamespacesOp) -> str:
        # Narrow the scan to the literal labels a prefix condition starts with.
        literal: list[str] = []
        for condition in op.match_conditions or ():
            if condition.match_type == "prefix":
                for label in condition.path:
                    if label == "*":
                        break
                    literal.append(label)
                break
        return self.prefix + "/" + "".join(_encode_segment(label) + "/" for label in literal)

    def _namespaces(self, op: ListNamespacesOp, records: Iterable[Record]) -> list[tuple[str, ...]]:
        conditions = tuple(op.match_conditions or ())
        namespaces: set[tuple[str, ...]] = set()
        for rec in records:
            decoded = self._decode(rec.key)
            if decoded is None or not decoded[0]:
                continue
            namespace = decoded[0]
            if all(_matches(c, namespace) for c in conditions):
                namespaces.add(namespace if op.max_depth is None else namespace[: op.max_depth])
        return sorted(namespaces)[op.offset : op.offset + op.limit]


# --- the rules both faces share (no I/O) ---------------------------------------------

def _step(op: Op) -> Any:
    """What one LangGraph op asks for, checked: the decoding ``batch`` and
    ``abatch`` share."""
    validate_op_namespace(op)
    if isinstance(op, GetOp):
        return ("get", tuple(op.namespace), op.key)
    if isinstance(op, SearchOp):
        return ("search", op)
    if isinstance(op, ListNamespacesOp):
        return ("list", op)
    if isinstance(op, PutOp):
        if op.ttl is not None:
            raise NotImplementedError(_NO_TTL)
        if op.value is None:
            return ("delete", tuple(op.namespace), op.key)
        return ("put", tuple(op.namespace), op.key, op.value)
    raise UsageError(f"Unknown LangGraph store operation {type(op).__name__}.")


class _NeedTimes(Exception):
    """Inside ``aupdate``'s loop: the item's times are in its history."""


def _check_ttl(ttl: float | NotProvided | None) -> None:
    if ttl not in (NOT_PROVIDED, None):
        raise NotImplementedError(_NO_TTL)


def _guard(expect: int | None) -> dict[str, Any]:
    return {"expect": expect} if expect is not None else {"force": True}


def _new_envelope(value: Mapping[str, Any]) -> dict[str, Any]:
    now = _now()
    return _envelope(value, now, now)


def _carried(rec: Record | None, expect: int | None) -> dict[str, Any] | None:
    # The stored item whose creation time an overwrite carries over. This
    # read records nothing and does not move the session's based_on, so a
    # blind overwrite still shows the version its node really read.
    if rec is None or rec.deleted or (expect is not None and rec.version != expect):
        return None
    stored = rec.value
    return stored if isinstance(stored, dict) else None


def _refused_put(
    exc: PreconditionRequired, namespace: tuple[str, ...], key: str
) -> PreconditionRequired:
    return PreconditionRequired(
        f"{exc.message} In LangGraph terms: item {namespace!r} / {key!r} exists, and "
        "this AccordStore refuses blind overwrites. Pass expect=item.version (from "
        "store.get()) to store.put(), use store.update(namespace, key, fn), or open "
        "AccordStore(..., on_overwrite='last-write-wins') to allow them (accord check "
        "then reports the updates they lose).",
        **exc._details,
    )


def _refuse_delete(
    namespace: tuple[str, ...], key: str, akey: str, rec: Record | None
) -> None:
    if rec is None or rec.deleted:
        return
    raise PreconditionRequired(
        f"Refusing to delete the LangGraph item {namespace!r} / {key!r} (accord key {akey}, "
        f"version {rec.version}, by {rec.author}) without a version: a blind delete can "
        "erase a change you have not seen. Read it and call store.delete(namespace, key, "
        "expect=item.version), or open AccordStore(..., on_overwrite='last-write-wins').",
        key=akey,
        current=rec.version,
    )


def _times_of(events: Iterable[dict[str, Any]]) -> tuple[str, str]:
    # A plain JSON object written by another accord client: its history
    # (newest first) knows when it was created (after its last delete) and
    # last changed.
    updated: str | None = None
    created: str | None = None
    for event in events:
        if event.get("op") == "delete":
            break
        time = str(event.get("time"))
        updated = updated or time
        created = time
    fallback = _now()
    return _iso_from_event(created) or fallback, _iso_from_event(updated) or fallback


def _item_of(
    namespace: tuple[str, ...], key: str, doc: Doc, unwrapped: tuple[dict[str, Any], str, str]
) -> VersionedItem:
    value, created, updated = unwrapped
    return VersionedItem(
        value=value,
        key=key,
        namespace=namespace,
        created_at=datetime.fromisoformat(created),
        updated_at=datetime.fromisoformat(updated),
        version=doc.version,
    )


def _search_results(
    op: SearchOp,
    found: Iterable[tuple[tuple[tuple[str, ...], str], Doc, tuple[dict[str, Any], str, str]]],
) -> list[SearchItem]:
    out: list[SearchItem] = []
    for (namespace, key), doc, (value, created, updated) in found:
        if op.filter and not all(_compare(_field(value, k), v) for k, v in op.filter.items()):
            continue
        out.append(
            VersionedSearchItem(
                namespace,
                key,
                value,
                datetime.fromisoformat(created),
                datetime.fromisoformat(updated),
                version=doc.version,
            )
        )
    out.sort(key=lambda item: (item.namespace, item.key))
    return out[op.offset : op.offset + op.limit]


_NO_TTL = (
    "TTL is not supported by AccordStore: accord has no expiry for agent keys. Set ttl=None, "
    "and delete items when they are no longer needed."
)


def _check_namespace(namespace: Sequence[str]) -> None:
    # LangGraph's own exception, as its stores raise it: callers catch it.
    if not namespace:
        raise InvalidNamespaceError(
            "A LangGraph namespace cannot be empty; use a tuple such as ('docs',)."
        )
    validate_op_namespace(GetOp(tuple(namespace), ""))
    if namespace[0] == "langgraph":
        raise InvalidNamespaceError(
            f"The root label of a namespace cannot be 'langgraph' (LangGraph reserves it): "
            f"{tuple(namespace)!r}."
        )


def _iso_from_event(time: str | None) -> str | None:
    if not time or time == "None":
        return None
    return time.replace("Z", "+00:00")


# --- the helper for parallel nodes ---------------------------------------------------------


def updates(
    namespace: tuple[str, ...] | Callable[[Any], tuple[str, ...]],
    key: str | Callable[[Any], str],
    *,
    retries: int = 8,
) -> Callable[[Callable[[dict[str, Any] | None, Any], Mapping[str, Any]]], Callable[..., None]]:
    """Make a LangGraph node that read-modify-writes one item without losing updates.

    Decorate ``fn(value, state) -> new value``; the result is a node
    ``node(state, *, store)`` that runs ``store.update(namespace, key, ...)``
    (``namespace`` and ``key`` may be functions of the state). Parallel
    nodes built this way never lose each other's changes: a node that lost
    the race re-reads and runs ``fn`` again, so ``fn`` must be safe to call
    more than once. The node returns no state update. The graph must be
    compiled with an :class:`AccordStore`::

        @updates(("docs",), "report")
        def add_finding(doc, state):
            doc = doc or {"lines": []}
            return {"lines": [*doc["lines"], state["finding"]]}

        builder.add_node("add_finding", add_finding)
    """

    def decorate(
        fn: Callable[[dict[str, Any] | None, Any], Mapping[str, Any]],
    ) -> Callable[..., None]:
        def node(state: Any, *, store: BaseStore) -> None:
            if not isinstance(store, AccordStore):
                raise UsageError(
                    f"The node {fn.__name__} updates a shared item safely only on an "
                    f"AccordStore, but the graph's store is {type(store).__name__} (or none). "
                    "Compile the graph with store=AccordStore(...)."
                )
            ns = namespace(state) if callable(namespace) else namespace
            k = key(state) if callable(key) else key
            store.update(ns, k, lambda value: fn(value, state), retries=retries)

        # Not functools.wraps: LangGraph reads the node's own signature to
        # pass ``store``, and __wrapped__ would show it fn's instead.
        node.__name__ = fn.__name__
        node.__qualname__ = fn.__qualname__
        node.__doc__ = fn.__doc__
        return node

    return decorate
