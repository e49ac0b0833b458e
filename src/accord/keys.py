"""Key rules.

A key is a path-like name: 1 to 512 characters, ``/``-separated segments,
no empty, ``.`` or ``..`` segment, no control characters. Keys under
``.accord/`` are reserved for accord's own records (leases, queues,
branches, idempotency keys) and cannot be written by agents.
"""

from __future__ import annotations

import re

from .errors import InvalidKey

MAX_KEY_LENGTH = 512
RESERVED_PREFIX = ".accord/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_VALID_CACHE: set[str] = set()


def validate_key(key: object) -> str:
    """Return ``key`` if it is a valid agent key, else raise :class:`InvalidKey`."""
    if key.__class__ is str and key in _VALID_CACHE:
        return key
    if not isinstance(key, str):
        raise InvalidKey(
            f"A key must be a string, not {type(key).__name__}. "
            "Use a path-like name such as 'docs/plan.md'."
        )
    problem = _problem(key)
    if problem:
        raise InvalidKey(
            f"Invalid key {key[:80]!r}: {problem}. Keys are path-like names such as "
            "'docs/plan.md': 1 to 512 characters, '/'-separated, no empty, '.' or '..' "
            "segment, no control characters, not under '.accord/'.",
            key=key,
        )
    if len(_VALID_CACHE) < 65536:
        _VALID_CACHE.add(key)
    return key


def _problem(key: str) -> str | None:
    if not key:
        return "it is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"it is {len(key)} characters long, over the limit of {MAX_KEY_LENGTH}"
    if _CONTROL.search(key):
        return "it contains a control character"
    if _SURROGATE.search(key):
        return SURROGATE_PROBLEM
    for segment in key.split("/"):
        if segment == "":
            return "it has an empty segment (a leading, trailing or double '/')"
        if segment in (".", ".."):
            return f"it has a {segment!r} segment"
    if key.startswith(RESERVED_PREFIX) or key == ".accord":
        return "'.accord/' is reserved for accord's own records"
    return None


SURROGATE_PROBLEM = (
    "it contains a surrogate code point, which is not Unicode text (it often comes from "
    "bytes that were not valid UTF-8)"
)


def has_surrogate(text: str) -> bool:
    """True if ``text`` holds a surrogate code point (U+D800 to U+DFFF).

    Such a str is not Unicode text: UTF-8 cannot hold it, and each backend
    would fail on it differently, so names and keys are checked for it
    before anything reaches a backend.
    """
    return _SURROGATE.search(text) is not None


def validate_prefix(prefix: str) -> str:
    """A scan prefix: empty, or a key prefix without control characters."""
    if (
        not isinstance(prefix, str)
        or _CONTROL.search(prefix)
        or _SURROGATE.search(prefix)
        or len(prefix) > MAX_KEY_LENGTH
    ):
        raise InvalidKey(f"Invalid prefix {prefix!r}: use the start of a key, such as 'docs/'.")
    return prefix


def internal(kind: str, key: str, *rest: str) -> str:
    """The key of one of accord's own records about ``key``."""
    return "/".join((".accord", kind, key, *rest))
