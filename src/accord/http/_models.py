"""The JSON bodies of the HTTP API, for its OpenAPI document.

Values travel as :func:`accord.records.to_wire` makes them: text and JSON
data as they are, bytes as base64 with ``kind`` ``"bytes"``. (A key's own
value travels raw, its kind in the Content-Type: see ``GET /v1/keys/{key}``.)
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """An error (RFC 9457): what happened and what to do next, and the error's fields."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="accord's error class, such as Conflict or PolicyViolation.")
    title: str
    status: int
    detail: str = Field(description="The message: what happened and what to do next.")
    error: str = Field(description="The same as type.")


class WriteOut(BaseModel):
    key: str
    version: int = Field(description='The new version: send If-Match: "<version>" next time.')
    revision: int
    author: str
    kind: str


class DeleteOut(BaseModel):
    key: str
    version: int = Field(description="The version of the delete (a re-create continues from it).")
    deleted: bool = True


class KeyOut(BaseModel):
    key: str
    version: int
    kind: str
    author: str
    revision: int


class ListOut(BaseModel):
    prefix: str
    count: int
    keys: list[KeyOut]
    truncated: bool = Field(description="True when more keys exist than limit allowed.")


class LeaseOut(BaseModel):
    key: str
    token: int = Field(description="The fencing token: send it as Accord-Lease on writes.")
    mode: str
    agent: str
    ttl: float
    expires: str = Field(description="The deadline on the store's clock (UTC).")
    expires_in: float


class ReleaseOut(BaseModel):
    key: str
    token: int
    released: bool = True


class LeaseHolderOut(BaseModel):
    agent: str
    mode: str
    state: str
    token: int | None = None
    position: int = 0
    expires: str | None = None


class LeaseStatusOut(BaseModel):
    key: str
    holders: list[LeaseHolderOut]
    waiters: list[LeaseHolderOut]
    last_token: int


class RequestOut(BaseModel):
    id: str
    key: str
    status: str = Field(description="pending, accepted or rejected.")
    submitter: str
    change: Any = None
    change_kind: str | None = None
    decided_by: str | None = None
    version: int | None = Field(default=None, description="When accepted: the version written.")
    reason: str | None = None
    message: str | None = None


class QueueOut(BaseModel):
    key: str
    writer: str | None = Field(description="The agent holding the writer role, if any.")
    current_version: int = Field(description="Send it as If-Match when you accept.")
    current_value: Any = None
    current_kind: str | None = None
    requests: list[RequestOut]


class RejectIn(BaseModel):
    reason: str = Field(description="Why, in words the submitter can act on.")


class BranchOut(BaseModel):
    branch_id: str
    key: str
    agent: str
    base_version: int
    kind: str
    value: Any = None
    status: str | None = None


class BranchesOut(BaseModel):
    key: str
    branches: list[BranchOut]


class MergeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    branches: list[str] | None = Field(
        default=None, description="Branch ids to merge (default: every open branch of the key)."
    )
    prefer: str | None = Field(
        default=None, description="The side (a branch id, base or current) for every conflict."
    )
    resolutions: dict[str, str] | None = Field(
        default=None, description="A conflict's where -> the side to take there."
    )


class MergeOut(BaseModel):
    key: str
    committed: bool
    clean: bool
    version: int | None = None
    value: Any = None
    kind: str
    base_version: int
    current_version: int
    branches: list[str]
    conflicts: list[dict[str, Any]]
    resolved: int
    message: str


class CheckOut(BaseModel):
    verdict: str = Field(description="clean, anomalies or unknown.")
    summary: str
    report: dict[str, Any]


class PlanOut(BaseModel):
    manifest: str | None
    ok: bool | None = None
    plan: dict[str, Any] | None = None
    message: str


class WhoAmIOut(BaseModel):
    agent: str
    manifest: str | None = None
