"""One name as one key segment: the escaping the framework adapters share.

accord keys are ``/``-separated segments without control characters and
without ``.``, ``..`` or empty segments. A framework's names (LangGraph
namespace labels and keys, an Agents SDK session id) may be anything, so
each becomes one segment: ``%``, ``/`` and control characters are written
``%XX`` (upper-case hex), the segments ``.`` and ``..`` are written ``%2E``
and ``%2E%2E``, and the empty string is written ``%`` (which escaping never
produces: an escape is ``%`` and two hex digits). Everything else, non-ASCII
included, stays as it is, so ordinary names read the same in both places.
"""

from __future__ import annotations

import re

_ESCAPED = re.compile(r"[%/\x00-\x1f\x7f]")
_ESCAPE = re.compile(r"%([0-9A-F]{2})")


def encode_segment(text: str) -> str:
    """``text`` as one key segment (see the module docs)."""
    if text == "":
        return "%"
    if text == ".":
        return "%2E"
    if text == "..":
        return "%2E%2E"
    return _ESCAPED.sub(lambda m: f"%{ord(m.group()):02X}", text)


def decode_segment(segment: str) -> str | None:
    """The text :func:`encode_segment` turned into ``segment``, or None.

    Only the canonical spelling decodes: a segment written by something
    else (``a%2fb``, a bare ``%`` inside a name) gives None.
    """
    if segment == "%":
        return ""
    text = _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), segment)
    return text if encode_segment(text) == segment else None
