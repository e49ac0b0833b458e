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
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._core.write import make_event
from ..clock import encode_clock
from ..errors import (
    BackendUnavailable,
    InvalidValue,
    NotFound,
    NotOwner,
    PreconditionFailed,
    UsageError,
    call,
    var,
)
from ..keys import has_surrogate, internal, validate_key
from ..merge import MergeConflict, merge_values
from ..records import Append, Compare, Doc, Put, Record, Value, decode_value

if TYPE_CHECKING:
    from ..session import Session
    from ..store import Store

__all__ = ["Branch", "Merge", "branches", "fork", "get_branch", "merge"]


def branch_prefix(key: str) -> str:
    """The prefix under which the branches of ``key`` live."""
    return internal("branch", key) + "/"


def base_key(key: str, version: int) -> str:
    """The record holding the value of ``key`` at ``version`` for merges."""
    return internal("base", key, str(version))


def _pack(kind: str, data: bytes) -> Any:
    if kind == "text":
        return data.decode("utf-8")
    if kind == "json":
        return json.loads(data)
    return base64.b64encode(data).decode("ascii")


def _unpack(kind: str, stored: Any) -> Value:
    if kind == "bytes":
        return base64.b64decode(stored)
    return stored


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


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
    _store: Store = field(repr=False, compare=False)
    _version: int = field(default=0, repr=False, compare=False)
    _session: Session | None = field(default=None, repr=False, compare=False)

    def _check_owner(self, doing: str) -> None:
        session = self._session
        if session is None:
            raise UsageError(
                f"This handle of branch {self.id} of {self.key} belongs to no agent (it came "
                f"from {call('store.branches', self.key)}), so it cannot {doing} the branch. "
                f"Get it through its owner's session ({call('store.session', self.agent)}), "
                f"with {call('session.branch', self.key, self.id)}.",
                key=self.key,
                branch=self.id,
            )
        if session.agent != self.agent:
            raise NotOwner(
                f"Branch {self.id} of {self.key} belongs to {self.agent}, who forked it; "
                f"{session.agent} may not {doing} it (a branch is one agent's private copy). "
                f"Fork {self.key} for a copy of your own ({call('session.fork', self.key)}), and "
                "merge the branches at synthesis. Nothing was changed.",
                key=self.key,
                branch=self.id,
                owner=self.agent,
                agent=session.agent,
            )

    @property
    def record_key(self) -> str:
        """The store key of this branch's record."""
        return branch_prefix(self.key) + self.id

    def _load(self) -> dict[str, Any]:
        rec = self._store.backend.get(self.record_key)
        if rec is None or rec.deleted:
            raise NotFound(
                f"Branch {self.id} of {self.key} does not exist in this store. List the open "
                f"branches with {call('store.branches', self.key)}.",
                branch=self.id,
                key=self.key,
            )
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
        return _unpack(data["kind"], data["value"])

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
            raise InvalidValue(
                f"Branch {self.id} of {self.key} holds {self.kind} (the key's kind), not {kind}: "
                "a branch must stay mergeable with its base. Write a value of the same kind.",
                branch=self.id,
                key=self.key,
            )
        current = store.backend.get(self.record_key)
        if current is None or current.deleted:
            self._load()  # raises NotFound
        assert current is not None
        meta = current.value
        if meta["status"] != "open":
            raise _closed(meta)
        if self._version and current.version != self._version:
            raise PreconditionFailed(
                f"Branch {self.id} of {self.key} was written by another handle since this one "
                f"read it. Read it again ({call('branch.read')}) and write again.",
                branch=self.id,
                key=self.key,
            )
        meta = dict(meta)
        meta["value"] = _pack(kind, data)
        result = store.backend.txn(
            [Compare(self.record_key, "version", "==", current.version)],
            [Put(self.record_key, "json", _json_bytes(meta), self.agent)],
        )
        if not result.succeeded:
            rec = result.records.get(self.record_key)
            if rec is not None and not rec.deleted and rec.value["status"] != "open":
                raise _closed(rec.value)
            raise PreconditionFailed(
                f"Branch {self.id} of {self.key} changed while it was being written. Read it "
                f"again ({call('branch.read')}) and write again.",
                branch=self.id,
                key=self.key,
            )
        new = result.records.get(self.record_key)
        self._version = new.version if new is not None else self._version + 1

    def discard(self) -> None:
        """Close the branch without merging it; it no longer shows in ``branches()``.

        Only its owner may (:class:`NotOwner` otherwise).
        """
        self._check_owner("discard")
        data = self._load()
        if data["status"] != "open":
            raise _closed(data)
        data = dict(data)
        data["status"] = "discarded"
        result = self._store.backend.txn(
            [Compare(self.record_key, "version", "==", self._version)],
            [Put(self.record_key, "json", _json_bytes(data), self.agent)],
        )
        if not result.succeeded:
            raise PreconditionFailed(
                f"Branch {self.id} changed while being discarded; try again.", branch=self.id
            )


