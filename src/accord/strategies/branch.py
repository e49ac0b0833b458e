# WARNING: generated from src/accord/strategies/_branch_async.py
# by tools/async_to_sync.py; do not edit.
# Edit the async source and run: .venv/bin/python tools/async_to_sync.py
"""Isolated copies: fork a key, work on the copy alone, merge the copies at synthesis.

Each agent forks the key and gets a :class:`Branch`, a private copy based on
the version it forked from. Writing a branch needs no coordination with
anyone: it is a record of its own. At synthesis, ``store.merge(key,
branches)`` merges the branches three-way against their common base (see
:mod:`accord.merge`) and returns a :class:`Merge`: the merged value and a
report of every conflict. ``merge.commit()`` writes the value with a version
check; if the key moved since the base, the merge already took its current
value in as one more side (labelled ``"current"``), so nothing written
meanwhile is lost.

Records (written through the one atomic primitive):

``.accord/branch/<key>/<branch-id>``
    JSON: the branch's agent, base version, kind, value and status
    (``open``, ``merged`` or ``discarded``). It outlives the agent's process.
``.accord/base/<key>/<version>``
    The value of the key at a version some branch forked from, written once
    (a version's value never changes, so every fork of it shares the record).
    The store keeps only a key's current value, and a three-way merge needs
    the base.

The rules without I/O (record names, packing, ownership, a merge's checks
and report, the errors) are in :mod:`accord._core.branch`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._core.branch import (
    base_key,
    branch_moved,
    branch_prefix,
    cannot_fork,
    changed_while_written,
    check_branch_id,
    check_merge_item,
    check_merge_list,
    check_owner,
    closed,
    deleted_key,
    json_bytes,
    kind_moved,
    lineage_step,
    merge_detached,
    merge_report,
    missing_base,
    no_branch,
    no_such_branch,
    one_base,
    open_branches,
    pack,
    recreated,
    side_kind,
    unpack,
    unresolved,
    written_elsewhere,
    wrong_kind,
)
from .._core.faces import SessionLike, StoreLike
from .._core.write import make_event
from ..clock import encode_clock
from ..errors import InvalidValue, NotFound, PreconditionFailed
from ..keys import validate_key
from ..merge import MergeConflict, merge_values
from ..records import Append, Compare, Doc, Put, Record, Value, decode_value

__all__ = [
    "Branch",
    "Merge",
    "base_key",
    "branch_prefix",
    "branches",
    "fork",
    "get_branch",
    "merge",
]


@dataclass
class Branch:
    """A private copy of ``key`` based on ``base_version``, kept in the store.

    Get one with ``session.fork(key)``, or an existing one with
    ``session.branch(key, id)`` / ``session.branches(key)``. ``read()`` and
    ``write()`` touch only the branch; the key itself changes only when a
    merge of branches is committed. A branch takes values of the key's kind
    (text, JSON or bytes) so that it stays mergeable.

    A branch is private to the agent that forked it (``agent``): only a
    handle got through that agent's session may ``write()`` or
    ``discard()`` it; another agent's gets :class:`NotOwner`. Handles from
    ``store.branches(key)`` belong to no agent: they read, and go into
    ``store.merge()``, but do not write.
    """

    id: str
    key: str
    base_version: int
    agent: str
    kind: str
    _store: StoreLike = field(repr=False, compare=False)
    _version: int = field(default=0, repr=False, compare=False)
    _session: SessionLike | None = field(default=None, repr=False, compare=False)

    def _check_owner(self, doing: str) -> None:
        agent = None if self._session is None else self._session.agent
        check_owner(self.id, self.key, self.agent, agent, doing)

    @property
    def record_key(self) -> str:
        """The store key of this branch's record."""
        return branch_prefix(self.key) + self.id

    def _load(self) -> dict[str, Any]:
        rec = self._store.backend.get(self.record_key)
        if rec is None or rec.deleted:
            raise no_branch(self.id, self.key)
        self._version = rec.version
        data: dict[str, Any] = rec.value
        return data

    @property
    def status(self) -> str:
        """``open``, ``merged`` or ``discarded``, as stored now."""
        return str(self._load()["status"])

    def read(self) -> Value:
        """The branch's current value (text, JSON data or bytes)."""
        data = self._load()
        return unpack(data["kind"], data["value"])

    def write(self, value: Value) -> None:
        """Replace the branch's value. No one else is involved: no lock, no check.

        ``value`` must be of the key's kind (text for a text key, JSON data
        for a JSON key). Raises :class:`NotOwner` when this handle's agent
        did not fork the branch, :class:`PreconditionFailed` once the branch
        was merged or discarded (fork again), or when another handle of this
        branch wrote it since this one last read or wrote it (``read()``
        first).
        """
        self._check_owner("write")
        store = self._store
        kind, data = store.writes.encode(self.key, value)
        if kind != self.kind:
            raise wrong_kind(self.id, self.key, kind, self.kind)
        current = store.backend.get(self.record_key)
        if current is None or current.deleted:
            raise no_branch(self.id, self.key)
        meta = current.value
        if meta["status"] != "open":
            raise closed(meta)
        if self._version and current.version != self._version:
            raise written_elsewhere(self.id, self.key)
        meta = dict(meta)
        meta["value"] = pack(kind, data)
        result = store.backend.txn(
            [Compare(self.record_key, "version", "==", current.version)],
            [Put(self.record_key, "json", json_bytes(meta), self.agent)],
        )
        if not result.succeeded:
            rec = result.records.get(self.record_key)
            if rec is not None and not rec.deleted and rec.value["status"] != "open":
                raise closed(rec.value)
            raise changed_while_written(self.id, self.key)
        new = result.records.get(self.record_key)
        self._version = new.version if new is not None else self._version + 1

    def discard(self) -> None:
        """Close the branch without merging it; it no longer shows in ``branches()``.

        Only its owner may (:class:`NotOwner` otherwise).
        """
        self._check_owner("discard")
        data = self._load()
        if data["status"] != "open":
            raise closed(data)
        data = dict(data)
        data["status"] = "discarded"
        result = self._store.backend.txn(
            [Compare(self.record_key, "version", "==", self._version)],
            [Put(self.record_key, "json", json_bytes(data), self.agent)],
        )
        if not result.succeeded:
            raise PreconditionFailed(
                f"Branch {self.id} changed while being discarded; try again.", branch=self.id
            )


