"""Replay tokens: a schedule's decisions in a short, versioned, checked string.

A token is ``x1.`` followed by URL-safe base64 (no padding) of::

    version (1 byte) | workflow tag (2 bytes) | runs | check (2 bytes)

``runs`` is the decision list run-length encoded: a varint count of runs,
then for each run a varint decision and a varint repeat count. A decision
is an agent id at a choice between agents, or the chosen index at a value
choice; the workflow, replayed, says which is which. The workflow tag is
the first two bytes of SHA-256 of the workflow's name, so a token given to
the wrong workflow is refused with a clear message; the check is the low
16 bits of CRC-32 of everything before it, so a mistyped token is refused
rather than replayed into a different schedule. Version 1 is the only
version; a later version will still read version-1 tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Sequence

from ..errors import UsageError

__all__ = ["decode_token", "encode_token", "workflow_tag"]

PREFIX = "x1."
VERSION = 1


def workflow_tag(name: str) -> int:
    """The 16-bit tag of a workflow name that a token carries."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:2], "big")


def _varint(n: int, out: bytearray) -> None:
    if n < 0:
        raise ValueError("negative decision")
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated")
        byte = data[pos]
        pos += 1
        n |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return n, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def encode_token(decisions: Sequence[int], workflow: str) -> str:
    """The token of ``decisions`` made by the workflow named ``workflow``."""
    runs: list[list[int]] = []
    for d in decisions:
        if runs and runs[-1][0] == d:
            runs[-1][1] += 1
        else:
            runs.append([d, 1])
    body = bytearray([VERSION])
    body += workflow_tag(workflow).to_bytes(2, "big")
    _varint(len(runs), body)
    for value, count in runs:
        _varint(value, body)
        _varint(count, body)
    body += (zlib.crc32(bytes(body)) & 0xFFFF).to_bytes(2, "big")
    return PREFIX + base64.urlsafe_b64encode(bytes(body)).decode("ascii").rstrip("=")


def decode_token(token: str, workflow: str | None = None) -> list[int]:
    """The decisions in ``token``; raises :class:`accord.UsageError` for a
    malformed or damaged token, or one made by another workflow than
    ``workflow`` (when given)."""
    if not isinstance(token, str):
        raise UsageError(f"A replay token is a string like 'x1.AQID...', not {token!r}.")
    text = token.strip()
    if not text.startswith("x") or "." not in text:
        raise UsageError(
            f"{token!r} is not a replay token: tokens look like 'x1.AQIDBA' (copy the "
            "whole token the failing exploration printed)."
        )
    head, _, b64 = text.partition(".")
    if head != PREFIX[:-1]:
        raise UsageError(
            f"Replay token version {head[1:]!r} is not known to this accord (it reads "
            "version 1): upgrade accord, or explore again to get a token of this version."
        )
    try:
        raw = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    except (binascii.Error, ValueError) as exc:
        raise UsageError(
            f"The replay token {token!r} is damaged (not base64: {exc}); copy it again, "
            "whole, from the failing exploration's report."
        ) from exc
    if len(raw) < 6 or (zlib.crc32(raw[:-2]) & 0xFFFF) != int.from_bytes(raw[-2:], "big"):
        raise UsageError(
            f"The replay token {token!r} is damaged (its check does not match); copy it "
            "again, whole, from the failing exploration's report."
        )
    if raw[0] != VERSION:
        raise UsageError(
            f"Replay token version {raw[0]} is not known to this accord (it reads version 1)."
        )
    tag = int.from_bytes(raw[1:3], "big")
    if workflow is not None and tag != workflow_tag(workflow):
        raise UsageError(
            f"This replay token was recorded for another workflow than {workflow!r}: pass "
            "it to the workflow (or test) whose exploration printed it."
        )
    decisions: list[int] = []
    try:
        nruns, pos = _read_varint(raw, 3)
        for _ in range(nruns):
            value, pos = _read_varint(raw, pos)
            count, pos = _read_varint(raw, pos)
            if count < 1 or len(decisions) + count > 10_000_000:
                raise ValueError("bad run")
            decisions.extend([value] * count)
    except ValueError as exc:
        raise UsageError(
            f"The replay token {token!r} is damaged ({exc}); copy it again, whole."
        ) from exc
    if pos != len(raw) - 2:
        raise UsageError(f"The replay token {token!r} is damaged (trailing bytes).")
    return decisions
