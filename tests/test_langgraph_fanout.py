"""The LangGraph fan-out example: lines lost with InMemoryStore, kept with AccordStore.

Every run takes the worst interleaving (the nodes meet at a barrier between
read and write), so each assertion holds in every run, not by luck.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from langgraph.store.memory import InMemoryStore

import accord
from accord.langgraph import AccordStore

EXAMPLE = Path(__file__).parent.parent / "examples" / "langgraph_fanout.py"
RUNS = 20


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("langgraph_fanout", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fanout = _load()


def test_inmemorystore_loses_two_of_three_lines() -> None:
    for _ in range(3):
        outcome = fanout.run(InMemoryStore(), safe=False)
        assert outcome.kept == 1 and outcome.error is None


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"], indirect=True)
def test_accordstore_keeps_every_line_20_of_20(
    open_store: Callable[..., accord.Store], tmp_path: Path
) -> None:
    store = open_store()
    kept = 0
    for i in range(RUNS):
        history = tmp_path / f"history{i}.jsonl"
        outcome = fanout.run(AccordStore(store, prefix=f"run{i}"), safe=True, history=history)
        assert outcome.error is None
        assert outcome.lines[0] == "# Findings" and len(outcome.lines) == 4
        assert outcome.check is not None and outcome.check.ok, outcome.check.summary()
        # The race really happened: two of the three first writes were refused.
        conflicts = [ln for ln in history.read_text().splitlines() if '"conflict"' in ln]
        assert len(conflicts) >= 2
        kept += outcome.kept == 3
    assert kept == RUNS


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"], indirect=True)
def test_last_write_wins_loses_lines_and_the_checker_names_them(
    open_store: Callable[..., accord.Store], tmp_path: Path
) -> None:
    store = open_store()
    lg = AccordStore(store, on_overwrite="last-write-wins")
    outcome = fanout.run(lg, safe=False, history=tmp_path / "h.jsonl")
    assert outcome.kept == 1 and outcome.error is None
    assert outcome.check is not None
    assert outcome.check.counts["lost-update"] == 2
    assert outcome.check.lost_writes == 2
    lost = outcome.check.by_name("lost-update")
    assert {a.key for a in lost} == {"langgraph/reports/fanout/findings"}
    named = {agent for a in lost for agent in a.agents}
    assert named <= set(fanout.NODES) and len(named) == 3
    # The same file through the CLI: exit code 5, anomalies named.
    from click.testing import CliRunner

    from accord.cli import cli

    result = CliRunner().invoke(cli, ["check", str(tmp_path / "h.jsonl")])
    assert result.exit_code == 5 and "lost-update on langgraph/reports/fanout/findings" in (
        result.output
    )


@pytest.mark.parametrize("backend_name", ["sqlite"], indirect=True)
def test_naive_nodes_on_accordstore_are_refused(
    open_store: Callable[..., accord.Store], tmp_path: Path
) -> None:
    outcome = fanout.run(AccordStore(open_store()), safe=False, history=tmp_path / "h.jsonl")
    assert outcome.error is not None and outcome.error.startswith("PreconditionRequired")
    assert outcome.lines == ["# Findings"]
    assert outcome.check is not None and outcome.check.ok


def test_the_example_runs_and_prints_both(capsys: pytest.CaptureFixture[str]) -> None:
    assert fanout.main([]) == 0
    out = capsys.readouterr().out
    assert "LangGraph InMemoryStore, naive nodes\n   lines kept: 1 of 3" in out
    assert "AccordStore, nodes that call store.update\n   lines kept: 3 of 3" in out
    assert "accord check: clean" in out
    assert "accord check: anomalies: 2 lost-update" in out
