"""``accord demo``: the lost-update picture, live, under every strategy.

Two agents run as two real processes against one store::

    agent A  read (T=1) ........ thinks ........ write (T=5)
    agent B       read (T=2) .. thinks .. write (T=4)

A conductor (this process) hands out the turns, so the interleaving is
exactly the picture every time: each agent blocks in :meth:`AgentContext.turn`
until the conductor says go. What the agents do at their turns is the
strategy's script (``SCRIPTS``). An agent that blocks inside the store (a
lease waiter, say) reports ``blocked`` first; the conductor then moves on,
and the agent takes its next turn as soon as it is free.

Each strategy's script is one function per agent, ``fn(ctx) -> None``; a
strategy may add agents that are not in the schedule (a queue's writer):
they run free from the start.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .errors import AccordError, Conflict

KEY = "docs/plan.md"
INITIAL = "# Plan\n- gather sources\n"
LINES = {
    "agent-a": "- A: add a risks section\n",
    "agent-b": "- B: cite the 2024 survey\n",
}
TURN_TIMEOUT = 20.0


@dataclass
class AgentContext:
    """What an agent's script gets: its session and the conductor's turns."""

    agent: str
    url: str
    key: str
    line: str
    go: Any
    reports: Any
    session: Any = None
    free: bool = False
    stats: dict[str, float] = field(default_factory=dict)

    def turn(self, label: str) -> None:
        """Wait for the conductor's go for this step (immediate once free)."""
        if self.free:
            return
        try:
            message = self.go.get(timeout=TURN_TIMEOUT)
        except queue_mod.Empty:
            self.free = True
            return
        if message == "free":
            self.free = True

    def say(
        self, text: str, *, blocked: bool = False, style: str = "", rev: int | None = None
    ) -> None:
        """Report what happened; ``blocked=True`` before a call that may wait.

        ``rev`` places the row in the timeline: the revision of the event it
        reports, by default the store's revision now. Reports arrive through
        a queue whose sends happen on a background thread, so their arrival
        order says nothing; revisions do: anything another agent does after
        this call commits at a higher revision.
        """
        if rev is None:
            rev = self.session.store.revision() if self.session is not None else 0
        self.reports.put(("say", self.agent, text, blocked, style, rev))

    def count(self, name: str, amount: float = 1) -> None:
        """Add to a cost counter shown under the strategy's timeline."""
        self.stats[name] = self.stats.get(name, 0) + amount


Script = Callable[[AgentContext], None]


# --- the scripts ----------------------------------------------------------------


def _none(ctx: AgentContext) -> None:
    s = ctx.session
    ctx.turn("read")
    doc = s.read(ctx.key)
    ctx.say(f"reads v{doc.version}")
    ctx.turn("write")
    new = s.write(ctx.key, doc.value + ctx.line, force=True)
    ctx.say(f"writes blindly -> v{new.version}", style="yellow", rev=new.revision)


def _optimistic(ctx: AgentContext) -> None:
    s = ctx.session
    ctx.turn("read")
    doc = s.read(ctx.key)
    ctx.say(f"reads v{doc.version}")
    ctx.turn("write")
    value, expect = doc.value, doc.version
    while True:
        try:
            new = s.write(ctx.key, value + ctx.line, expect=expect)
            ctx.say(
                f"writes with expect={expect} -> v{new.version}", style="green", rev=new.revision
            )
            return
        except Conflict as exc:
            ctx.count("conflicts")
            ctx.say(
                f"Conflict: expected v{exc.expected}, now v{exc.current} "
                f"({', '.join(f'v{v} by {a}' for v, a in exc.writers)})",
                style="red",
            )
            doc = s.read(ctx.key)
            ctx.count("retries")
            ctx.say(f"re-reads v{doc.version}, applies its change on top")
            value, expect = doc.value, doc.version


def _lease(ctx: AgentContext) -> None:
    from .errors import LeaseTimeout

    s = ctx.session
    ctx.turn("read")
    started = time.monotonic()
    try:
        lease = s.acquire(ctx.key, ttl=60, wait=0)
    except LeaseTimeout as exc:
        holders = ", ".join(getattr(exc, "holders", [])) or "another agent"
        ctx.say(f"lease is held by {holders}: waits in line", blocked=True)
        lease = s.acquire(ctx.key, ttl=60, wait=TURN_TIMEOUT * 3)
    waited = time.monotonic() - started
    ctx.count("waiting for the lease (ms)", round(waited * 1000))
    doc = s.read(ctx.key)
    after = f" after {waited * 1000:.0f} ms" if waited > 0.05 else ""
    ctx.say(f"gets the lease (token {lease.token}){after}, reads v{doc.version}")
    ctx.turn("write")
    new = s.write(ctx.key, doc.value + ctx.line, lease=lease)
    ctx.say(
        f"writes under token {lease.token} -> v{new.version}, releases",
        style="green",
        rev=new.revision,
    )
    lease.release()