def _closed(meta: dict[str, Any]) -> PreconditionFailed:
    if meta["status"] == "merged":
        how = f"was merged into {meta['key']} version {meta.get('merged_version')}"
    else:
        how = "was discarded"
    return PreconditionFailed(
        f"Branch {meta['id']} of {meta['key']} {how}; it is closed. Fork {meta['key']} "
        "again for a new copy.",
        branch=meta["id"],
        key=meta["key"],
        status=meta["status"],
    )


def _branch_from(store: Store, rec: Record, session: Session | None = None) -> Branch:
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


def fork(session: Session, key: str) -> Branch:
    """A private copy of ``key``, based on its current version, persisted in the store.

    Raises :class:`NotFound` if the key does not exist (create it first).
    The caller may write the branch freely and should merge it (with the
    other branches of the same base) or ``discard()`` it.
    """
    validate_key(key)
    store = session.store
    session.store.writes.intercept(session, "fork", key)
    try:
        doc = session.read(key)
    except NotFound as exc:
        raise NotFound(
            f"Cannot fork {key}: it does not exist. Create it first with "
            f"{call('write', key, var('value'), expect=0)}, then fork it.",
            key=key,
        ) from exc
    kind, data = store.writes.encode(key, doc.value)
    branch_id = "b-" + uuid.uuid4().hex[:12]
    meta = {
        "id": branch_id,
        "key": key,
        "agent": session.agent,
        "base_version": doc.version,
        "kind": kind,
        "value": _pack(kind, data),
        "status": "open",
        "created": store.backend.now(),
    }
    lamport, vector = session.clock.tick()
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
            _json_bytes(meta),
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


def branches(store: Store, key: str, session: Session | None = None) -> list[Branch]:
    """The open branches of ``key``, oldest fork first (handles of ``session``'s agent)."""
    validate_key(key)
    prefix = branch_prefix(key)
    found = []
    for rec in store.backend.scan(prefix):
        # Keys nest ("a" and "a/b" are both keys): keep exactly prefix + id.
        if "/" in rec.key[len(prefix) :]:
            continue
        data = rec.value
        if data.get("key") == key and data.get("status") == "open":
            found.append((data.get("created", 0), data["id"], rec))
    found.sort(key=lambda item: (item[0], item[1]))
    return [_branch_from(store, rec, session) for _, _, rec in found]


