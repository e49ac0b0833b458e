"""What a dead attempt did: the store lookups of the crash window, for every surface.

A remote call with an idempotency key (an MCP tool's ``idempotency_key``, an
HTTP ``Idempotency-Key``) is claimed in the store before it runs
(:mod:`accord.replay`). A server that dies after the call committed and
before it kept its answer leaves a claim that lapses; the repeat that takes
it over knows the revision the first attempt began at (``since``) and asks
here what that attempt did after it. Each function answers with library
objects (a :class:`~accord.strategies.lease.Lease`, a queue request, a
branch, a :class:`Merged` commit), or ``None`` when the store shows nothing
the first attempt did: the surface then runs the call. Each surface turns
the answer into its own result (a tool's model, an HTTP response).

Writes, deletes and submissions need none of this: they pass a key to the
library's own idempotency, which commits with the write.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import LeaseLost, PreconditionFailed

if TYPE_CHECKING:
    from .records import Record
    from .session import Session
    from .strategies.branch import Branch
    from .strategies.lease import Lease
    from .strategies.queue import Request

__all__ = [
    "Merged",
    "Overwritten",
    "accepted",
    "branch_written",
    "discarded",
    "events",
    "forked",
    "lease_acquired",
    "lease_released",
    "lease_renewed",
    "merged",
    "merged_value",
    "rejected",
]


def events(session: Session, key: str, since: int, op: str) -> list[dict[str, Any]]:
    """The successful history events ``op`` of the session's agent on ``key`` after ``since``."""
    agent = session.agent
    return [
        event
        for event in session.store.backend.history(since=since, key=key)
        if event.get("op") == op and event.get("key") == key
        and event.get("agent") == agent and event.get("outcome", "ok") == "ok"
    ]


def lease_acquired(session: Session, key: str, since: int, mode: str) -> Lease | None:
    """The lease of ``mode`` on ``key`` granted to the first attempt, while it is live.

    A lease that lapsed or was released since is no answer (``None``: take a
    new one); neither is a wait that ended without a lease, nor a lease held
    from before the first attempt began.
    """
    from .strategies import lease as lease_mod

    for event in events(session, key, since, "lease_acquire"):
        if event.get("lease") is None:
            continue  # a wait that ended without a lease
        try:
            held = lease_mod.from_token(session, key, int(event["lease"]))
        except LeaseLost:
            return None  # it lapsed or was released: take a new one
        return held if held.mode == mode else None
    return None


def lease_renewed(session: Session, key: str, token: int, since: int) -> Lease | None:
    """The lease ``token`` as the first attempt's renewal left it, if that renewal committed.

    Its ``ttl`` is the one that renewal gave. Raises :class:`~accord.errors.LeaseLost`
    when the lease has lapsed or was released since (as a renewal would).
    """
    from .strategies import lease as lease_mod

    for event in events(session, key, since, "lease_renew"):
        if event.get("lease") == token:
            held = lease_mod.from_token(session, key, token)
            held.ttl = float(event.get("ttl") or held.ttl)
            return held
    return None


def lease_released(session: Session, key: str, token: int, since: int) -> bool:
    """Whether the first attempt released the lease ``token``."""
    return any(
        event.get("lease") == token
        for event in events(session, key, since, "lease_release")
    )


def accepted(session: Session, request: Request, value: Any, expect: int) -> Request | None:
    """``request`` if this agent accepted it writing ``value`` on top of version ``expect``.

    A request is decided once: such a decision is the first attempt's. One
    decided otherwise is no answer (``None``: the call runs, and is refused
    as deciding a decided request).
    """
    from .records import Doc

    outcome = request.outcome
    if (
        request.accepted
        and request.decided_by == session.agent
        and isinstance(outcome, Doc)
        and outcome.version == expect + 1
        and outcome.value == value
    ):
        return request
    return None


def rejected(session: Session, request: Request, reason: str) -> Request | None:
    """``request`` if this agent rejected it with ``reason`` (the first attempt's decision)."""
    if request.rejected and request.decided_by == session.agent and request.reason == reason:
        return request
    return None


