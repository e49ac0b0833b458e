"""The cost simulator: choose a strategy from numbers, not rules of thumb.

``accord.simulate(workload)`` runs a workload shape (agents, resources and
their Zipf skew, think times, operations, the share of truly conflicting
changes, the price of model time) under each strategy (blind writes as the
baseline, optimistic ``update()``, lease, queue, branch) with accord's real
strategy code, on the interleaving explorer's scheduler in virtual time,
over many seeds, and reports goodput, latency, retries, wasted model time
and its cost, waiting, merge conflicts and lost updates, with the cheapest
safe strategy. :func:`sweep` does it over agent counts and conflict rates on
every core. See docs/simulate.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._api import Point, Simulation, Sweep, sweep
    from ._metrics import Choice, Summary
    from ._run import STRATEGIES
    from ._workload import SHAPES, Think, Workload, shape

# Loaded on first use (PEP 562): ``import accord`` stays light.
_LAZY = {
    "_api": "Point Simulation Sweep sweep",
    "_metrics": "Choice Summary",
    "_run": "STRATEGIES",
    "_workload": "SHAPES Think Workload shape",
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names.split()}


def simulate(workload: Workload | None = None, **options: Any) -> Simulation:
    """Run ``workload`` under each strategy over many seeds, in virtual time.

    ``accord.simulate(Workload(agents=16, think="lognormal:30"))`` or
    ``accord.simulate(agents=16, think="lognormal:30")``; options:
    ``strategies`` (default all five), ``seeds`` (20), ``seed`` (0),
    ``processes`` (1; None for every core), ``progress(done, total)``.
    Returns a :class:`Simulation`: a :class:`Summary` per strategy and the
    recommended :class:`Choice`. See docs/simulate.md.
    """
    from ._api import simulate as run

    return run(workload, **options)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'accord.simulator' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "SHAPES",
    "STRATEGIES",
    "Choice",
    "Point",
    "Simulation",
    "Summary",
    "Sweep",
    "Think",
    "Workload",
    "shape",
    "simulate",
    "sweep",
]
