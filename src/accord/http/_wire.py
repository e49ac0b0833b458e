"""HTTP's words for accord's: media types for value kinds, entity tags for
versions, the Idempotency-Key field, bodies read within the size limit."""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from ..errors import AccordError, InvalidValue, UsageError, ValueTooLarge

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"
BYTES = "application/octet-stream"
NDJSON = "application/x-ndjson"
PROBLEM = "application/problem+json"

MEDIA = {"text": TEXT, "json": JSON, "bytes": BYTES}
"""The Content-Type of each value kind."""


class Refusal(Exception):
    """An accord error answered with a status of the HTTP layer's choosing."""

    def __init__(
        self, status: int, error: AccordError, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error
        self.headers = headers or {}


def _unsupported(content_type: str | None, what: str) -> Refusal:
    shown = repr(content_type) if content_type else "no Content-Type"
    return Refusal(
        415,
        UsageError(
            f"{what} came with {shown}; accord keeps a value's kind by its Content-Type. Send "
            "'Content-Type: text/plain; charset=utf-8' for text, 'application/json' for JSON "
            "data, or 'application/octet-stream' for bytes."
        ),
    )


def kind_of(content_type: str | None, what: str = "The body") -> tuple[str, str]:
    """The value kind and charset that ``content_type`` announces (415 otherwise)."""
    if not content_type:
        raise _unsupported(content_type, what)
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    charset = "utf-8"
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return "json", "utf-8"
    if media.startswith("text/"):
        if charset not in ("utf-8", "utf8", "us-ascii", "ascii"):
            raise Refusal(
                415,
                UsageError(
                    f"{what} is text in charset {charset!r}; accord stores text as UTF-8. Send "
                    "it as 'text/plain; charset=utf-8', or as application/octet-stream to keep "
                    "the bytes as they are."
                ),
            )
        return "text", "utf-8"
    if media == "application/octet-stream":
        return "bytes", ""
    raise _unsupported(content_type, what)


def decode(kind: str, data: bytes, what: str = "The body") -> Any:
    """The value that ``data`` of ``kind`` carries."""
    if kind == "bytes":
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidValue(
            f"{what} is not valid UTF-8 ({exc.reason} at byte {exc.start}); nothing was "
            "written. Send text as UTF-8, or send the bytes as application/octet-stream."
        ) from None
    if kind == "text":
        return text
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidValue(
            f"{what} nests JSON too deeply to read; nothing was written. Flatten it."
        ) from None
    except ValueError as exc:
        raise InvalidValue(
            f"{what} is not valid JSON ({exc}); nothing was written. Send JSON text with "
            "'Content-Type: application/json', or send it as text/plain to store it as text."
        ) from None


def encode(value: Any) -> tuple[str, bytes]:
    """A stored value as a response body: (Content-Type, bytes)."""
    if isinstance(value, str):
        return TEXT, value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BYTES, bytes(value)
    return JSON, json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit``.

    A Content-Length over the limit is refused before anything is read; a
    body without one (chunked) is read piece by piece and refused when the
    pieces pass the limit, so the server never holds more than the limit.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Refusal(
                400, UsageError(f"Content-Length {declared!r} is not a number of bytes.")
            ) from None
        if size > limit:
            raise Refusal(413, _too_large(size, limit))
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise Refusal(413, _too_large(None, limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int | None, limit: int) -> ValueTooLarge:
    what = f"{size:,} bytes" if size is not None else "larger than that"
    return ValueTooLarge(
        f"The request body is {what}, over this store's limit of {limit:,} bytes; nothing "
        "was read or written. Split the value across several keys, or start the server on a "
        "store with a larger max_value_size.",
        size=size,
        limit=limit,
    )


_VERSION_TAG = re.compile(r'"(\d{1,19})"')


def etag(version: int) -> str:
    """The entity tag of a version: ``"5"``."""
    return f'"{version}"'


def _tags(value: str) -> list[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


def if_match(value: str | None) -> int | None:
    """The version an If-Match names (None when absent)."""
    if value is None:
        return None
    tags = _tags(value)
    if tags == ["*"]:
        raise Refusal(
            400,
            UsageError(
                "If-Match: * would write over whatever version is there, which is how updates "
                "get lost; accord does not offer it. GET the key and send If-Match with its "
                'ETag, such as If-Match: "5".'
            ),
        )
    if len(tags) != 1:
        raise Refusal(
            400,
            UsageError(
                f"If-Match names {len(tags)} entity tags; name the one version you read, such "
                'as If-Match: "5" (the ETag of GET).'
            ),
        )
    match = _VERSION_TAG.fullmatch(tags[0])
    if match is None:
        raise Refusal(
            400,
            UsageError(
                f"If-Match: {tags[0][:40]} is not an accord ETag. Send the ETag that GET "
                'returned, a version number in quotes, such as If-Match: "5" (a weak W/ tag '
                "never matches a write)."
            ),
        )
    return int(match.group(1))


def precondition(if_match_value: str | None, if_none_match_value: str | None) -> int | None:
    """The ``expect`` of a write from its If-Match / If-None-Match (None: neither)."""
    if if_match_value is not None and if_none_match_value is not None:
        raise Refusal(
            400,
            UsageError(
                "Send If-Match (update the version you read) or If-None-Match: * (create), "
                "not both."
            ),
        )
    if if_none_match_value is not None:
        if _tags(if_none_match_value) != ["*"]:
            raise Refusal(
                400,
                UsageError(
                    "On a write, If-None-Match takes only *, meaning 'create it: it must not "
                    'exist yet\'. To update a key, send If-Match: "<the version you read>".'
                ),
            )
        return 0
    return if_match(if_match_value)


def none_match(value: str | None, version: int) -> bool:
    """True when an If-None-Match on GET names ``version`` (or *): answer 304."""
    if value is None:
        return False
    for tag in _tags(value):
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag(version):
            return True
    return False


_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_BARE = re.compile(r"[\x21-\x7e]+")
MAX_IDEMPOTENCY_KEY = 255


def idempotency_key(value: str | None) -> str | None:
    """The key an Idempotency-Key field carries: a structured-field string
    (``"8e03978e-..."``, as the draft says) or, leniently, the bare text."""
    if value is None:
        return None
    value = value.strip()
    match = _SF_STRING.fullmatch(value)
    if match is not None:
        key = re.sub(r"\\(.)", r"\1", match.group(1))
    elif _BARE.fullmatch(value) and not value.startswith('"'):
        key = value
    else:
        key = ""
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise Refusal(
            400,
            UsageError(
                "Idempotency-Key must be a string of 1 to 255 printable ASCII characters, "
                'such as Idempotency-Key: "8e03978e-40d5-43e8-bc93-6894a57f9324" (a new UUID '
                "per request; the same one only when you repeat that very request)."
            ),
        )
    return key