def get_branch(store: Store, key: str, branch_id: str, session: Session | None = None) -> Branch:
    """The branch ``branch_id`` of ``key`` (open or closed); :class:`NotFound` if none.

    The handle acts as ``session``'s agent (None: it may read but not write).
    """
    validate_key(key)
    if (
        not isinstance(branch_id, str)
        or not branch_id
        or "/" in branch_id
        or has_surrogate(branch_id)
    ):
        raise UsageError(f"{branch_id!r} is not a branch id; ids look like 'b-3f2a...'.")
    rec = store.backend.get(branch_prefix(key) + branch_id)
    if rec is None or rec.deleted:
        raise NotFound(
            f"No branch {branch_id} of {key}. List the open branches with "
            f"{call('store.branches', key)}.",
            key=key,
            branch=branch_id,
        )
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
    _store: Store | None = field(default=None, repr=False, compare=False)
    _branch_versions: dict[str, int] = field(default_factory=dict, repr=False, compare=False)
    _kind: str = field(default="text", repr=False, compare=False)

    @property
    def clean(self) -> bool:
        """True when no conflict is left: the merge can be committed."""
        return not self.conflicts

    def report(self) -> str:
        """Every unresolved conflict, described for a person or an agent."""
        if not self.conflicts and self.resolved:
            where = ", ".join(c.where for c in self.resolved[:5])
            return (
                f"Merged {len(self.branch_ids)} branches of {self.key}; resolve settled "
                f"{len(self.resolved)} conflict(s) ({where}), keeping its answer there and "
                "dropping what the other sides wrote."
            )
        if not self.conflicts:
            return f"Merged {len(self.branch_ids)} branches of {self.key} cleanly."
        head = (
            f"{len(self.conflicts)} conflict(s) merging {len(self.branch_ids)} branches of "
            f"{self.key} (base v{self.base_version}"
            + (
                f", current v{self.current_version}"
                if self.current_version != self.base_version
                else ""
            )
            + "):"
        )
        return "\n".join([head, *(c.describe() for c in self.conflicts)])

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
            raise UsageError(
                "This Merge is not attached to a store; get it from "
                f"{call('store.merge', var('key'), var('branches'))}."
            )
        if self.conflicts:
            where = ", ".join(c.where for c in self.conflicts[:5])
            raise PreconditionFailed(
                f"The merge of {self.key} has {len(self.conflicts)} unresolved conflict(s) "
                f"({where}); nothing was written. Settle them with "
                f"{call('store.merge', self.key, var('branches'), resolve=var('fn'))}, or edit "
                "the branches so they agree and merge again.",
                key=self.key,
                conflicts=len(self.conflicts),
            )
        store = self._store
        name = agent or self.agent
        if name is None:
            first = self.branch_ids[0]
            rec = store.backend.get(branch_prefix(self.key) + first)
            name = rec.value["agent"] if rec is not None and not rec.deleted else "merge"
        session = store.session(name)
        key = self.key
        kind, data = store.writes.encode(key, self.value)
        if kind != self._kind:
            raise InvalidValue(
                f"The merged value of {key} is {kind}, but the key holds {self._kind}."
            )
        session.store.writes.intercept(session, "merge", key, branches=list(self.branch_ids))
        lamport, vector = session.clock.tick()
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
            rec = store.backend.get(bkey)
            if rec is None or rec.deleted or rec.version != version:
                raise _branch_moved(key, branch_id, rec)
            meta = dict(rec.value)
            meta["status"] = "merged"
            meta["merged_version"] = self.current_version + 1
            closing.append(Put(bkey, "json", _json_bytes(meta), rec.author))
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
                    raise _branch_moved(key, branch_id, rec)
            rec = result.records.get(key)
            raise session.store.writes.conflict(session, key, self.current_version, rec)
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


def _branch_moved(key: str, branch_id: str, rec: Record | None) -> PreconditionFailed:
    if rec is not None and not rec.deleted and rec.value["status"] != "open":
        return _closed(rec.value)
    return PreconditionFailed(
        f"Branch {branch_id} of {key} was written after this merge was computed; nothing was "
        "written. Merge again to include its latest value.",
        key=key,
        branch=branch_id,
    )


def _deleted_since(store: Store, key: str, base_version: int, current: int) -> int | None:
    """The version of a delete of ``key`` after ``base_version`` (the latest), or None.

    A key's lineage is the run of versions since its last create: a delete
    ends it and a re-create starts another, whose versions continue the
    count (versions are never reused) but whose content has nothing to do
    with the old one. Walks the key's changes back from ``current`` to
    ``base_version``: only the changes made since the fork.
    """
    for ev in store.backend.changes(key):
        version = ev.get("version")
        if not isinstance(version, int):
            continue  # a lease event listed by an older store
        if version <= base_version:
            return None
        if ev.get("op") == "delete":
            return version
    return None


