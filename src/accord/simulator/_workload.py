"""The shape of a workload: who changes what, how often, how long they think.

A :class:`Workload` is plain data, checked when it is made: every field that
is out of range raises :class:`~accord.UsageError` naming the field, what it
got and what to pass. :class:`Think` is the distribution of the time a
model takes to produce one change (fixed, exponential, or log-normal, the
last fitted from measured latencies with :meth:`Think.from_samples`).
"""

from __future__ import annotations

import math
import random
import statistics
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from itertools import accumulate
from typing import Any

from .. import params
from ..errors import UsageError, option

__all__ = ["KINDS", "SHAPES", "Think", "Workload", "ZipfPicker", "shape"]

KINDS = ("fixed", "exponential", "lognormal")
"""The distributions a think time may follow."""

MAX_AGENTS = 64


@dataclass(frozen=True)
class Think:
    """How long one change takes a model to think, in seconds.

    ``kind`` is ``fixed`` (always ``mean``), ``exponential`` (mean ``mean``)
    or ``lognormal`` (mean ``mean``, log-space standard deviation
    ``sigma``: 0.5 is a typical spread of model-call latencies).
    """

    kind: str = "fixed"
    mean: float = 30.0
    sigma: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UsageError(
                f"think kind {self.kind!r} is not one of {', '.join(KINDS)}: pass, say, "
                f"{option('think', 'lognormal:30')} (a log-normal of mean 30 seconds)."
            )
        params.seconds(self.mean, "think mean", above=True, example="30")
        params.seconds(
            self.sigma,
            "think sigma",
            maximum=3,
            example="0.5",
            hint="It is the log-space spread of a log-normal think time.",
        )

    @classmethod
    def parse(cls, text: str | float | Think) -> Think:
        """``"30"``, ``"fixed:30"``, ``"exp:30"``, ``"lognormal:30"`` or
        ``"lognormal:30,0.8"`` (mean, then sigma) as a :class:`Think`."""
        if isinstance(text, Think):
            return text
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return cls("fixed", float(text))
        if not isinstance(text, str):
            raise UsageError(
                f"think must be a number of seconds or text such as 'lognormal:30', "
                f"not {text!r} ({type(text).__name__})."
            )
        kind, _, rest = text.strip().partition(":")
        if not rest:
            kind, rest = "fixed", kind
        kind = {"exp": "exponential", "log-normal": "lognormal"}.get(kind.strip(), kind.strip())
        parts = [p.strip() for p in rest.split(",")]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            raise UsageError(
                f"think {text!r} is not a distribution: write KIND:MEAN[,SIGMA] with KIND one "
                f"of {', '.join(KINDS)}, e.g. 'fixed:30', 'exp:30', 'lognormal:30,0.5'."
            ) from None
        if len(numbers) > (2 if kind == "lognormal" else 1):
            raise UsageError(
                f"think {text!r} has too many numbers: {kind} takes the mean"
                + (" and the sigma" if kind == "lognormal" else "")
                + "."
            )
        return cls(kind, *numbers)

    @classmethod
    def from_samples(cls, seconds: Iterable[float]) -> Think:
        """The log-normal fitted (by its log-space mean and spread) to
        measured model latencies, in seconds; at least two, all positive."""
        values = [params.seconds(s, "latency sample", above=True) for s in seconds]
        if len(values) < 2:
            raise UsageError(
                f"fitting a think time needs at least 2 measured latencies, got {len(values)}: "
                "pass a fixed think time instead, e.g. Think('fixed', 30)."
            )
        logs = [math.log(v) for v in values]
        mu = statistics.fmean(logs)
        sigma = min(statistics.pstdev(logs), 3.0)
        if sigma == 0:
            return cls("fixed", values[0])
        return cls("lognormal", math.exp(mu + sigma * sigma / 2), sigma)

    def draw(self, rng: random.Random) -> float:
        """One think time, in seconds."""
        if self.kind == "fixed":
            return self.mean
        if self.kind == "exponential":
            return rng.expovariate(1.0 / self.mean)
        mu = math.log(self.mean) - self.sigma * self.sigma / 2
        return rng.lognormvariate(mu, self.sigma)

    def __str__(self) -> str:
        if self.kind == "lognormal":
            return f"lognormal:{self.mean:g},{self.sigma:g}"
        return f"{self.kind}:{self.mean:g}"


