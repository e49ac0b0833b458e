"""Convert Jepsen histories to accord's foreign history format.

Two shapes are read, the ones Porcupine's test data uses:

* Jepsen's etcd register log (``INFO jepsen.util - 3 :invoke :cas [1 2]``;
  the leading ``INFO jepsen.util -`` is optional): read, write and cas, with
  ``:fail :cas`` (the compare did not match), ``:fail :read :timed-out``
  (nothing known) and ``:info ... :timed-out`` (may have taken effect);
* Jepsen's key-value EDN lines (``{:process 3, :type :invoke, :f :append,
  :key "1", :value "x 3 0 y"}``): get, put and append.

The log has no clock: the line number is the time (an operation starts at
its invoke line and ends at its completion line), as Porcupine reads it.
An operation never completed is ``info`` and ends at the end of the log.
Writes and puts are marked ``"blind": true``: Jepsen clients write without
reading first.

Run: .venv/bin/python bench/jepsen.py LOG > history.jsonl
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

_ETCD = re.compile(r"(\d+)\s+:(invoke|ok|fail|info)\s+:(read|write|cas)\s+(.*?)\s*$")
_KV = re.compile(
    r'\{:process (\d+), :type :(invoke|ok|fail|info), :f :(get|put|append), '
    r':key "(.*?)", :value (nil|".*?")\}'
)
_BASE = 1_800_000_000.0


def _etcd_value(op: str, text: str) -> Any:
    if op == "cas":
        expect, value = text.strip("[]").split()
        return [int(expect), int(value)]
    return None if text == "nil" else int(text)


def convert(lines: list[str], key: str = "register") -> list[dict[str, Any]]:
    """The foreign events of a Jepsen log, in the order their operations began."""
    open_ops: dict[str, dict[str, Any]] = {}
    done: list[dict[str, Any]] = []
    n = 0
    for raw in lines:
        m = _KV.search(raw)
        if m:
            proc, kind, f, k, text = m.groups()
            op = {"get": "read", "put": "write", "append": "append"}[f]
            value: Any = None if text == "nil" else text[1:-1]
        else:
            m = _ETCD.search(raw)
            if not m:
                continue
            proc, kind, op, text = m.groups()
            k = key
            value = None if text in (":timed-out", "") else _etcd_value(op, text)
        n += 1
        if kind == "invoke":
            ev: dict[str, Any] = {"agent": f"p{proc}", "op": op, "key": k}
            if op == "cas":
                ev["expect"], ev["value"] = value
            elif op != "read":
                ev["value"] = value
            if op == "write":
                ev["blind"] = True
            ev["start"] = _BASE + n
            open_ops[proc] = ev
            continue
        ev = open_ops.pop(proc)
        ev["end"] = _BASE + n
        if ev["op"] == "read":
            ev["value"] = value if kind == "ok" else None
        ev["outcome"] = kind
        done.append(ev)
    for ev in open_ops.values():
        ev["end"] = _BASE + n + 1
        if ev["op"] == "read":
            ev["value"] = None
        ev["outcome"] = "info"
        done.append(ev)
    done.sort(key=lambda e: e["start"])
    order = ("agent", "op", "key", "expect", "value", "blind", "outcome", "start", "end")
    return [{name: ev[name] for name in order if name in ev} for ev in done]


def main() -> None:
    for name in sys.argv[1:]:
        lines = Path(name).read_text().splitlines()
        for ev in convert(lines):
            print(json.dumps(ev))


if __name__ == "__main__":
    main()
