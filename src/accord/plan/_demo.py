"""The protocol on the demo's own resources (``accord demo --plan``)."""

from __future__ import annotations

from typing import Any

from ..policy.manifest import parse_manifest
from ._classify import COSTS, FITS
from ._plan import Plan, make_plan
from ._render import WIDE, plan_table

DEMO_MANIFEST = """\
# The demo's resources: two agents edit one shared plan.
[agents.agent-a]
[agents.agent-b]

[[resource]]
key = "docs/plan.md"
description = "the shared plan both agents add a line to"
readers = ["agent-a", "agent-b"]
writers = ["agent-a", "agent-b"]
builds_on = true       # each agent edits the plan as it stands
conflicts = "low"      # two agents, a few writes each
reasoning = "short"
"""

def demo_plan() -> Plan:
    """The plan of the demo's resources (agent-a and agent-b write docs/plan.md)."""
    return make_plan(parse_manifest(DEMO_MANIFEST, path="demo manifest"), source="accord demo")


def render_demo_plan(console: Any) -> None:
    """Print the protocol on the demo's own resources (``accord demo --plan``).

    Shows the manifest, the plan table, and every strategy the demo runs
    with when it is the simplest that works and what it costs.
    """
    from rich.syntax import Syntax
    from rich.table import Table

    plan = demo_plan()
    console.print(
        "[bold]The shared-state design protocol[/], on the demo's own resources: list every "
        "resource more than one agent touches, classify its access, pick the simplest strategy "
        "that works, make writes idempotent."
    )
    console.print(Syntax(DEMO_MANIFEST, "toml", theme="ansi_dark", background_color="default"))
    console.print(plan_table(plan, title="accord plan: the demo", wide=console.width >= WIDE))
    row = plan.rows[0]
    console.print(
        f"Declare it: add strategy = \"{row.strategy}\" to the resource. Until then "
        "`accord plan --check` fails (exit 6): a many-writer resource needs a strategy."
    )
    table = Table(title="the alternatives for docs/plan.md", header_style="bold", show_lines=True)
    table.add_column("strategy")
    table.add_column("simplest when")
    table.add_column("cost")
    table.add_column("see it: accord demo", no_wrap=True)
    for name in ("optimistic", "branch", "queue", "lease"):
        marker = " (chosen)" if name == plan.rows[0].strategy else ""
        table.add_row(name + marker, FITS[name], COSTS[name], f"--strategy {name}")
    table.add_row("none", "never: blind writes lose updates", "no cost, no safety",
                  "--strategy none")
    console.print(table)
    console.print(
        "Enforce it: save the manifest as accord.toml and set ACCORD_MANIFEST=accord.toml "
        "(in Python, open the store with its manifest option): a blind write to docs/plan.md "
        "is then refused with PolicyViolation."
    )
