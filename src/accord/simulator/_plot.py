"""The pictures: cost per landed change against conflict rate and against agent
count, one line per strategy, the recommended region shaded.

matplotlib is the optional extra ``timeline``: without it,
:func:`ensure_matplotlib` raises :class:`~accord.UsageError` naming the extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ._api import Sweep

__all__ = ["COLOURS", "ensure_matplotlib", "plot_sweep"]

COLOURS = {
    "blind": "#7f7f7f",
    "optimistic": "#1f77b4",
    "lease": "#ff7f0e",
    "queue": "#2ca02c",
    "branch": "#9467bd",
}


def ensure_matplotlib() -> None:
    """Raise :class:`UsageError` unless matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            "Plotting the simulation needs matplotlib, the optional extra 'timeline': "
            "pip install 'accord[timeline]'. The table and --json need nothing more."
        ) from exc


def _axis(
    ax: Any,
    xs: Sequence[float],
    costs: dict[str, list[float]],
    chosen: list[str],
    xlabel: str,
    currency: str,
    log_x: bool,
) -> None:
    for name, ys in costs.items():
        shown = [y if y != float("inf") else float("nan") for y in ys]
        ax.plot(xs, shown, marker="o", label=name, color=COLOURS.get(name))
    # Shade, around each x, the band of the recommended strategy's colour.
    edges = []
    for i, x in enumerate(xs):
        left = xs[i - 1] if i else x
        right = xs[i + 1] if i + 1 < len(xs) else x
        if log_x and x > 0 and left > 0 and right > 0:
            edges.append(((left * x) ** 0.5, (x * right) ** 0.5))
        else:
            edges.append(((left + x) / 2, (x + right) / 2))
    for (lo, hi), name in zip(edges, chosen, strict=True):
        ax.axvspan(lo, hi, color=COLOURS.get(name, "#cccccc"), alpha=0.12, linewidth=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"model cost per landed change ({currency})")
    finite = [y for ys in costs.values() for y in ys if 0 < y < float("inf")]
    if finite and max(finite) > 5 * min(finite):
        # One strategy (often the blind baseline) far above the others: a
        # log scale keeps the others apart.
        ax.set_yscale("log")
    if log_x:
        ax.set_xscale("log", base=2)
    ax.grid(True, alpha=0.3)


def plot_sweep(
    result: Sweep, path: str | Path, *, agents: int | None = None, conflict: float | None = None
) -> list[Path]:
    """Draw ``result`` to ``path`` (its suffix is ignored; a ``.png`` and a
    ``.svg`` are written): cost against conflict rate (at ``agents``, default
    the workload's own count if swept, else the largest) beside cost against
    agent count (at ``conflict``, default the workload's own rate if swept,
    else the lowest). Returns the files written."""
    ensure_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.strategy for s in next(iter(result.points.values())).summaries]
    base = result.base
    at_agents = (
        agents
        if agents is not None
        else (base.agents if base.agents in result.agents else max(result.agents))
    )
    at_conflict = (
        conflict
        if conflict is not None
        else (base.conflict if base.conflict in result.conflicts else min(result.conflicts))
    )
    if at_agents not in result.agents or at_conflict not in result.conflicts:
        raise UsageError(
            f"the sweep has no point at agents={at_agents}, conflict={at_conflict:g}: it has "
            f"agents {list(result.agents)} and conflicts {list(result.conflicts)}."
        )
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    by_conflict = [result.point(at_agents, c) for c in result.conflicts]
    _axis(
        left,
        list(result.conflicts),
        {n: [p.summary(n).cost for p in by_conflict] for n in names},
        [p.choice.strategy for p in by_conflict],
        "share of changes that truly conflict",
        result.base.currency,
        False,
    )
    left.set_title(f"{at_agents} agents")
    by_agents = [result.point(n, at_conflict) for n in result.agents]
    _axis(
        right,
        [float(n) for n in result.agents],
        {n: [p.summary(n).cost for p in by_agents] for n in names},
        [p.choice.strategy for p in by_agents],
        "agents",
        result.base.currency,
        True,
    )
    right.set_title(f"conflict {at_conflict:g}")
    left.legend(loc="best", fontsize="small")
    fig.suptitle(
        f"{result.base.name}: think {result.base.think}, {result.base.resources} resource(s), "
        f"skew {result.base.skew:g}; shaded: the recommended strategy"
    )
    fig.tight_layout()
    stem = Path(path)
    stem = stem.with_suffix("") if stem.suffix.lower() in (".png", ".svg") else stem
    written = []
    for suffix in (".png", ".svg"):
        out = stem.with_name(stem.name + suffix)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110, metadata={"Date": None} if suffix == ".svg" else None)
        written.append(out)
    plt.close(fig)
    return written