def _branch_from(store: StoreLike, rec: Record, session: SessionLike | None = None) -> Branch:
    data = rec.value
    return Branch(
        id=data["id"],
        key=data["key"],
        base_version=int(data["base_version"]),
        agent=data["agent"],
        kind=data["kind"],
        _store=store,
        _version=rec.version,
        _session=session,
    )


def fork(session: SessionLike, key: str) -> Branch:
    """A private copy of ``key``, based on its current version, persisted in the store.

    Raises :class:`NotFound` if the key does not exist (create it first).
    The caller may write the branch freely and should merge it (with the
    other branches of the same base) or ``discard()`` it.
    """
    validate_key(key)
    store = session.store
    store.writes.intercept(session, "fork", key)
    try:
        doc = session.read(key)
    except NotFound as exc:
        raise cannot_fork(key) from exc
    kind, data = store.writes.encode(key, doc.value)
    branch_id = "b-" + uuid.uuid4().hex[:12]
    meta = {
        "id": branch_id,
        "key": key,
        "agent": session.agent,
        "base_version": doc.version,
        "kind": kind,
        "value": pack(kind, data),
        "status": "open",
        "created": store.backend.now(),
    }
    lamport, vector = session._tick()
    event = make_event(
        session.agent,
        "fork",
        key,
        lamport,
        vector,
        check="none",
        based_on=doc.version,
        request=branch_id,
    )
    event["version"] = doc.version
    ops: list[Put | Append] = [
        Put(
            branch_prefix(key) + branch_id,
            "json",
            json_bytes(meta),
            session.agent,
            lamport,
            encode_clock(vector),
        ),
        Append(event),
    ]
    bkey = base_key(key, doc.version)
    if store.backend.get(bkey) is None:
        # A version's value never changes, so two forks racing here write the
        # same bytes: no compare needed.
        ops.insert(0, Put(bkey, kind, data, session.agent))
    result = store.backend.txn([], ops)
    rec = result.records[branch_prefix(key) + branch_id]
    assert rec is not None
    return _branch_from(store, rec, session)


