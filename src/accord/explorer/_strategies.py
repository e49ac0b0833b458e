"""Who moves next: the exploration strategies.

- :class:`RandomWalk`: at every choice, a uniformly random ready agent.
- :class:`PCT`: probabilistic concurrency testing (Burckhardt, Kothari,
  Musuvathi, Nagarakatte, ASPLOS 2010): random priorities, the highest
  ready agent runs, and ``depth - 1`` random steps lower the running
  agent's priority below every other. For a workflow of ``n`` agents and at
  most ``k`` steps, each run finds a given bug of depth ``d`` (one that
  needs ``d`` ordering constraints between steps, e.g. ``d = 2`` for the
  lost update: B reads before A writes, and A reads before B writes) with
  probability at least ``1 / (n * k**(d - 1))``, when run with ``depth=d``.
- :class:`Exhaustive`: every schedule with at most ``preemptions``
  preemptions (switches away from an agent that could have continued;
  switches at a wait, a sleep or an agent's end are free), depth first,
  skipping with sleep sets the orders of steps that touch different keys.
- :class:`Replay` follows a recorded list of decisions exactly;
  :class:`Guided` follows a plan of runs leniently (the shrinker's).

Every strategy is deterministic given its seed: run ``i`` of a seeded
strategy draws from ``Random(seed * 1_000_003 + i)``, so any run can be
re-made from ``(seed, i)`` as well as from its replay token.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..errors import UsageError
from ._runtime import Agent, Footprint, Prune, RunResult, independent

__all__ = ["PCT", "Exhaustive", "Guided", "RandomWalk", "Replay", "ReplayDiverged"]


class ReplayDiverged(UsageError):
    """A replay token does not fit the workflow: it names an agent that is not
    ready, or more or fewer choices than the workflow makes."""


def _rng(seed: int, index: int) -> random.Random:
    return random.Random(seed * 1_000_003 + index)


class RandomWalk:
    """A uniformly random ready agent at every choice (seeded)."""

    every_step = False

    def __init__(self, seed: int = 0) -> None:
        self.name = "random"
        self.seed = seed
        self._rng = _rng(seed, 0)

    def begin(self, index: int) -> bool:
        self._rng = _rng(self.seed, index)
        return True

    def pick(self, ready: Sequence[Agent], current: int | None, step: int) -> Agent:
        return ready[self._rng.randrange(len(ready))]

    def pick_value(self, n: int) -> int:
        return self._rng.randrange(n)

    def end(self, result: RunResult) -> None:
        pass


class PCT:
    """Probabilistic concurrency testing with ``depth - 1`` priority change points.

    Each run gives every agent a random priority above ``depth`` when it
    first becomes ready and picks ``depth - 1`` distinct change points among
    steps ``1..k``, where ``k`` is the most steps any earlier run took (a
    guess of 20 for the first run). The ready agent with the highest
    priority moves; at change point number ``i`` the agent about to move
    drops to priority ``depth - i``, below every initial priority.
    """

    every_step = True

    def __init__(self, seed: int = 0, depth: int = 3, steps_hint: int = 20) -> None:
        if not isinstance(depth, int) or depth < 1:
            raise UsageError(f"PCT depth must be a whole number >= 1, not {depth!r}.")
        self.name = "pct"
        self.seed = seed
        self.depth = depth
        self.max_steps = max(1, steps_hint)
        self._seen_steps = 0
        self._rng = _rng(seed, 0)
        self._prio: dict[int, float] = {}
        self._changes: dict[int, int] = {}

    def begin(self, index: int) -> bool:
        rng = self._rng = _rng(self.seed, index)
        k = self._seen_steps or self.max_steps
        points = rng.sample(range(1, k + 1), min(self.depth - 1, k))
        self._changes = {step: i + 1 for i, step in enumerate(points)}
        self._prio = {}
        return True

    def pick(self, ready: Sequence[Agent], current: int | None, step: int) -> Agent:
        prio = self._prio
        for a in ready:
            if a.id not in prio:
                prio[a.id] = self.depth + self._rng.random()
        best = max(ready, key=lambda a: prio[a.id])
        level = self._changes.get(step)
        if level is not None:
            prio[best.id] = self.depth - level - self._rng.random() * 1e-3
            best = max(ready, key=lambda a: prio[a.id])
        return best

    def pick_value(self, n: int) -> int:
        return self._rng.randrange(n)

    def end(self, result: RunResult) -> None:
        if result.outcome != "pruned":
            self._seen_steps = max(self._seen_steps, result.steps)


class Replay:
    """Follows recorded decisions exactly; raises :class:`ReplayDiverged` when
    the workflow does not offer the recorded choice."""

    name = "replay"
    every_step = False

    def __init__(self, decisions: Sequence[int]) -> None:
        self.decisions = list(decisions)
        self._i = 0

    def begin(self, index: int) -> bool:
        self._i = 0
        return True

    def _next(self, what: str) -> int:
        if self._i >= len(self.decisions):
            raise ReplayDiverged(
                f"The replay token ran out after {len(self.decisions)} choices, but the "
                f"workflow asks for another ({what}): the token belongs to another workflow "
                "or the workflow changed since it was recorded. Explore again to get a "
                "fresh token."
            )
        value = self.decisions[self._i]
        self._i += 1
        return value

    def pick(self, ready: Sequence[Agent], current: int | None, step: int) -> Agent:
        want = self._next(f"choice {self._i + 1}, at step {step}")
        for a in ready:
            if a.id == want:
                return a
        names = ", ".join(f"{a.id} ({a.name})" for a in ready)
        raise ReplayDiverged(
            f"The replay token says agent {want} moves at step {step} (choice {self._i}), "
            f"but only {names} can move there: the token belongs to another workflow or the "
            "workflow changed since it was recorded (or it is not deterministic: real time, "
            "unseeded randomness, or set order across processes). Explore again to get a "
            "fresh token."
        )

    def pick_value(self, n: int) -> int:
        value = self._next(f"a value among {n}")
        if not 0 <= value < n:
            raise ReplayDiverged(
                f"The replay token chooses value {value} at choice {self._i}, but the "
                f"workflow offers {n}: the token belongs to another workflow or the "
                "workflow changed. Explore again to get a fresh token."
            )
        return value

    def end(self, result: RunResult) -> None:
        if result.outcome != "pruned" and self._i < len(self.decisions):
            raise ReplayDiverged(
                f"The workflow finished after {self._i} of the token's "
                f"{len(self.decisions)} choices: the token belongs to another workflow or "
                "the workflow changed since it was recorded. Explore again to get a fresh "
                "token."
            )


class Guided:
    """Follows a plan of runs ``[(agent id, steps), ...]`` as far as it can.

    At each step the first run in the plan whose agent is ready moves and
    loses one step; when no planned agent is ready, the agent that moved
    last continues if it can, else the lowest id. Values are taken from
    ``values`` in order (0 when they run out). The shrinker uses it to try
    simpler variants of a failing schedule.
    """

    name = "guided"
    every_step = True

    def __init__(self, plan: Sequence[tuple[int, int]], values: Sequence[int] = ()) -> None:
        self._plan0 = [(a, n) for a, n in plan if n > 0]
        self._values0 = list(values)
        self._plan: list[list[int]] = []
        self._values: list[int] = []

    def begin(self, index: int) -> bool:
        self._plan = [[a, n] for a, n in self._plan0]
        self._values = list(self._values0)
        return True

    def pick(self, ready: Sequence[Agent], current: int | None, step: int) -> Agent:
        plan = self._plan
        for j, entry in enumerate(plan):
            for a in ready:
                if a.id == entry[0]:
                    entry[1] -= 1
                    if entry[1] == 0:
                        del plan[j]
                    return a
        for a in ready:
            if a.id == current:
                return a
        return ready[0]

    def pick_value(self, n: int) -> int:
        if self._values:
            return min(self._values.pop(0), n - 1)
        return 0

    def end(self, result: RunResult) -> None:
        pass


class _Node:
    """A choice point on the current path of the exhaustive search."""

    __slots__ = ("chosen", "current", "done", "fps", "kind", "options", "preempts", "sleep")

    def __init__(
        self,
        kind: str,
        options: list[int],
        fps: dict[int, Footprint | None],
        current: int | None,
        sleep: dict[int, Footprint | None],
        preempts: int,
    ) -> None:
        self.kind = kind
        self.options = options
        self.fps = fps
        self.current = current
        self.sleep = sleep
        self.preempts = preempts
        self.chosen = -1
        self.done: set[int] = set()


class Exhaustive:
    """Every schedule with at most ``preemptions`` preemptions, depth first.

    The search is stateless: each run replays the path to the deepest choice
    point with an alternative left, takes that alternative, and continues
    with the default choice (the agent that moved last keeps going; else
    the lowest id). With ``prune`` (the default), sleep sets (Godefroid
    1996) skip a choice whose step commutes with steps already explored
    from the same point: when agent s was explored first at a point and
    agent t is explored now, s sleeps in t's subtree until a step that
    touches s's keys runs, because running s earlier is a schedule already
    seen. With a preemption bound this may skip a schedule whose only
    equivalents need more preemptions than the bound; without a bound
    (``preemptions=None``) no distinct outcome is lost. The workflow must
    be deterministic (every run of the same choices does the same thing).
    """

    name = "exhaustive"
    # Forced steps matter too: a step that touches a sleeping agent's keys
    # wakes it, and a run whose only ready agent sleeps repeats one seen.
    every_step = True

    def __init__(self, preemptions: int | None = 2, prune: bool = True) -> None:
        if preemptions is not None and (not isinstance(preemptions, int) or preemptions < 0):
            raise UsageError(
                f"preemptions must be a whole number >= 0 or None, not {preemptions!r}."
            )
        self.bound = preemptions
        self.prune = prune
        self.exhausted = False
        self._path: list[_Node] = []
        self._follow = 0
        self._depth = 0
        self._sleep: dict[int, Footprint | None] = {}
        self._preempts = 0

    def _affordable(self, preempts: int) -> bool:
        return self.bound is None or preempts <= self.bound

    def begin(self, index: int) -> bool:
        if self.exhausted:
            return False
        self._depth = 0
        self._sleep = {}
        self._preempts = 0
        return True

    def _replayed(self, kind: str, options: list[int]) -> _Node | None:
        i = self._depth
        if i >= self._follow:
            return None
        node = self._path[i]
        if node.kind != kind or node.options != options:
            raise UsageError(
                "The workflow did not repeat itself: the same choices led to different "
                f"agents being ready (choice {i + 1}: {node.options} before, {options} now). "
                "Exhaustive exploration needs a deterministic workflow: no real time, no "
                "unseeded randomness, no iteration over sets of strings."
            )
        return node

    def pick(self, ready: Sequence[Agent], current: int | None, step: int) -> Agent:
        if len(ready) == 1:
            only = ready[0]
            if self.prune and self._sleep:
                if only.id in self._sleep:
                    raise Prune
                fp = only.step.footprint
                self._sleep = {s: f for s, f in self._sleep.items() if independent(f, fp)}
            return only
        options = [a.id for a in ready]
        by_id = {a.id: a for a in ready}
        node = self._replayed("agent", options)
        if node is None:
            cur = current if current in by_id else None
            node = _Node(
                "agent",
                options,
                {a.id: a.step.footprint for a in ready},
                cur,
                self._sleep,
                self._preempts,
            )
            awake = [o for o in options if o not in self._sleep]
            if cur is not None and cur in awake:
                choice = cur
            else:
                cost = 0 if cur is None else 1
                if not awake or not self._affordable(self._preempts + cost):
                    raise Prune
                choice = awake[0]
            node.chosen = choice
            del self._path[self._depth :]
            self._path.append(node)
        self._depth += 1
        chosen = node.chosen
        if node.current is not None and chosen != node.current:
            self._preempts += 1
        if self.prune:
            fp = node.fps[chosen]
            base = dict(node.sleep)
            for d in node.done:
                base[d] = node.fps[d]
            self._sleep = {s: f for s, f in base.items() if s != chosen and independent(f, fp)}
        return by_id[chosen]

    def pick_value(self, n: int) -> int:
        options = list(range(n))
        node = self._replayed("value", options)
        if node is None:
            node = _Node("value", options, {}, None, self._sleep, self._preempts)
            node.chosen = 0
            del self._path[self._depth :]
            self._path.append(node)
        self._depth += 1
        return node.chosen

    def end(self, result: RunResult) -> None:
        if self._depth < self._follow:
            raise UsageError(
                "The workflow did not repeat itself: a run ended before reaching the "
                "choice the search was going back to. Exhaustive exploration needs a "
                "deterministic workflow."
            )
        del self._path[self._depth :]
        for i in range(len(self._path) - 1, -1, -1):
            node = self._path[i]
            node.done.add(node.chosen)
            for o in node.options:
                if o in node.done or o in node.sleep:
                    continue
                if node.kind == "agent":
                    cost = 1 if node.current is not None and o != node.current else 0
                    if not self._affordable(node.preempts + cost):
                        continue
                node.chosen = o
                del self._path[i + 1 :]
                self._follow = i + 1
                return
        self._path.clear()
        self._follow = 0
        self.exhausted = True
