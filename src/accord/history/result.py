"""What a check found: :class:`Anomaly` and :class:`CheckResult`, and the stable names.

Every checker (the one-pass checker of accord histories in
:mod:`accord.history.native`, the inference for foreign histories in
:mod:`accord.history.infer`, the linearizability search in
:mod:`accord.history.linearizable`) reports in these types, so a finding
reads the same whichever found it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import render

MAX_REPORTED = 1000
"""Anomalies of one name kept in full; beyond it they are only counted."""

ANOMALY_NAMES = (
    "lost-update",
    "concurrent-writes",
    "fenced-write-accepted",
    "duplicate-apply",
    "stale-read",
    "nonlinearizable",
)
"""The stable names of everything the checker reports (``nonlinearizable`` only
when asked: ``check(..., linearizable=True)``, ``accord check --linearizable``)."""


Verdict = Literal["clean", "anomalies", "unknown"]


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One thing the checker found.

    ``name`` is one of :data:`ANOMALY_NAMES`; ``key`` the key involved (None
    for request duplicates without a key); ``explanation`` a plain account of
    what happened; ``events`` the events involved (each as in the history,
    with ``line`` added when it came from a file); ``agents`` the agents
    involved; ``window`` the real-time window (start, end) in which the race
    happened, when known. ``certain`` is False for "unknown" findings: the
    history is consistent both with this anomaly and without it.

    An explanation that says what to do next is written once, with the
    markup of :mod:`accord.errors`: ``explanation`` is in the Python API's
    words, ``render("cli")`` in the command line's, and ``template`` keeps
    the markup (empty when there is none).
    """

    name: str
    key: str | None
    explanation: str
    events: tuple[dict[str, Any], ...] = ()
    agents: tuple[str, ...] = ()
    window: tuple[str, str] | None = None
    certain: bool = True
    details: dict[str, Any] = field(default_factory=dict)
    template: str = field(default="", repr=False, compare=False)

    def __post_init__(self) -> None:
        rendered = render(self.explanation)
        if rendered != self.explanation:
            object.__setattr__(self, "template", self.explanation)
            object.__setattr__(self, "explanation", rendered)

    def render(self, surface: str = "python") -> str:
        """The explanation in the words of ``surface`` (``"python"``, ``"cli"``, ``"mcp"``)."""
        return render(self.template, surface) if self.template else self.explanation

    def to_dict(self, surface: str = "python") -> dict[str, Any]:
        """A JSON-ready dict (what ``accord check --json`` prints, with ``surface="cli"``)."""
        return {
            "name": self.name,
            "certain": self.certain,
            "key": self.key,
            "agents": list(self.agents),
            "window": list(self.window) if self.window else None,
            "explanation": self.render(surface),
            "events": list(self.events),
            "details": self.details,
        }


@dataclass
class CheckResult:
    """What :func:`check` found.

    ``anomalies`` are certain findings, ``unknown`` the findings the history
    can neither confirm nor rule out (foreign histories whose version order
    is ambiguous). ``counts`` has the true number per anomaly name even when
    more were found than are kept in full (:data:`MAX_REPORTED` per name).
    ``lost_writes`` is the number of committed writes whose change is
    missing from the final state (erased and never built upon again); None
    when it cannot be known. ``skipped`` counts lines skipped in lenient mode.
    ``linearizable`` is None unless the check searched for linearizability:
    then True or False, or None again if a key's search ran out of budget.
    """

    format: str = "accord"
    events: int = 0
    keys: int = 0
    agents: int = 0
    writes: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)
    unknown: list[Anomaly] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    unknown_counts: dict[str, int] = field(default_factory=dict)
    lost_writes: int | None = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    linearizable: bool | None = None

    @property
    def verdict(self) -> Verdict:
        """``anomalies`` if any was found, else ``unknown`` if any is undecided, else ``clean``."""
        if any(self.counts.values()):
            return "anomalies"
        if any(self.unknown_counts.values()):
            return "unknown"
        return "clean"

    @property
    def ok(self) -> bool:
        """True only when the history is clean (no anomaly, nothing unknown)."""
        return self.verdict == "clean"

    def by_name(self, name: str) -> list[Anomaly]:
        """The anomalies (kept in full) with this name."""
        return [a for a in self.anomalies if a.name == name]

    def summary(self) -> str:
        """One line: the verdict and the counts."""
        head = f"{self.events:,} events, {self.keys:,} keys, {self.agents:,} agents"
        if self.verdict == "clean":
            return f"clean: no anomalies in {head}."
        parts = [f"{n} {name}" for name, n in self.counts.items() if n]
        unknown = [f"{n} {name}" for name, n in self.unknown_counts.items() if n]
        text = ", ".join(parts) if parts else "no certain anomalies"
        if unknown:
            text += "; unknown: " + ", ".join(unknown)
        return f"{self.verdict}: {text} in {head}."

    def to_dict(self, surface: str = "python") -> dict[str, Any]:
        """A JSON-ready dict (what ``accord check --json`` prints, with ``surface="cli"``);
        the explanations are in the words of ``surface``."""
        return {
            "verdict": self.verdict,
            "format": self.format,
            "events": self.events,
            "keys": self.keys,
            "agents": self.agents,
            "writes": self.writes,
            "counts": {k: v for k, v in self.counts.items() if v},
            "unknown_counts": {k: v for k, v in self.unknown_counts.items() if v},
            "lost_writes": self.lost_writes,
            "linearizable": self.linearizable,
            "skipped": self.skipped,
            "problems": self.problems,
            "notes": self.notes,
            "anomalies": [a.to_dict(surface) for a in self.anomalies],
            "unknown": [a.to_dict(surface) for a in self.unknown],
        }