def branches(store: StoreLike, key: str, session: SessionLike | None = None) -> list[Branch]:
    """The open branches of ``key``, oldest fork first (handles of ``session``'s agent)."""
    validate_key(key)
    prefix = branch_prefix(key)
    found = open_branches(store.backend.scan(prefix), prefix, key)
    return [_branch_from(store, rec, session) for rec in found]


def get_branch(
    store: StoreLike, key: str, branch_id: str, session: SessionLike | None = None
) -> Branch:
    """The branch ``branch_id`` of ``key`` (open or closed); :class:`NotFound` if none.

    The handle acts as ``session``'s agent (None: it may read but not write).
    """
    validate_key(key)
    check_branch_id(branch_id)
    rec = store.backend.get(branch_prefix(key) + branch_id)
    if rec is None or rec.deleted:
        raise no_such_branch(branch_id, key)
    return _branch_from(store, rec, session)


@dataclass
class Merge:
    """The result of merging branches of ``key``: a value and its conflict report.

    ``value`` is the merged value (for text with unresolved conflicts it
    holds git-style conflict markers; for JSON the base's value stays at
    each conflicting path). ``conflicts`` lists what is left unresolved;
    ``resolved`` what ``resolve`` settled. ``base_version`` is the version
    the branches forked from; ``current_version`` is the key's version when
    the merge was computed (the key's value then was one more side, labelled
    ``"current"``, if it differs from ``base_version``). ``commit()`` writes
    the value.
    """

    value: Any
    conflicts: list[MergeConflict]
    base_version: int
    key: str = ""
    current_version: int = 0
    branch_ids: list[str] = field(default_factory=list)
    resolved: list[MergeConflict] = field(default_factory=list)
    agent: str | None = None
    _store: StoreLike | None = field(default=None, repr=False, compare=False)
    _branch_versions: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _kind: str = field(default="text", repr=False, compare=False)

    @property
    def clean(self) -> bool:
        """True when no conflict is left: the merge can be committed."""
        return not self.conflicts

    def report(self) -> str:
        """Every unresolved conflict, described for a person or an agent."""
        return merge_report(
            self.key,
            self.branch_ids,
            self.conflicts,
            self.resolved,
            self.base_version,
            self.current_version,
        )

    def commit(self, agent: str | None = None) -> Doc:
        """Write the merged value to the key and close the merged branches, atomically.

        The write is checked against ``current_version``: if the key moved
        after the merge was computed, it raises :class:`Conflict` and writes
        nothing (merge again: the new value becomes a side). Raises
        :class:`PreconditionFailed` while conflicts are unresolved, or if a
        branch was written or closed after the merge was computed. Writes as
        ``agent`` (default: the agent given to ``store.merge``, else the first
        branch's agent).
        """
        if self._store is None:
            raise merge_detached()
        if self.conflicts:
            raise unresolved(self.key, self.conflicts)
        store = self._store
        backend = store.backend
        name = agent or self.agent
        if name is None:
            first = self.branch_ids[0]
            rec = backend.get(branch_prefix(self.key) + first)
            name = rec.value["agent"] if rec is not None and not rec.deleted else "merge"
        session = store.session(name)
        key = self.key
        kind, data = store.writes.encode(key, self.value)
        if kind != self._kind:
            raise InvalidValue(
                f"The merged value of {key} is {kind}, but the key holds {self._kind}."
            )
        store.writes.intercept(session, "merge", key, branches=list(self.branch_ids))
        lamport, vector = session._tick()
        clock_text = encode_clock(vector)
        event = make_event(
            session.agent,
            "merge",
            key,
            lamport,
            vector,
            check="merge",
            based_on=self.current_version,
            request=",".join(self.branch_ids),
        )
        event["branches"] = list(self.branch_ids)
        event["base"] = self.base_version
        # The version the merge was computed against; the write path adds
        # the guards of every write (a live lease on the key refuses the
        # commit) in front of it.
        compares = [Compare(key, "version", "==", self.current_version)]
        # The key exists at current_version (merge() checked), so the write
        # makes it current_version + 1; each branch records that it went
        # there, in the same transaction that writes the value.
        closing: list[Put] = []
        for branch_id, version in self._branch_versions.items():
            bkey = branch_prefix(key) + branch_id
            rec = backend.get(bkey)
            if rec is None or rec.deleted or rec.version != version:
                raise branch_moved(key, branch_id, rec)
            meta = dict(rec.value)
            meta["status"] = "merged"
            meta["merged_version"] = self.current_version + 1
            closing.append(Put(bkey, "json", json_bytes(meta), rec.author))
            # Re-checked inside the transaction: a branch written after the
            # merge was computed must not be closed with its change left out.
            compares.append(Compare(bkey, "version", "==", version))
        failed = dict(event)
        failed["outcome"] = "conflict"
        result = store.writes.commit(
            session,
            key,
            [Put(key, kind, data, session.agent, lamport, clock_text, event=event), *closing],
            compares=compares,
            failure=[Append(failed)],
        )
        if not result.succeeded:
            store.writes.explain(session, key, None, result)
            for branch_id, version in self._branch_versions.items():
                bkey = branch_prefix(key) + branch_id
                rec = result.records.get(bkey)
                if rec is None or rec.deleted or rec.version != version:
                    raise branch_moved(key, branch_id, rec)
            rec = result.records.get(key)
            raise store.writes.conflict(session, key, self.current_version, rec)
        ev = result.events[0]
        session.seen.remember(key, ev["version"], self.value)
        return Doc(
            key=key,
            value=self.value,
            version=ev["version"],
            revision=ev["rev"],
            author=session.agent,
            kind=kind,
            lamport=lamport,
            clock=vector,
        )


