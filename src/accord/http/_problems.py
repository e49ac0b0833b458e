"""accord's errors as RFC 9457 problem details (``application/problem+json``).

``type`` is the error's class name (a relative URI reference, as RFC 9457
allows), ``detail`` the message the Python error carries in the HTTP API's
words (:meth:`accord.AccordError.render` with ``"http"``), and the error's
own fields (key, expected, current, writers, diff, ...) come along as
members, so a program reads ``current`` where a person reads the sentence.
"""

from __future__ import annotations

import logging
from typing import Any

from ..errors import (
    AccordError,
    BackendUnavailable,
    Conflict,
    Fenced,
    IdempotencyMismatch,
    LeaseError,
    NotFound,
    NotOwner,
    NotWriter,
    PolicyViolation,
    PreconditionFailed,
    PreconditionRequired,
    Timeout,
    UsageError,
    ValueTooLarge,
)
from ..records import to_wire
from ..remote import plain
from ._wire import PROBLEM, Refusal, etag

logger = logging.getLogger("accord.http")

# Most specific first.
_STATUS: tuple[tuple[type[AccordError], int], ...] = (
    (Conflict, 412),
    (Fenced, 412),
    (PreconditionRequired, 428),
    (IdempotencyMismatch, 422),
    (NotWriter, 403),
    (NotOwner, 403),
    (PolicyViolation, 403),
    (ValueTooLarge, 413),
    (UsageError, 400),
    (NotFound, 404),
    (PreconditionFailed, 409),
    (LeaseError, 409),
    (Timeout, 409),
    (BackendUnavailable, 503),
)

TITLES = {
    400: "Bad request",
    401: "No valid agent token",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict with the current state",
    412: "Precondition failed",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Idempotency-Key reused with another request",
    428: "Precondition required",
    500: "Internal server error",
    503: "Store unavailable",
}


def status_of(exc: AccordError) -> int:
    """The HTTP status of an accord error."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def problem(
    exc: AccordError, status: int | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    """(status, headers, body) of the problem document for ``exc``."""
    status = status_of(exc) if status is None else status
    name = type(exc).__name__
    body: dict[str, Any] = {
        "type": name,
        "title": TITLES.get(status, name),
        "status": status,
        "detail": exc.render("http"),
        "error": name,
    }
    for field, value in getattr(exc, "_details", {}).items():
        if field in body:
            continue
        if field == "writers" and isinstance(value, list):
            body["writers"] = [
                {"version": v, "agent": a} for v, a in value if isinstance(v, int)
            ]
        elif field == "value":
            if value is not None:
                body["value_kind"], body["value"] = to_wire(value)
            else:
                body["value"] = None
        else:
            body[field] = plain(value)
    out = {"Content-Type": PROBLEM}
    current = exc._details.get("current") if isinstance(exc, Conflict) else None
    if isinstance(current, int) and current > 0:
        out["ETag"] = etag(current)
    if status == 503:
        out["Retry-After"] = "1"
    if headers:
        out.update(headers)
    return status, out, body


def refusal(exc: Refusal) -> tuple[int, dict[str, str], dict[str, Any]]:
    return problem(exc.error, exc.status, exc.headers)


def internal(where: str, exc: BaseException) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A 500 without a traceback: the details go to the server's log only."""
    logger.error("%s failed unexpectedly", where, exc_info=exc)
    detail = (
        f"The accord server failed while answering {where} ({type(exc).__name__}); the details "
        "are in the server's log. Read the keys involved to see what was applied before "
        "retrying, and report the problem if it repeats."
    )
    return (
        500,
        {"Content-Type": PROBLEM},
        {"type": "InternalError", "title": TITLES[500], "status": 500, "detail": detail,
         "error": "InternalError"},
    )