def _queue(ctx: AgentContext) -> None:
    s = ctx.session
    ctx.turn("read")
    doc = s.read(ctx.key)
    ctx.say(f"reads v{doc.version}")
    ctx.turn("write")
    request = s.submit(ctx.key, ctx.line)
    ctx.say(f"submits its change as request {request.id[:10]}, waits", blocked=True)
    started = time.monotonic()
    done = request.wait(timeout=TURN_TIMEOUT)
    waited = time.monotonic() - started
    ctx.count("waiting for the writer (ms)", round(waited * 1000))
    version = getattr(done.outcome, "version", "?")
    ctx.say(f"writer accepted it -> v{version} ({waited * 1000:.0f} ms)", style="green")


def _queue_writer(ctx: AgentContext) -> None:
    from .strategies import queue

    s = ctx.session

    def fold(value: str, change: str) -> str:
        ctx.say(f"applies {change.split(':')[0].strip('- ')}'s request on its latest value")
        return value + change

    ctx.say("serves the queue: the only agent that writes the key")
    try:
        s.serve(ctx.key, fold, limit=2, timeout=TURN_TIMEOUT * 3)
    finally:
        queue.retire(s, ctx.key)  # the demo resets the key for the next strategy


def _branch(ctx: AgentContext) -> None:
    s = ctx.session
    ctx.turn("read")
    branch = s.fork(ctx.key)
    ctx.say(f"forks v{branch.base_version} into its own copy")
    ctx.turn("write")
    branch.write(branch.read() + ctx.line)
    ctx.say("writes its copy: no lock, no check, no waiting")
    if ctx.agent != "agent-a":
        return
    store = s.store
    merge = store.merge(ctx.key, store.branches(ctx.key), agent=ctx.agent)
    ctx.count("merge conflicts", len(merge.conflicts))
    for conflict in merge.conflicts:
        ctx.say(f"synthesis: merge conflict at {conflict.where} (both appended)", style="yellow")
    merge = store.merge(
        ctx.key,
        store.branches(ctx.key),
        resolve=lambda conflict: "".join(conflict.sides.values()),
        agent=ctx.agent,
    )
    doc = merge.commit()
    ctx.say(f"resolves it (keeps both), commits the merge -> v{doc.version}", style="green")


SCRIPTS: dict[str, dict[str, Script]] = {
    "none": {"agent-a": _none, "agent-b": _none},
    "optimistic": {"agent-a": _optimistic, "agent-b": _optimistic},
    "lease": {"agent-a": _lease, "agent-b": _lease},
    "queue": {"agent-a": _queue, "agent-b": _queue, "writer": _queue_writer},
    "branch": {"agent-a": _branch, "agent-b": _branch},
}
"""strategy -> {agent: script}. agent-a and agent-b follow SCHEDULE; others run free."""

DESCRIPTIONS: dict[str, str] = {
    "none": "blind writes: nobody checks what changed since they read",
    "optimistic": "write with expect=<version read>; on Conflict re-read and retry",
    "lease": "take the key's lease before reading; others wait in line (FIFO)",
    "queue": "agents submit change requests; one writer applies them in order",
    "branch": "each agent edits its own copy; the copies are merged at synthesis",
}

COSTS: dict[str, str] = {
    "none": "no cost, and no safety: one agent's work silently disappears",
    "optimistic": "a retry for the agent that lost the race; nobody waits",
    "lease": "the second agent waits while the first thinks; no retries, no conflicts",
    "queue": "submitters wait for the writer's decision; no retries, no conflicts",
    "branch": "nobody waits; overlapping edits surface as merge conflicts at synthesis",
}

SCHEDULE = [(1, "agent-a"), (2, "agent-b"), (4, "agent-b"), (5, "agent-a")]
"""(T, agent): the conductor gives agent its next turn at time T."""

SETUPS: dict[str, Callable[[Any], None]] = {}
"""strategy -> fn(store) run by the conductor before the agents start."""


# --- the processes ----------------------------------------------------------------


def _agent_main(strategy: str, agent: str, url: str, go: Any, reports: Any) -> None:
    import accord

    ctx = AgentContext(agent, url, KEY, LINES.get(agent, ""), go, reports)
    try:
        with accord.open(url) as store:
            ctx.session = store.session(agent)
            ctx.free = agent not in dict((a, t) for t, a in SCHEDULE)
            SCRIPTS[strategy][agent](ctx)
    except AccordError as exc:
        reports.put(("say", agent, f"{type(exc).__name__}: {exc.message}", False, "red", None))
    except Exception:
        reports.put(("say", agent, "crashed:\n" + traceback.format_exc(), False, "red", None))
    finally:
        reports.put(("stats", agent, ctx.stats))
        reports.put(("done", agent))


