"""The writer role of a queue key: claimed, renewed, released, retired.

``.accord/queue/<key>/writer`` holds ``{"agent", "epoch", "deadline"}``
with ``author`` = the writer, like a lease: the deadline is on the store's
clock, renewed while the writer works, and once it passes another agent may
take the role over (the epoch moves on). The role belongs to the agent
*name*. The rules (who may take it, the errors) are in
:mod:`accord._core.queue`; this module reads and writes the record.
"""

from __future__ import annotations

from typing import Any

from .._core._faces_async import AsyncSessionLike, AsyncStoreLike
from .._core.queue import (
    ROLES,
    Role,
    fenced,
    held_by_other,
    json_bytes,
    named_writer,
    not_writer,
    policy_writer,
    role_busy,
    role_key,
    takeover,
    writer_info,
)
from ..keys import validate_key
from ..records import Compare, Delete, Put

__all__ = ["claim", "release", "renew", "retire", "writer_of"]


async def writer_of(store: AsyncStoreLike, key: str) -> dict[str, Any] | None:
    """Who holds the writer role of ``key``: ``{"agent", "epoch", "deadline", "live"}``.

    ``live`` is False once the deadline passed (the role may be taken over).
    Returns None when no session ever claimed the role. With a manifest
    naming a writer that has not claimed yet, returns that writer with
    ``epoch`` 0 and ``live`` False.
    """
    validate_key(key)
    rec = await store.backend.get(role_key(key))
    now = await store.backend.now() if rec is not None and not rec.deleted else 0.0
    return writer_info(rec, policy_writer(store, key), now)


async def claim(session: AsyncSessionLike, key: str, *, ttl: float, wait: float) -> Role:
    """Take (or keep) the writer role of ``key`` for this session's agent.

    The role belongs to the agent *name*: another process running as the
    same agent (the CLI, a restarted writer) continues it without waiting.
    Another agent gets it only once the holder's deadline has passed; this
    waits up to ``wait`` seconds (store clock) for that, then raises
    :class:`NotWriter`.
    """
    store = session.store
    backend = store.backend
    agent = session.agent
    named = policy_writer(store, key)
    if named is not None and named != agent:
        raise named_writer(key, named, agent)
    rkey = role_key(key)
    give_up: float | None = None
    while True:
        rec = await backend.get(rkey)
        now = await backend.now()
        if give_up is None:
            give_up = now + wait
        value = takeover(rec, agent, now, ttl)
        if value is not None:
            # A compare on the role's version makes the takeover atomic: if
            # the holder renewed (or someone else took over) between our read
            # and this commit, the version moved and we look again.
            version = 0 if rec is None or rec.deleted else rec.version
            result = await backend.txn(
                [Compare(rkey, "version", "==", version)],
                [Put(rkey, "json", json_bytes(value), agent)],
            )
            if result.succeeded:
                role = Role(key, int(value["epoch"]), ttl, now)
                ROLES.set(session, key, role)
                return role
            continue
        assert rec is not None
        left = give_up - now
        if left <= 0:
            raise role_busy(key, rec, agent, now)
        # The holder renews by writing the record, and a dead holder's role
        # lapses by the clock: wake on either, whichever comes first.
        lapse = max(0.005, rec.value["deadline"] - now)
        await backend.wait([rkey], [], rec.revision, min(left, lapse))


async def renew(session: AsyncSessionLike, role: Role, now: float) -> None:
    """Push the role's deadline forward when it is due; raise :class:`Fenced` if
    it was taken. ``now`` is the store clock."""
    if not role.due(now):
        return
    backend = session.store.backend
    rkey = role_key(role.key)
    rec = await backend.get(rkey)
    if held_by_other(rec, session.agent):
        ROLES.set(session, role.key, None)
        raise fenced(role.key, session.agent, rec)
    value = {"agent": session.agent, "epoch": role.epoch, "deadline": now + role.ttl}
    result = await backend.txn(
        [Compare(rkey, "holder", "==", session.agent)],
        [Put(rkey, "json", json_bytes(value), session.agent)],
    )
    if not result.succeeded:
        ROLES.set(session, role.key, None)
        raise fenced(role.key, session.agent, result.records.get(rkey))
    role.renewed = now


async def release(session: AsyncSessionLike, key: str) -> None:
    """Give up the writer role of ``key`` now, so another writer can take over at once.

    The key stays a queue key: direct writes by others are still refused
    until another writer claims the role. Releasing a role you do not hold
    does nothing.
    """
    validate_key(key)
    backend = session.store.backend
    rkey = role_key(key)
    rec = await backend.get(rkey)
    ROLES.set(session, key, None)
    if rec is None or rec.deleted or rec.author != session.agent:
        return
    value = dict(rec.value)
    value["deadline"] = await backend.now()
    await backend.txn(
        [Compare(rkey, "version", "==", rec.version)],
        [Put(rkey, "json", json_bytes(value), session.agent)],
    )


async def retire(session: AsyncSessionLike, key: str) -> None:
    """Turn ``key`` back into an ordinary key: remove its writer role record.

    Afterwards direct writes are guarded as for any key (no :class:`NotWriter`)
    until someone claims the role again. Only the role's holder may retire
    it, or anyone once the role has lapsed; otherwise :class:`NotWriter`.
    Pending requests stay pending.
    """
    validate_key(key)
    backend = session.store.backend
    rkey = role_key(key)
    rec = await backend.get(rkey)
    if rec is None or rec.deleted:
        return
    if rec.author != session.agent and rec.value["deadline"] > await backend.now():
        raise not_writer(key, rec.value["agent"], session.agent)
    ROLES.set(session, key, None)
    await backend.txn([Compare(rkey, "version", "==", rec.version)], [Delete(rkey, purge=True)])
