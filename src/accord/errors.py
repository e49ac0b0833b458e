"""The one exception tree of accord.

Every error accord raises derives from :class:`AccordError`. Backend
exceptions (``sqlite3``, ``psycopg``) are translated once, at the backend
boundary, and chained with ``raise ... from exc``. Every message says what
happened and what to do next, in words an LLM agent can act on::

    AccordError
    ├── UsageError                  the call itself is wrong (exit code 1)
    │   ├── InvalidKey              a key breaks the key rules
    │   ├── InvalidValue            a value of a type accord cannot store
    │   ├── ValueTooLarge           a value over the store's size limit
    │   ├── ManifestError           a malformed or inconsistent accord.toml
    │   └── HistoryFormatError      a malformed history file
    ├── NotFound                    the key (or request, branch) does not exist
    ├── PreconditionFailed          a write was refused before it was applied (exit 3)
    │   ├── Conflict                the version moved since the caller read it
    │   ├── PreconditionRequired    a blind write that was not asked for by name
    │   ├── IdempotencyMismatch     an idempotency key reused with another payload
    │   ├── NotWriter               a queue key written by someone but its writer
    │   ├── NotOwner                a branch written or discarded by another agent
    │   ├── PolicyViolation         the manifest does not allow this
    │   └── RetriesExhausted        update() gave up after its retries
    ├── LeaseError                  leases and fencing (exit 4)
    │   ├── LeaseTimeout            the lease was not granted within ``wait``
    │   ├── LeaseLost               the lease expired or was superseded
    │   ├── Fenced                  a write under a lease that is no longer live
    │   ├── LeaseHeld               a write without the key's live exclusive lease
    │   └── Deadlock                waiting would close a cycle of waiters
    ├── Timeout                     a wait ran out (requests, decisions)
    └── BackendUnavailable          the store cannot be reached or used

Errors are picklable (they cross process boundaries in tests and tools) and
show ``accord`` as their module in tracebacks.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AccordError",
    "BackendUnavailable",
    "Conflict",
    "Deadlock",
    "Fenced",
    "HistoryFormatError",
    "IdempotencyMismatch",
    "InvalidKey",
    "InvalidValue",
    "LeaseError",
    "LeaseHeld",
    "LeaseLost",
    "LeaseTimeout",
    "ManifestError",
    "NotFound",
    "NotOwner",
    "NotWriter",
    "PolicyViolation",
    "PreconditionFailed",
    "PreconditionRequired",
    "RetriesExhausted",
    "Timeout",
    "UsageError",
    "ValueTooLarge",
]


class AccordError(Exception):
    """Root of every error accord raises.

    ``exit_code`` is the CLI exit code for this kind of error.
    """

    exit_code = 2

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        for name, value in details.items():
            setattr(self, name, value)
        self._details = details

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self._details))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[AccordError], message: str, details: dict[str, Any]) -> AccordError:
    return cls(message, **details)


class UsageError(AccordError):
    """The call itself is wrong: fix the arguments and call again."""

    exit_code = 1


class InvalidKey(UsageError):
    """A key breaks the key rules (see ``accord.keys``)."""


class InvalidValue(UsageError, TypeError):
    """A value of a type accord cannot store (use str, bytes or JSON data)."""


class ValueTooLarge(UsageError):
    """A value is larger than the store's limit; nothing was written."""


class ManifestError(UsageError):
    """The manifest (accord.toml) is malformed or inconsistent."""


class HistoryFormatError(UsageError):
    """A history file is malformed; the message names the line."""


class NotFound(AccordError):
    """The key (or request, branch, lease) does not exist."""

    exit_code = 3


class PreconditionFailed(AccordError):
    """A write was refused before anything was applied."""

    exit_code = 3


class Conflict(PreconditionFailed):
    """The version moved since the caller read it.

    Attributes: ``key``, ``expected`` (the version the caller wrote against),
    ``current`` (the version now), ``writers`` (list of ``(version, agent)``
    for the versions in between), ``value`` (the current value, or None when
    the key is absent), ``diff`` (text: what changed since ``expected``).
    """

    key: str
    expected: int
    current: int
    writers: list[tuple[int, str]]
    value: Any
    diff: str


class PreconditionRequired(PreconditionFailed):
    """A write to an existing key without ``expect``, ``lease`` or ``force``."""


class IdempotencyMismatch(PreconditionFailed):
    """An idempotency key was reused with a different payload."""


class NotWriter(PreconditionFailed):
    """Only the queue's writer may write this key; submit a change request."""


class NotOwner(PreconditionFailed):
    """A branch written or discarded by an agent other than the one that forked it.

    Attributes: ``key``, ``branch`` (its id), ``owner``, ``agent`` (who tried).
    """


class PolicyViolation(PreconditionFailed):
    """The manifest does not allow this operation."""


class RetriesExhausted(PreconditionFailed):
    """``update()`` lost every attempt to concurrent writers."""


class LeaseError(AccordError):
    """Base of lease and fencing errors."""

    exit_code = 4


class LeaseTimeout(LeaseError):
    """The lease was not granted within ``wait`` seconds."""


class LeaseLost(LeaseError):
    """The lease expired or was superseded; the holder must stop writing."""


class Fenced(LeaseError):
    """A write carried a lease that is no longer the key's live lease."""


class LeaseHeld(LeaseError):
    """A write or delete of a key while a lease on it is live, without
    carrying a live exclusive lease of that key; nothing was written.

    Attributes: ``key``, ``holder`` (the agent holding the lease, or the
    first of several shared holders), ``token`` (its fencing token),
    ``mode``, ``expires`` (its deadline, seconds since the epoch on the
    store's clock), ``holders`` (every live lease: dicts of ``agent``,
    ``token``, ``mode``, ``expires``). Wait for the lease with
    ``session.acquire(key, wait=...)`` (CLI: ``accord lease acquire KEY
    --wait SECONDS``), then re-read the key and write under your lease.
    """


class Deadlock(LeaseError):
    """Waiting would close a cycle of agents waiting for each other."""


class Timeout(AccordError):
    """A wait ran out before anything was decided."""

    exit_code = 4


class BackendUnavailable(AccordError):
    """The store cannot be reached or used; the message says what is known."""

    exit_code = 2


for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, AccordError):
        _cls.__module__ = "accord"
