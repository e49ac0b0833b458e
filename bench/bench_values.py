"""Encoding a value for storage (``encode_value``, on every write) against bare ``json.dumps``.

The raw engine doing the least work: ``json.dumps(value, sort_keys=True,
separators=(",", ":")).encode()`` for JSON data (the same canonical form,
with none of accord's checks) and ``str.encode("utf-8")`` for text. Shapes:

- flat dict    10 string keys to str, int, float, bool and None
- flat list    100 ints
- nested doc   a document of dicts and lists, 4 levels, about 60 nodes
- emoji dict   a flat dict whose strings hold characters outside the BMP
               (escaped as surrogate pairs, which sends accord to its walk)
- text 1 KiB   a text value

To compare two versions of accord, run this script from each checkout in
turn (``PYTHONPATH=/path/to/checkout/src``), alternating, in one time window:
the ratios are comparable across runs, the rates less so.

Run: .venv/bin/python bench/bench_values.py [--seconds 2] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from _timing import paired
from accord.records import encode_value

FLAT = {f"field{i}": v for i, v in enumerate(["x" * 20, 17, 3.25, True, None] * 2)}
LIST = list(range(100))
NESTED = {
    "title": "Plan",
    "owner": {"name": "agent-a", "team": "research"},
    "sections": [
        {
            "title": f"Section {i}",
            "done": i % 2 == 0,
            "notes": [f"note {j}" for j in range(4)],
            "meta": {"weight": i * 1.5, "tags": ["a", "b"]},
        }
        for i in range(5)
    ],
    "version": 3,
}
EMOJI = {f"k{i}": "status ✅ done 😀" for i in range(10)}
TEXT = ("The quick brown fox jumps over the lazy dog. " * 24)[:1024]


def bare_json(value: Any) -> Callable[[], None]:
    def run() -> None:
        json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=2.0, help="per shape and side")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'shape':<12} {'accord/s':>11} {'bare/s':>11} {'ratio':>6} {'accord ns':>10}")
    shapes: list[tuple[str, Any, Callable[[], None]]] = [
        ("flat dict", FLAT, bare_json(FLAT)),
        ("flat list", LIST, bare_json(LIST)),
        ("nested doc", NESTED, bare_json(NESTED)),
        ("emoji dict", EMOJI, bare_json(EMOJI)),
        ("text 1 KiB", TEXT, lambda: TEXT.encode("utf-8") and None),
    ]
    for name, value, bare in shapes:
        o, b, r = paired(
            lambda value=value: encode_value(value) and None,
            bare,
            args.seconds,
            args.rounds,
            batch=200,
        )
        print(f"{name:<12} {o:>11,.0f} {b:>11,.0f} {r:>6.2f} {1e9 / o:>10,.0f}")


if __name__ == "__main__":
    main()