@dataclass
class Timeline:
    """The demo's rows in the order things happened in the store.

    Rows are placed by the store revision each report carries, never by
    arrival: the agents report through a ``multiprocessing.Queue``, whose
    sends happen on a background thread, so B's report can overtake A's.
    Rows of one revision keep their arrival order (the conductor hands out
    those turns one at a time). A row without a revision (the conductor's
    own, or a crash) goes after every row that arrived before it.

    Each row is labelled with the conductor's time when its report arrived,
    which can be later than when it happened; in revision order a row
    happened no later than any row after it, so its label is lowered to the
    smallest label that follows it.
    """

    entries: list[tuple[int, int, int, str, str, str]] = field(default_factory=list)
    """(rev, arrival, T, agent, text, style)"""

    def add(self, t: int, agent: str, text: str, style: str, rev: int | None = None) -> None:
        if rev is None:
            rev = max((entry[0] for entry in self.entries), default=0)
        self.entries.append((rev, len(self.entries), t, agent, text, style))

    def rows(self) -> list[tuple[str, str, str, str]]:
        """(time label, agent, text, style), in revision order."""
        ordered = sorted(self.entries)
        out: list[tuple[str, str, str, str]] = []
        lowest = LAST_T
        for _, _, t, agent, text, style in reversed(ordered):
            lowest = min(lowest, t)
            out.append((time_label(lowest), agent, text, style))
        out.reverse()
        return out


LAST_T = 6
"""The conductor's time after the schedule: the agents run free."""


def time_label(t: int) -> str:
    return f"T={t}+" if t >= LAST_T else f"T={t}"


@dataclass
class Run:
    strategy: str
    rows: list[tuple[str, str, str, str]]
    final: str
    lost: list[str]
    stats: dict[str, float]
    seconds: float
    anomalies: list[str]


