"""Draw docs/simulate.md's plots and print its tables.

For each of the three shapes (the seed's author/critic document, a hot
counter, a large shared memory store with little overlap): a sweep over
agent counts and conflict rates, drawn to docs/img/simulate-<shape>.png and
.svg, and the simulator's choice at the shape itself. Then the prediction
against real processes on SQLite (3 shapes x 3 strategies), as a table.

    .venv/bin/python tools/gen_simulate_docs.py [--seeds 10] [--no-reality]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from accord.simulator import SHAPES, simulate, sweep
from accord.simulator._plot import plot_sweep
from accord.simulator._validate import SHAPES as SCALED
from accord.simulator._validate import compare

ROOT = Path(__file__).resolve().parent.parent
AGENTS = {
    "document": (2, 4, 8, 16),
    "counter": (2, 4, 8, 16),
    "memory": (2, 4, 8, 16, 32, 64),
}
CONFLICTS = (0.0, 0.05, 0.2, 0.5, 1.0)
REALITY = ("optimistic", "lease", "queue")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--no-reality", action="store_true")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated")
    args = parser.parse_args()
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        rates = tuple(sorted({*CONFLICTS, shape.conflict}))
        result = sweep(shape, agents=AGENTS[name], conflicts=rates, seeds=args.seeds, processes=2)
        drawn = plot_sweep(result, ROOT / "docs" / "img" / f"simulate-{name}")
        point = simulate(shape, seeds=args.seeds, processes=2)
        print(f"## {name}: {', '.join(str(p.relative_to(ROOT)) for p in drawn)}")
        print(f"{name}: use {point.choice.strategy}: {point.choice.reason}")
        print(
            "| strategy | goodput /s | p50 s | p99 s | retries | wasted s | waiting s "
            "| conflicts | lost | gave up | cost/change |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for s in point.summaries:
            print(
                f"| {s.strategy} | {s.goodput:.3g} | {s.p50:.3g} | {s.p99:.3g} | "
                f"{s.retries:.2f} | {s.wasted:.3g} | {s.waiting:.3g} | {s.conflicts:.3g} | "
                f"{s.lost:.3g} | {s.gave_up:.3g} | {s.cost:.3g} {shape.currency} |"
            )
        print(flush=True)
    if args.no_reality:
        return
    print("| shape | strategy | goodput sim | goodput real | retries sim | retries real |")
    print("|---|---|---|---|---|---|")
    for name in SCALED:
        for strategy in REALITY:
            c = compare(name, strategy)
            print(
                f"| {name} | {strategy} | {c.simulated.goodput:.3g} | {c.real.goodput:.3g} | "
                f"{c.retries_simulated} | {c.retries_real} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