def forked(session: Session, key: str, since: int) -> Branch | None:
    """The branch of ``key`` the first attempt forked."""
    from .strategies.branch import get_branch

    for event in events(session, key, since, "fork"):
        branch_id = event.get("request")
        if isinstance(branch_id, str):
            return get_branch(session.store, key, branch_id)
    return None


@dataclass(frozen=True, slots=True)
class Overwritten:
    """The branch was written again after the first attempt began, and does not hold
    its value: writing it now would erase that later write of the same agent."""

    key: str
    branch_id: str

    def error(self, read: str, idempotency_key: str) -> PreconditionFailed:
        """The refusal, in a surface's words: how to ``read`` the branch, and the name
        of its ``idempotency_key``."""
        return PreconditionFailed(
            f"Branch {self.branch_id} of {self.key} was written again after this call was "
            "first made (its result was lost when the server stopped), and it does not hold "
            "this call's value; nothing was written, so your later write stays. Read the "
            f"branch ({read}) and, if this value is still wanted, write it with a new "
            f"{idempotency_key}.",
            key=self.key,
            branch=self.branch_id,
        )


def branch_written(
    session: Session, key: str, branch_id: str, value: Any, since: int
) -> Branch | Overwritten | None:
    """The branch if it holds ``value`` (the first attempt wrote it, or it needs no write).

    :class:`Overwritten` when it was written after ``since`` and holds another
    value: only its agent writes a branch, so a later write of this agent's
    replaced the value, whether or not the first attempt wrote it. ``None``
    when the branch has not been written since: the call runs.
    """
    branch = session.branch(key, branch_id)
    if branch.read() == value:
        return branch
    rec = session.store.backend.get(branch.record_key)
    if rec is not None and rec.revision > since:
        return Overwritten(key, branch_id)
    return None


def discarded(session: Session, key: str, branch_id: str, since: int) -> bool:
    """Whether the first attempt discarded the branch: it is discarded, and its record
    changed after ``since`` (only its agent discards it, and only once)."""
    branch = session.branch(key, branch_id)
    rec = session.store.backend.get(branch.record_key)
    return (
        branch.agent == session.agent
        and branch.status == "discarded"
        and rec is not None
        and rec.revision > since
    )


@dataclass(frozen=True, slots=True)
class Merged:
    """A merge the first attempt committed (clean, its branches closed with it).

    ``record`` is the key's record now; ``current`` says whether it is still
    the merge's commit (if the key moved on since, its value is not the merge's).
    """

    key: str
    version: int
    base_version: int
    current_version: int
    branches: list[str]
    record: Record | None

    @property
    def current(self) -> bool:
        rec = self.record
        return rec is not None and not rec.deleted and rec.version == self.version

    def message(self) -> str:
        """The report of the merge, as the first attempt would have given it, or nearly."""
        return (
            f"Merged {len(self.branches)} branches of {self.key}. Committed as version "
            f"{self.version} (by the first attempt of this call, whose result was lost)."
            + ("" if self.current else f" {self.key} moved on since: read it "
               "for its value.")
        )


def merged(
    session: Session, key: str, since: int, branch_ids: list[str] | None
) -> Merged | None:
    """The merge of ``branch_ids`` (any, when not given) the first attempt committed.

    The commit and the closing of its branches are one transaction: a merge
    event of this agent with these branches is the first attempt's commit.
    """
    for event in events(session, key, since, "merge"):
        merged_ids = list(event.get("branches") or [])
        if branch_ids and sorted(merged_ids) != sorted(branch_ids):
            continue
        return Merged(key, int(event["version"]), int(event.get("base") or 0),
                      int(event.get("based_on") or 0), merged_ids,
                      session.store.backend.get(key))
    return None


def merged_value(found: Merged) -> tuple[str, Any]:
    """The kind and wire form of the merge's value: ``None`` for the value when the
    key moved on since (its kind is then the key's now)."""
    from .records import to_wire

    rec = found.record
    if found.current and rec is not None:
        return to_wire(rec.value)
    return (rec.kind if rec is not None else "text", None)
