"""What the servers (MCP, HTTP) add to a Session call, written once for both.

An agent behind a server cannot hold a Python object between two calls: it
names a branch by its id and settles a merge's conflicts by naming sides.
The rule for that (a resolution must name a conflict of the merge) lives
here; that an agent writes only the branches it forked is the library's own
rule (``Session.branch`` and :class:`accord.NotOwner`), so ``accord mcp``
and ``accord serve`` enforce the same ones with the same words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .keys import validate_key
from .records import Doc, to_wire

if TYPE_CHECKING:
    from .merge import MergeConflict
    from .session import Session
    from .strategies.branch import Merge

__all__ = ["merge_branches", "plain"]


def plain(value: Any) -> Any:
    """JSON-ready form of an error detail or report (tuples as lists, bytes as base64)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return to_wire(bytes(value))[1]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)



def merge_branches(
    session: Session,
    key: str,
    branch_ids: list[str] | None = None,
    prefer: str | None = None,
    resolutions: dict[str, str] | None = None,
) -> tuple[Merge, Doc | None]:
    """Merge the branches ``branch_ids`` of ``key`` (default: every open one) as
    ``session``'s agent and commit the result when no conflict is left.

    ``resolutions`` maps a conflict's ``where`` to the side to take (a
    branch id, ``"base"`` or ``"current"``); ``prefer`` is the side for every
    other conflict. Returns the merge and the written Doc (None when
    conflicts are left, and nothing was written). A resolution that names
    no conflict of this merge is a :class:`UsageError`, and nothing is written.
    """
    from .strategies.branch import get_branch

    store = session.store
    validate_key(key)
    chosen = (
        [get_branch(store, key, b) for b in branch_ids] if branch_ids else store.branches(key)
    )
    wanted = dict(resolutions or {})
    used: set[str] = set()

    def resolve(conflict: MergeConflict) -> Any:
        side = wanted.get(conflict.where)
        if side is not None:
            used.add(conflict.where)
        else:
            side = prefer
        return None if side is None else conflict.take(side)

    merged = store.merge(
        key, chosen, resolve=resolve if (wanted or prefer) else None, agent=session.agent
    )
    unused = sorted(set(wanted) - used)
    if unused:
        places = [c.where for c in [*merged.conflicts, *merged.resolved]]
        raise UsageError(
            f"resolutions name {', '.join(repr(u) for u in unused)}, which is not a "
            f"conflict of this merge of {key}; nothing was written. The conflicts are at: "
            + (", ".join(repr(p) for p in places) or "none")
            + ".",
            key=key,
        )
    doc = merged.commit(agent=session.agent) if merged.clean else None
    return merged, doc