def _deleted_since(store: StoreLike, key: str, base_version: int) -> int | None:
    """The version of a delete of ``key`` after ``base_version`` (the latest), or None.

    Walks the key's changes back to ``base_version``: only the changes made
    since the fork (see :func:`accord._core.branch.lineage_step`).
    """
    for ev in store.backend.changes(key):
        stop, deleted_at = lineage_step(ev, base_version)
        if stop:
            return deleted_at
    return None


def merge(
    store: StoreLike,
    key: str,
    branch_list: Sequence[Branch],
    *,
    resolve: Callable[[MergeConflict], Any] | None = None,
    agent: str | None = None,
) -> Merge:
    """Merge ``branch_list`` of ``key`` three-way against their common base.

    Every branch must be an open branch of ``key`` forked from the same
    version (else :class:`UsageError`, nothing changed). If the key moved
    since that version, its current value joins as one more side labelled
    ``"current"``. Text merges by lines, JSON by path, bytes as a whole (see
    :mod:`accord.merge`). ``resolve(conflict)`` may settle each conflict by
    returning the content to use (None leaves it). Nothing is written until
    ``Merge.commit()``.
    """
    validate_key(key)
    check_merge_list(key, branch_list, Branch)
    backend = store.backend
    seen: set[str] = set()
    metas: list[tuple[Branch, Record]] = []
    for branch in branch_list:
        check_merge_item(key, branch, Branch, seen)
        rec = backend.get(branch.record_key)
        if rec is None or rec.deleted:
            raise NotFound(f"Branch {branch.id} of {key} does not exist in this store.")
        if rec.value["status"] != "open":
            raise closed(rec.value)
        metas.append((branch, rec))
    base_version = one_base(key, [(b.id, rec) for b, rec in metas])
    base_rec = backend.get(base_key(key, base_version))
    if base_rec is None or base_rec.deleted:
        raise missing_base(key, base_version)
    kind = base_rec.kind
    base_value = decode_value(base_rec.kind, base_rec.data)
    sides: list[tuple[str, Any]] = []
    for branch, rec in metas:
        data = rec.value
        side_kind(branch.id, key, kind, data["kind"], base_version)
        sides.append((branch.id, unpack(data["kind"], data["value"])))
    current = backend.get(key)
    if current is None or current.deleted:
        raise deleted_key(key, base_version)
    if current.version != base_version:
        deleted_at = _deleted_since(store, key, base_version)
        if deleted_at is not None:
            raise recreated(key, base_version, deleted_at, current.version)
        if current.kind != kind:
            raise kind_moved(key, current.kind, current.version, kind)
        sides.append(("current", decode_value(current.kind, current.data)))
    outcome = merge_values(kind, base_value, sides, resolve)
    return Merge(
        value=outcome.value,
        conflicts=outcome.conflicts,
        base_version=base_version,
        key=key,
        current_version=current.version,
        branch_ids=[b.id for b, _ in metas],
        resolved=outcome.resolved,
        agent=agent,
        _store=store,
        _branch_versions={b.id: rec.version for b, rec in metas},
        _kind=kind,
    )
