"""What the MCP tools return: one Pydantic model per result shape.

Each model is a tool's output schema (MCP ``outputSchema``) and its
``structuredContent``. Values travel as :func:`accord.records.to_wire`
makes them: text and JSON as they are, bytes as base64 with ``kind``
``"bytes"``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = [
    "BranchOut",
    "CheckOut",
    "DeleteOut",
    "DocOut",
    "KeyOut",
    "LeaseHolderOut",
    "LeaseOut",
    "LeaseStatusOut",
    "ListOut",
    "LogOut",
    "MergeOut",
    "PlanOut",
    "ReleaseOut",
    "RequestOut",
    "RequestsOut",
    "WhoAmIOut",
    "WriteOut",
]


class DocOut(BaseModel):
    """A key as ``read`` sees it. An absent key has ``exists`` false and version 0."""

    key: str
    exists: bool
    version: int = Field(description="Pass this as expect= when you write the key back.")
    value: Any = Field(default=None, description="Text, JSON data, or base64 when kind is bytes.")
    kind: str | None = Field(default=None, description="text, json or bytes.")
    revision: int | None = None
    author: str | None = Field(default=None, description="The agent that wrote this version.")
    message: str | None = None


class KeyOut(BaseModel):
    """One key of a ``list``: its version and who wrote it, without the value."""

    key: str
    version: int
    kind: str
    author: str
    revision: int


class ListOut(BaseModel):
    """The keys under a prefix, in key order."""

    prefix: str
    count: int
    keys: list[KeyOut]
    truncated: bool = Field(description="True when more keys exist than limit allowed.")


class WriteOut(BaseModel):
    """The version a write created."""

    key: str
    version: int = Field(description="The new version: use it as expect= for your next write.")
    revision: int
    author: str
    kind: str


class DeleteOut(BaseModel):
    """The version of a delete (a later create continues from it)."""

    key: str
    version: int
    deleted: bool = True


class LeaseOut(BaseModel):
    """A lease this agent holds."""

    key: str
    token: int = Field(description="The fencing token: pass it to write_leased, renew, release.")
    mode: str
    agent: str
    ttl: float = Field(description="Seconds the lease lives without a renewal.")
    expires: str = Field(description="The deadline on the store's clock (UTC).")
    expires_in: float = Field(description="Seconds left before the deadline.")


class ReleaseOut(BaseModel):
    """A released lease."""

    key: str
    token: int
    released: bool = True


class LeaseHolderOut(BaseModel):
    """A holder or waiter of a key's lease."""

    agent: str
    mode: str
    state: str
    token: int | None = None
    position: int = 0
    expires: str | None = None


class LeaseStatusOut(BaseModel):
    """Who holds a key's lease and who waits for it, in line order."""

    key: str
    holders: list[LeaseHolderOut]
    waiters: list[LeaseHolderOut]
    last_token: int


class RequestOut(BaseModel):
    """A change request of the queue strategy."""

    id: str
    key: str
    status: str = Field(description="pending, accepted or rejected.")
    submitter: str
    change: Any = None
    change_kind: str | None = None
    decided_by: str | None = None
    version: int | None = Field(
        default=None, description="When accepted: the version the writer wrote."
    )
    reason: str | None = Field(default=None, description="When rejected: the writer's reason.")
    message: str | None = None


class RequestsOut(BaseModel):
    """The pending requests of a queue key, oldest first (decide them in this order)."""

    key: str
    writer: str
    current_version: int = Field(description="Pass this as expect= to accept.")
    current_value: Any = None
    current_kind: str | None = None
    requests: list[RequestOut]


class BranchOut(BaseModel):
    """A branch: a private copy of a key."""

    branch_id: str
    key: str
    agent: str
    base_version: int
    kind: str
    value: Any = None
    status: str | None = None


class MergeOut(BaseModel):
    """A merge of branches: committed, or the conflicts left to settle."""

    key: str
    committed: bool
    clean: bool
    version: int | None = Field(default=None, description="The version written when committed.")
    value: Any = None
    kind: str
    base_version: int
    current_version: int
    branches: list[str]
    conflicts: list[dict[str, Any]]
    resolved: int
    message: str


class LogOut(BaseModel):
    """History events, oldest first (the latest ``limit`` of them)."""

    key: str | None
    count: int
    events: list[dict[str, Any]]


class CheckOut(BaseModel):
    """What the race detector found in this store's history."""

    verdict: str = Field(description="clean, anomalies or unknown.")
    summary: str
    report: dict[str, Any]


class PlanOut(BaseModel):
    """The manifest's table: every resource, its access class and strategy."""

    manifest: str | None
    ok: bool | None = None
    plan: dict[str, Any] | None = None
    message: str


class WhoAmIOut(BaseModel):
    """Who this server takes you for."""

    agent: str
    transport: str
    manifest: str | None = None