@dataclass(frozen=True)
class Workload:
    """The shape of the work agents do on shared resources.

    ``agents`` (1..64) each make ``operations`` changes, one after another;
    each change picks one of ``resources`` keys by a Zipf draw of exponent
    ``skew`` (0: uniform; 1 and more: the first key is hot), thinks for a
    ``think`` time (the model call producing the change), then lands it with
    the strategy. ``conflict`` is the share of changes that truly conflict
    with another one made concurrently on the same key (they touch the same
    part of it): a three-way merge cannot reconcile them, so branches leave
    them for synthesis; the rest merge cleanly. ``rethink``: a change depends
    on the value read, so a lost optimistic attempt throws its thought away
    and thinks again (a document); False: the change is a pure function of
    the value, applied with ``update()`` after thinking (a counter).
    ``apply`` is how long the queue's writer takes to apply one request
    (0: mechanically; a model applying an intent to a document takes time).
    ``synthesis`` is how long resolving one merge conflict takes (default:
    the mean think time). ``op_latency`` is the time of one store operation.
    ``cost_per_second`` prices a second of model time in ``currency``.
    """

    agents: int = 8
    resources: int = 1
    skew: float = 1.0
    think: Think = field(default_factory=Think)
    operations: int = 5
    conflict: float = 0.1
    rethink: bool = True
    apply: float = 0.0
    synthesis: float | None = None
    op_latency: float = 0.005
    cost_per_second: float = 0.001
    currency: str = "$"
    name: str = "workload"

    def __post_init__(self) -> None:
        params.count(self.agents, "agents", minimum=1, maximum=MAX_AGENTS, example="8")
        params.count(self.resources, "resources", minimum=1, maximum=100_000, example="1")
        params.seconds(
            self.skew, "skew", maximum=10, example="1.0", hint="It is the Zipf exponent s.", unit=""
        )
        if not isinstance(self.think, Think):
            object.__setattr__(self, "think", Think.parse(self.think))
        params.count(self.operations, "operations", minimum=1, maximum=10_000, example="5")
        if not isinstance(self.conflict, (int, float)) or isinstance(self.conflict, bool):
            raise UsageError(
                f"conflict must be a share from 0 to 1, not {self.conflict!r}: "
                f"pass, say, {option('conflict', 0.1)}."
            )
        if not 0 <= self.conflict <= 1:
            raise UsageError(
                f"{option('conflict', self.conflict)} is out of range: it is the share of "
                "changes that truly conflict, from 0 to 1 (0.1 for one in ten)."
            )
        params.flag(self.rethink, "rethink")
        params.seconds(self.apply, "apply", example="0")
        if self.synthesis is not None:
            params.seconds(self.synthesis, "synthesis", example="30")
        params.seconds(
            self.op_latency,
            "op_latency",
            maximum=60,
            example="0.005",
            hint="It is the time one store operation takes.",
        )
        params.seconds(
            self.cost_per_second,
            "cost_per_second",
            example="0.001",
            hint="It is what one second of model time costs.",
            unit="",
        )
        if not isinstance(self.currency, str) or not self.currency or len(self.currency) > 8:
            raise UsageError(
                f"currency must be a short label such as '$' or 'EUR', not {self.currency!r}."
            )
        if not isinstance(self.name, str) or not self.name:
            raise UsageError(f"A workload's name must be non-empty text, not {self.name!r}.")

    @property
    def synthesis_time(self) -> float:
        """Seconds to resolve one merge conflict."""
        return self.think.mean if self.synthesis is None else float(self.synthesis)

    def with_(self, **changes: Any) -> Workload:
        """A copy with ``changes`` (checked again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The workload as JSON-ready data (``think`` as text)."""
        data = asdict(self)
        data["think"] = str(self.think)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        """A workload from :meth:`to_dict`'s data (unknown fields are refused)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(
                f"unknown workload field(s) {', '.join(unknown)}: the fields are "
                f"{', '.join(sorted(known))}."
            )
        return cls(**data)


class ZipfPicker:
    """Draws resource indexes ``0..n-1`` with probability proportional to
    ``1 / (i + 1) ** s`` (``s = 0``: uniform)."""

    __slots__ = ("_cumulative", "_total")

    def __init__(self, n: int, s: float) -> None:
        weights = [1.0 / (i + 1) ** s for i in range(n)]
        self._cumulative = list(accumulate(weights))
        self._total = self._cumulative[-1]

    def pick(self, rng: random.Random) -> int:
        return min(
            bisect_left(self._cumulative, rng.random() * self._total), len(self._cumulative) - 1
        )

    def share(self, index: int) -> float:
        """The probability of ``index``."""
        before = self._cumulative[index - 1] if index else 0.0
        return float((self._cumulative[index] - before) / self._total)


SHAPES: dict[str, Workload] = {
    # The seed's picture: an author and a critic editing one document, each
    # change a long model call that depends on the text read; a queued intent
    # needs a model to apply it.
    "document": Workload(
        name="document",
        agents=2,
        resources=1,
        skew=0.0,
        think=Think("lognormal", 30.0, 0.5),
        operations=5,
        conflict=0.2,
        apply=15.0,
    ),
    # One hot counter many agents bump after thinking about what to add: the
    # bump is a pure function of the value (update()), every two bumps touch
    # the same number.
    "counter": Workload(
        name="counter",
        agents=16,
        resources=1,
        skew=0.0,
        think=Think("exponential", 20.0),
        operations=5,
        conflict=1.0,
        rethink=False,
        apply=0.0,
    ),
    # A large shared memory store: many keys, a mild hot set, little overlap.
    "memory": Workload(
        name="memory",
        agents=16,
        resources=200,
        skew=0.8,
        think=Think("lognormal", 10.0, 0.5),
        operations=5,
        conflict=0.05,
        apply=5.0,
    ),
}
"""Named shapes: the three of docs/simulate.md."""


def shape(name: str) -> Workload:
    """The named shape (``document``, ``counter``, ``memory``)."""
    try:
        return SHAPES[name]
    except KeyError:
        raise UsageError(
            f"no workload shape named {name!r}: the shapes are {', '.join(SHAPES)}."
        ) from None


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` percentile (0..100) of ``values`` by linear interpolation; 0 if empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
