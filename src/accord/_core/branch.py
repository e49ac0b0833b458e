"""Branches and merges without I/O, run by both faces.

The names of the branch and base records, a value packed into a branch
record and back, who may write a branch, the checks of a merge's arguments
and lineage, the merge report, and the errors. The I/O layer
(:mod:`accord.strategies._branch_async`, from which
:mod:`accord.strategies.branch` is generated) reads the store around them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any

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
from ..keys import has_surrogate, internal
from ..merge import MergeConflict
from ..records import Record, Value


def branch_prefix(key: str) -> str:
    """The prefix under which the branches of ``key`` live."""
    return internal("branch", key) + "/"


def base_key(key: str, version: int) -> str:
    """The record holding the value of ``key`` at ``version`` for merges."""
    return internal("base", key, str(version))


def pack(kind: str, data: bytes) -> Any:
    """A value as a branch record keeps it (JSON-storable; bytes as base64)."""
    if kind == "text":
        return data.decode("utf-8")
    if kind == "json":
        return json.loads(data)
    return base64.b64encode(data).decode("ascii")


def unpack(kind: str, stored: Any) -> Value:
    if kind == "bytes":
        return base64.b64decode(stored)
    return stored


def json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode("utf-8")


def open_branches(records: list[Record], prefix: str, key: str) -> list[Record]:
    """The open branches of ``key`` among a scan of ``prefix``, oldest fork first."""
    found = []
    for rec in records:
        # Keys nest ("a" and "a/b" are both keys): keep exactly prefix + id.
        if "/" in rec.key[len(prefix) :]:
            continue
        data = rec.value
        if data.get("key") == key and data.get("status") == "open":
            found.append((data.get("created", 0), data["id"], rec))
    found.sort(key=lambda item: (item[0], item[1]))
    return [rec for _, _, rec in found]


def check_branch_id(branch_id: object) -> None:
    if (
        not isinstance(branch_id, str)
        or not branch_id
        or "/" in branch_id
        or has_surrogate(branch_id)
    ):
        raise UsageError(f"{branch_id!r} is not a branch id; ids look like 'b-3f2a...'.")


# --- errors ------------------------------------------------------------------------


def check_owner(branch_id: str, key: str, owner: str, agent: str | None, doing: str) -> None:
    """Refuse to ``doing`` a branch through a handle of ``agent`` unless it is ``owner``."""
    if agent is None:
        raise UsageError(
            f"This handle of branch {branch_id} of {key} belongs to no agent (it came "
            f"from {call('store.branches', key)}), so it cannot {doing} the branch. "
            f"Get it through its owner's session ({call('store.session', owner)}), "
            f"with {call('session.branch', key, branch_id)}.",
            key=key,
            branch=branch_id,
        )
    if agent != owner:
        raise NotOwner(
            f"Branch {branch_id} of {key} belongs to {owner}, who forked it; "
            f"{agent} may not {doing} it (a branch is one agent's private copy). "
            f"Fork {key} for a copy of your own ({call('session.fork', key)}), and "
            "merge the branches at synthesis. Nothing was changed.",
            key=key,
            branch=branch_id,
            owner=owner,
            agent=agent,
        )


def no_branch(branch_id: str, key: str) -> NotFound:
    return NotFound(
        f"Branch {branch_id} of {key} does not exist in this store. List the open "
        f"branches with {call('store.branches', key)}.",
        branch=branch_id,
        key=key,
    )


def wrong_kind(branch_id: str, key: str, kind: str, wanted: str) -> InvalidValue:
    return InvalidValue(
        f"Branch {branch_id} of {key} holds {wanted} (the key's kind), not {kind}: "
        "a branch must stay mergeable with its base. Write a value of the same kind.",
        branch=branch_id,
        key=key,
    )


def written_elsewhere(branch_id: str, key: str) -> PreconditionFailed:
    return PreconditionFailed(
        f"Branch {branch_id} of {key} was written by another handle since this one "
        f"read it. Read it again ({call('branch.read')}) and write again.",
        branch=branch_id,
        key=key,
    )


def changed_while_written(branch_id: str, key: str) -> PreconditionFailed:
    return PreconditionFailed(
        f"Branch {branch_id} of {key} changed while it was being written. Read it "
        f"again ({call('branch.read')}) and write again.",
        branch=branch_id,
        key=key,
    )


def closed(meta: dict[str, Any]) -> PreconditionFailed:
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


def branch_moved(key: str, branch_id: str, rec: Record | None) -> PreconditionFailed:
    if rec is not None and not rec.deleted and rec.value["status"] != "open":
        return closed(rec.value)
    return PreconditionFailed(
        f"Branch {branch_id} of {key} was written after this merge was computed; nothing was "
        "written. Merge again to include its latest value.",
        key=key,
        branch=branch_id,
    )


def cannot_fork(key: str) -> NotFound:
    return NotFound(
        f"Cannot fork {key}: it does not exist. Create it first with "
        f"{call('write', key, var('value'), expect=0)}, then fork it.",
        key=key,
    )


def no_such_branch(branch_id: str, key: str) -> NotFound:
    return NotFound(
        f"No branch {branch_id} of {key}. List the open branches with "
        f"{call('store.branches', key)}.",
        key=key,
        branch=branch_id,
    )


# --- merging -----------------------------------------------------------------------


def check_merge_list(key: str, branch_list: object, branch_type: type) -> None:
    """Refuse a merge of anything but a non-empty list of branches."""
    if isinstance(branch_list, branch_type) or not isinstance(branch_list, Sequence):
        raise UsageError(
            f"{call('store.merge', key, var('branches'))} takes a list of branches, such as "
            "[b1, b2]."
        )
    if not branch_list:
        raise UsageError(
            f"Nothing to merge: pass the branches of {key} (list them with "
            f"{call('store.branches', key)})."
        )


def check_merge_item(key: str, branch: Any, branch_type: type, seen: set[str]) -> None:
    """Refuse one item of a merge's list: not a branch, another key's, or listed twice."""
    if not isinstance(branch, branch_type):
        raise UsageError(
            f"{call('store.merge', key, var('branches'))} takes Branch objects (from "
            f"{call('session.fork', key)} or {call('store.branches', key)}), not "
            f"{type(branch).__name__}."
        )
    item: Any = branch  # a branch of either face: both have key and id
    bkey: str = item.key
    bid: str = item.id
    if bkey != key:
        raise UsageError(
            f"Branch {bid} is a branch of {bkey}, not {key}: merge the branches "
            "of one key at a time. Nothing was changed.",
            key=key,
            branch=bid,
        )
    if bid in seen:
        raise UsageError(f"Branch {bid} is listed twice; list each branch once.")
    seen.add(bid)


def one_base(key: str, metas: list[tuple[str, Record]]) -> int:
    """The one base version all branches forked from (``metas``: id and record)."""
    bases = {int(rec.value["base_version"]) for _, rec in metas}
    if len(bases) > 1:
        by_base = "; ".join(
            f"v{v}: " + ", ".join(b for b, r in metas if int(r.value["base_version"]) == v)
            for v in sorted(bases)
        )
        raise UsageError(
            f"The branches of {key} have different bases ({by_base}). A three-way merge needs "
            "one common base: merge the branches of one base, commit, then merge the others "
            "(the committed value becomes their 'current' side). Nothing was changed.",
            key=key,
        )
    return bases.pop()


def missing_base(key: str, base_version: int) -> BackendUnavailable:
    return BackendUnavailable(
        f"The base of {key} at version {base_version} is missing from the store, so the "
        "branches cannot be merged three-way. Fork again.",
        key=key,
    )


def side_kind(branch_id: str, key: str, kind: str, branch_kind: str, base_version: int) -> None:
    if branch_kind != kind:
        raise InvalidValue(
            f"Branch {branch_id} holds {branch_kind} but {key} held {kind} at version "
            f"{base_version}: not mergeable. Write a {kind} value to the branch.",
            key=key,
            branch=branch_id,
        )


def deleted_key(key: str, base_version: int) -> PreconditionFailed:
    return PreconditionFailed(
        f"{key} was deleted after the branches forked from version {base_version}; there "
        "is nothing to merge into. Re-create it "
        f"({call('write', key, var('value'), expect=0)}) and merge again, or discard the "
        "branches.",
        key=key,
    )


def lineage_step(ev: dict[str, Any], base_version: int) -> tuple[bool, int | None]:
    """One change of the key, newest first, on the walk back to the fork.

    Returns (stop, the version of a delete). A key's lineage is the run of
    versions since its last create: a delete ends it and a re-create starts
    another, whose versions continue the count (versions are never reused)
    but whose content has nothing to do with the old one.
    """
    version = ev.get("version")
    if not isinstance(version, int):
        return False, None  # a lease event listed by an older store
    if version <= base_version:
        return True, None
    if ev.get("op") == "delete":
        return True, version
    return False, None


def recreated(key: str, base_version: int, deleted_at: int, current: int) -> PreconditionFailed:
    return PreconditionFailed(
        f"{key} was deleted (version {deleted_at}) after the branches forked from "
        f"version {base_version}, and created again: it is at version "
        f"{current} now, a new document that the branches are not edits of. "
        "Merging them would apply their changes to it. Nothing was changed. Discard "
        "the branches (or merge them into a key of their own), and fork the new "
        f"{key} for new work.",
        key=key,
        base_version=base_version,
        deleted_at=deleted_at,
        current=current,
    )


def kind_moved(key: str, current_kind: str, current_version: int, kind: str) -> InvalidValue:
    return InvalidValue(
        f"{key} now holds {current_kind} (version {current_version}) but the branches "
        f"hold {kind}: not mergeable. Write a {kind} value to {key} first, or discard "
        "the branches.",
        key=key,
    )


def unresolved(key: str, conflicts: list[MergeConflict]) -> PreconditionFailed:
    where = ", ".join(c.where for c in conflicts[:5])
    return PreconditionFailed(
        f"The merge of {key} has {len(conflicts)} unresolved conflict(s) "
        f"({where}); nothing was written. Settle them with "
        f"{call('store.merge', key, var('branches'), resolve=var('fn'))}, or edit "
        "the branches so they agree and merge again.",
        key=key,
        conflicts=len(conflicts),
    )


def merge_detached() -> UsageError:
    return UsageError(
        "This Merge is not attached to a store; get it from "
        f"{call('store.merge', var('key'), var('branches'))}."
    )


def merge_report(
    key: str,
    branch_ids: list[str],
    conflicts: list[MergeConflict],
    resolved: list[MergeConflict],
    base_version: int,
    current_version: int,
) -> str:
    """Every unresolved conflict of a merge, described for a person or an agent."""
    if not conflicts and resolved:
        where = ", ".join(c.where for c in resolved[:5])
        return (
            f"Merged {len(branch_ids)} branches of {key}; resolve settled "
            f"{len(resolved)} conflict(s) ({where}), keeping its answer there and "
            "dropping what the other sides wrote."
        )
    if not conflicts:
        return f"Merged {len(branch_ids)} branches of {key} cleanly."
    head = (
        f"{len(conflicts)} conflict(s) merging {len(branch_ids)} branches of "
        f"{key} (base v{base_version}"
        + (f", current v{current_version}" if current_version != base_version else "")
        + "):"
    )
    return "\n".join([head, *(c.describe() for c in conflicts)])
