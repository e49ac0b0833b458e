"""The parameters of each route: one table for the OpenAPI document and for parsing.

FastAPI can read parameters from a function's signature, but it re-examines
each annotation on every request, which cost more CPU than accord's own work
per request (bench/bench_http.py). A route here takes the Request alone and
parses its parameters with :func:`parse`, from the same :class:`P` specs
that :func:`openapi` turns into the document's ``parameters``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from .. import credentials
from ..errors import UsageError
from ._wire import Refusal

_INT = re.compile(r"[+-]?\d{1,20}")


@dataclass(frozen=True)
class P:
    """One parameter: where it is, its JSON Schema type and bounds, its default."""

    name: str
    where: str  # path, query or header
    type: str = "string"  # string, integer, number or boolean
    required: bool = False
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    enum: tuple[str, ...] | None = None
    description: str = ""

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.minimum is not None:
            if self.exclusive_minimum:
                out["exclusiveMinimum"] = self.minimum
            else:
                out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.default is not None:
            out["default"] = self.default
        return out


def openapi(*params: P) -> dict[str, Any]:
    """The ``parameters`` of an operation (for ``openapi_extra``)."""
    return {
        "parameters": [
            {
                "name": p.name,
                "in": p.where,
                "required": p.required or p.where == "path",
                "schema": p.schema(),
                **({"description": p.description} if p.description else {}),
            }
            for p in params
        ]
    }


def _bad(p: P, raw: str, why: str) -> Refusal:
    where = "query parameter" if p.where == "query" else p.where
    shown = raw if len(raw) <= 40 else raw[:37] + "..."
    return Refusal(
        400,
        UsageError(f"The {where} {p.name} is {shown!r}, but {why}; nothing was done."),
    )


def _value(p: P, raw: str) -> Any:
    if p.type == "integer":
        if not _INT.fullmatch(raw.strip()):
            raise _bad(p, raw, "it must be a whole number")
        value: Any = int(raw)
    elif p.type == "number":
        try:
            value = float(raw)
        except ValueError:
            raise _bad(p, raw, "it must be a number of seconds") from None
        if not math.isfinite(value):
            raise _bad(p, raw, "it must be a finite number")
    elif p.type == "boolean":
        lowered = raw.strip().lower()
        if lowered not in ("true", "false", "1", "0"):
            raise _bad(p, raw, "it must be true or false")
        value = lowered in ("true", "1")
    else:
        value = raw
        if p.enum is not None and raw not in p.enum:
            raise _bad(p, raw, f"it must be one of {', '.join(p.enum)}")
    if p.minimum is not None:
        low = p.minimum
        if value < low or (p.exclusive_minimum and value == low):
            least = "over" if p.exclusive_minimum else "at least"
            raise _bad(p, raw, f"it must be {least} {low:g}")
    if p.maximum is not None and value > p.maximum:
        raise _bad(p, raw, f"it must be at most {p.maximum:g}")
    return value


UNAUTHORIZED = (
    "No valid accord agent token came with this request. Send the header "
    "'Authorization: Bearer <token>' with the token `accord agents add NAME` printed for your "
    "agent; a rotated or revoked token no longer works (ask for a new one with "
    "`accord agents rotate NAME`)."
)


def unauthorized() -> Refusal:
    return Refusal(401, UsageError(UNAUTHORIZED), {"WWW-Authenticate": 'Bearer realm="accord"'})


def parse(request: Request, params: tuple[P, ...], *, secured: bool = True) -> dict[str, Any]:
    """The parameters of ``request``, by name; a 401 or 400 :class:`Refusal` otherwise.

    First the token's shape (401 before any other check; the token itself is
    verified against the store with the operation), then unknown query
    parameters (a misspelt ``?wiat=30`` must not be ignored), then each value.
    """
    if secured:
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip().startswith(credentials.TOKEN_PREFIX):
            raise unauthorized()
    query = request.query_params
    if query:
        known = {p.name for p in params if p.where == "query"}
        unknown = sorted({name for name in query if name not in known})
        if unknown:
            shown = ", ".join(repr(u[:40]) for u in unknown[:5])
            raise Refusal(400, UsageError(
                f"{request.method} {request.url.path[:80]} takes no query parameter {shown}; "
                f"nothing was done. Its query parameters: {', '.join(sorted(known)) or 'none'}."
            ))
    out: dict[str, Any] = {}
    headers = request.headers
    for p in params:
        if p.where == "path":
            out[p.name] = request.path_params[p.name]
            continue
        raw = query.get(p.name) if p.where == "query" else headers.get(p.name)
        if raw is None:
            if p.required:
                raise Refusal(400, UsageError(
                    f"{request.method} {request.url.path[:80]} needs the "
                    f"{'query parameter' if p.where == 'query' else 'header'} {p.name}"
                    + (f" ({p.description})" if p.description else "") + "; nothing was done."
                ))
            out[p.name] = p.default
            continue
        out[p.name] = raw if p.where == "header" and p.type == "string" else _value(p, raw)
    return out
