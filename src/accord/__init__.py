"""accord: a concurrency toolkit for multi-agent systems that share state.

Open a store, take a session per agent, and every write is guarded::

    import accord

    store = accord.open()                      # ./.accord/state.db, or ACCORD_URL
    a = store.session("agent-a")
    doc = a.read("docs/plan.md")
    a.write("docs/plan.md", doc.value + "more", expect=doc.version)

Users import from ``accord`` only; the modules behind it are implementation.
"""

from .errors import (
    AccordError,
    BackendUnavailable,
    Conflict,
    Deadlock,
    Fenced,
    HistoryFormatError,
    IdempotencyMismatch,
    InvalidKey,
    InvalidValue,
    LeaseError,
    LeaseHeld,
    LeaseLost,
    LeaseTimeout,
    ManifestError,
    NotFound,
    NotOwner,
    NotWriter,
    PolicyViolation,
    PreconditionFailed,
    PreconditionRequired,
    RetriesExhausted,
    Timeout,
    UsageError,
    ValueTooLarge,
)
from .explorer import explore, explores, think, tool_call
from .history import Anomaly, CheckResult, check
from .merge import MergeConflict
from .plan import Plan, make_plan
from .policy import Manifest, load_manifest
from .records import Doc, Event
from .session import Operation, Session
from .simulator import simulate
from .store import Store, open
from .strategies.branch import Branch, Merge
from .strategies.crdt import SharedText
from .strategies.lease import Lease, LeaseInfo, LeaseSet, LeaseStatus
from .strategies.lease import status as lease_status
from .strategies.queue import Reject, Request
from .watch import WatchEvent

__version__ = "0.1.0"

__all__ = [
    "AccordError",
    "Anomaly",
    "BackendUnavailable",
    "Branch",
    "CheckResult",
    "Conflict",
    "Deadlock",
    "Doc",
    "Event",
    "Fenced",
    "HistoryFormatError",
    "IdempotencyMismatch",
    "InvalidKey",
    "InvalidValue",
    "Lease",
    "LeaseError",
    "LeaseHeld",
    "LeaseInfo",
    "LeaseLost",
    "LeaseSet",
    "LeaseStatus",
    "LeaseTimeout",
    "Manifest",
    "ManifestError",
    "Merge",
    "MergeConflict",
    "NotFound",
    "NotOwner",
    "NotWriter",
    "Operation",
    "Plan",
    "PolicyViolation",
    "PreconditionFailed",
    "PreconditionRequired",
    "Reject",
    "Request",
    "RetriesExhausted",
    "Session",
    "SharedText",
    "Store",
    "Timeout",
    "UsageError",
    "ValueTooLarge",
    "WatchEvent",
    "__version__",
    "check",
    "explore",
    "explores",
    "lease_status",
    "load_manifest",
    "make_plan",
    "open",
    "simulate",
    "think",
    "tool_call",
]