def run_strategy(strategy: str, url: str) -> Run:
    """Run one strategy's picture with real processes; return what happened."""
    import accord

    with accord.open(url) as store:
        admin = store.session("demo")
        try:
            doc = admin.read(KEY)
            admin.delete(KEY, expect=doc.version)
        except accord.NotFound:
            pass
        admin.write(KEY, INITIAL, expect=0)
        if strategy in SETUPS:
            SETUPS[strategy](store)
        start_rev = store.revision()

    ctx = mp.get_context("spawn")
    reports = ctx.Queue()
    agents = list(SCRIPTS[strategy])
    gos = {agent: ctx.Queue() for agent in agents}
    procs = {
        agent: ctx.Process(
            target=_agent_main, args=(strategy, agent, url, gos[agent], reports), daemon=True
        )
        for agent in agents
    }
    started = time.time()
    for proc in procs.values():
        proc.start()
    timeline = Timeline()
    stats: dict[str, float] = {}
    blocked: set[str] = set()
    done: set[str] = set()
    clock = {"T": 0}

    def handle(message: tuple[Any, ...]) -> tuple[str, str] | None:
        kind = message[0]
        if kind == "say":
            _, agent, text, is_blocked, style, rev = message
            timeline.add(clock["T"], agent, text, style, rev)
            if is_blocked:
                blocked.add(agent)
            else:
                blocked.discard(agent)
            return agent, "blocked" if is_blocked else "said"
        if kind == "stats":
            for name, amount in message[2].items():
                stats[name] = stats.get(name, 0) + amount
            return None
        if kind == "done":
            done.add(message[1])
            blocked.discard(message[1])
            return message[1], "done"
        return None

    for t, agent in SCHEDULE:
        clock["T"] = t
        if agent in done:
            continue
        if agent in blocked:
            timeline.add(t, agent, "(still waiting)", "dim")
            gos[agent].put("go")
            continue
        gos[agent].put("go")
        deadline = time.monotonic() + TURN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                message = reports.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue_mod.Empty:
                break
            who = handle(message)
            if who is not None and who[0] == agent:
                break
    clock["T"] = LAST_T
    for agent in agents:
        gos[agent].put("free")
    deadline = time.monotonic() + 60
    while len(done) < len(agents) and time.monotonic() < deadline:
        try:
            handle(reports.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue_mod.Empty:
            break
    for proc in procs.values():
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    seconds = time.time() - started

    with accord.open(url) as store:
        final = store.session("demo").read(KEY).value
        events = [e.to_dict() for e in store.history(since=start_rev - 1)]
    lost = [agent for agent, line in LINES.items() if line not in final]
    return Run(strategy, timeline.rows(), final, lost, stats, seconds, _anomalies(events))


def _anomalies(events: list[dict[str, Any]]) -> list[str]:
    """Names the race checker gives this run's history (if it is installed)."""
    try:
        import importlib

        checker = getattr(importlib.import_module("accord.history"), "check", None)
    except ImportError:
        return []
    if checker is None:
        return []
    try:
        report = checker(events)
    except Exception:
        return []
    found = getattr(report, "anomalies", report)
    names = []
    for anomaly in found or []:
        name = getattr(anomaly, "name", None) or getattr(anomaly, "kind", None)
        if name:
            names.append(str(name))
    return names


# --- rendering ------------------------------------------------------------------


def render(run: Run) -> Panel:
    table = Table(show_header=True, header_style="bold", expand=False)
    table.add_column("time")
    agents = sorted({agent for _, agent, _, _ in run.rows})
    for agent in agents:
        table.add_column(agent)
    for t, agent, text, style in run.rows:
        cells = [Text(text, style=style) if a == agent else Text("") for a in agents]
        table.add_row(t, *cells)
    final = Text(run.final)
    if run.lost:
        who = ", ".join(run.lost)
        verdict = Text(
            f"LOST UPDATE: {who}'s change is missing from the document, and every agent "
            "believed it succeeded.",
            style="bold red",
        )
    else:
        verdict = Text("Both changes survived.", style="bold green")
    # The description heads the panel rather than its title, which a terminal
    # of 80 columns would cut off mid-sentence.
    parts: list[Any] = [
        Text(DESCRIPTIONS.get(run.strategy, ""), style="bold"),
        table,
        Text("final document:", style="bold"),
        final,
        verdict,
    ]
    if run.anomalies:
        parts.append(
            Text("accord check names it: " + ", ".join(sorted(set(run.anomalies))), style="red")
        )
    cost = COSTS.get(run.strategy, "")
    figures = ", ".join(f"{name}: {amount:g}" for name, amount in sorted(run.stats.items()))
    parts.append(Text(f"cost: {cost}" + (f" ({figures})" if figures else ""), style="cyan"))
    return Panel(Group(*parts), title=f"--strategy {run.strategy}", title_align="left")


@click.command()
@click.option(
    "--strategy",
    default="all",
    show_default=True,
    help="none, optimistic, lease, queue, branch, or all.",
)
@click.option(
    "--store",
    "store_url",
    envvar="ACCORD_URL",
    default=None,
    metavar="URL",
    help="Store URL (default: ACCORD_URL, else sqlite:///.accord/state.db).",
)
@click.option(
    "--plan",
    "show_plan",
    is_flag=True,
    help="Show the shared-state design protocol on the demo's resources, and exit "
    "(starts nothing).",
)
def demo(strategy: str, store_url: str | None, show_plan: bool = False) -> None:
    """Run the lost-update picture live, with two agent processes.

    A reads at T=1, B reads at T=2, B writes at T=4, A writes at T=5.
    """
    if show_plan:
        from .plan import render_demo_plan

        render_demo_plan(Console(highlight=False))
        return
    from ._open import DEFAULT_URL
    from ._open import backend_for as _backend_for

    # Its own stderr console, like the CLI's: the demo is one of the CLI's
    # commands, so importing the CLI from here would close an import loop.
    err_console = Console(stderr=True, highlight=False, soft_wrap=True)
    url = store_url or os.environ.get("ACCORD_URL") or DEFAULT_URL
    if url.startswith("memory:"):
        err_console.print(
            "The demo runs agents as separate processes: use a sqlite:// or "
            "postgresql:// store, not memory://."
        )
        raise SystemExit(1)
    names = list(SCRIPTS) if strategy == "all" else [strategy]
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        err_console.print(
            f"Unknown strategy {unknown[0]!r}: choose one of {', '.join(SCRIPTS)} or all."
        )
        raise SystemExit(1)
    try:
        _backend_for(url, None).close()
    except AccordError as exc:
        err_console.print(f"[red]{type(exc).__name__}:[/] {exc.message}")
        raise SystemExit(exc.exit_code) from exc
    console = Console(highlight=False)
    console.print(
        "[bold]The lost update[/]: two agents edit one document. "
        "A reads (T=1), B reads (T=2), B writes (T=4), A writes (T=5).\n"
        f"Store: {url}   key: {KEY}\n"
        "Before each strategy the document is reset (deleted and created again), so its "
        "version numbers keep counting up: accord never reuses a version."
    )
    for name in names:
        console.print(render(run_strategy(name, url)))