def merge(
    store: Store,
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
    if isinstance(branch_list, Branch) or not isinstance(branch_list, Sequence):
        raise UsageError(
            f"{call('store.merge', key, var('branches'))} takes a list of branches, such as "
            "[b1, b2]."
        )
    if not branch_list:
        raise UsageError(
            f"Nothing to merge: pass the branches of {key} (list them with "
            f"{call('store.branches', key)})."
        )
    seen: set[str] = set()
    metas: list[tuple[Branch, Record]] = []
    for branch in branch_list:
        if not isinstance(branch, Branch):
            raise UsageError(
                f"{call('store.merge', key, var('branches'))} takes Branch objects (from "
                f"{call('session.fork', key)} or {call('store.branches', key)}), not "
                f"{type(branch).__name__}."
            )
        if branch.key != key:
            raise UsageError(
                f"Branch {branch.id} is a branch of {branch.key}, not {key}: merge the branches "
                "of one key at a time. Nothing was changed.",
                key=key,
                branch=branch.id,
            )
        if branch.id in seen:
            raise UsageError(f"Branch {branch.id} is listed twice; list each branch once.")
        seen.add(branch.id)
        rec = store.backend.get(branch.record_key)
        if rec is None or rec.deleted:
            raise NotFound(f"Branch {branch.id} of {key} does not exist in this store.")
        if rec.value["status"] != "open":
            raise _closed(rec.value)
        metas.append((branch, rec))
    bases = {int(rec.value["base_version"]) for _, rec in metas}
    if len(bases) > 1:
        by_base = "; ".join(
            f"v{v}: " + ", ".join(b.id for b, r in metas if int(r.value["base_version"]) == v)
            for v in sorted(bases)
        )
        raise UsageError(
            f"The branches of {key} have different bases ({by_base}). A three-way merge needs "
            "one common base: merge the branches of one base, commit, then merge the others "
            "(the committed value becomes their 'current' side). Nothing was changed.",
            key=key,
        )
    base_version = bases.pop()
    base_rec = store.backend.get(base_key(key, base_version))
    if base_rec is None or base_rec.deleted:
        raise BackendUnavailable(
            f"The base of {key} at version {base_version} is missing from the store, so the "
            "branches cannot be merged three-way. Fork again.",
            key=key,
        )
    kind = base_rec.kind
    base_value = decode_value(base_rec.kind, base_rec.data)
    sides: list[tuple[str, Any]] = []
    for branch, rec in metas:
        data = rec.value
        if data["kind"] != kind:
            raise InvalidValue(
                f"Branch {branch.id} holds {data['kind']} but {key} held {kind} at version "
                f"{base_version}: not mergeable. Write a {kind} value to the branch.",
                key=key,
                branch=branch.id,
            )
        sides.append((branch.id, _unpack(data["kind"], data["value"])))
    current = store.backend.get(key)
    if current is None or current.deleted:
        raise PreconditionFailed(
            f"{key} was deleted after the branches forked from version {base_version}; there "
            "is nothing to merge into. Re-create it "
            f"({call('write', key, var('value'), expect=0)}) and merge again, or discard the "
            "branches.",
            key=key,
        )
    if current.version != base_version:
        deleted_at = _deleted_since(store, key, base_version, current.version)
        if deleted_at is not None:
            raise PreconditionFailed(
                f"{key} was deleted (version {deleted_at}) after the branches forked from "
                f"version {base_version}, and created again: it is at version "
                f"{current.version} now, a new document that the branches are not edits of. "
                "Merging them would apply their changes to it. Nothing was changed. Discard "
                "the branches (or merge them into a key of their own), and fork the new "
                f"{key} for new work.",
                key=key,
                base_version=base_version,
                deleted_at=deleted_at,
                current=current.version,
            )
        if current.kind != kind:
            raise InvalidValue(
                f"{key} now holds {current.kind} (version {current.version}) but the branches "
                f"hold {kind}: not mergeable. Write a {kind} value to {key} first, or discard "
                "the branches.",
                key=key,
            )
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
