"""The Agents SDK author/critic example, on the SDK's ScriptedModel: no model, no network."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

import accord

EXAMPLE = Path(__file__).parent.parent / "examples" / "agents_sdk_author_critic.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("agents_sdk_author_critic", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


example = _load()


@pytest.mark.parametrize("backend_name", ["sqlite", "postgresql"], indirect=True)
def test_the_conflict_message_reaches_the_critics_next_model_input(
    open_store: Callable[..., accord.Store], tmp_path: Path
) -> None:
    result = asyncio.run(example.scenario(open_store(), tmp_path / "history.jsonl"))
    critic_second = result.critic_models[1]
    calls = critic_second.calls
    # Call 0 decided the write on version 1; call 1 is the model's next input.
    failed = [i for i in calls[1].input if i.get("type") == "function_call_output"
              and i.get("call_id") == "critic-tick"]
    assert len(failed) == 1
    output = failed[0]["output"]
    assert output.startswith(
        "Conflict on docs/checklist.json: you wrote based on version 1, but it is at version 2 "
        "(v2 by author). Re-read it, apply your change on top, and write with expect=2."
    )
    assert "$.dates checked: false -> true" in output
    assert "An error occurred while running the tool" not in json.dumps(calls[1].input)
    # The model acted on the message: its next write used expect=2 and succeeded.
    retry = [i for i in calls[3].input if i.get("type") == "function_call_output"
             and i.get("call_id") == "critic-retick"]
    assert json.loads(retry[0]["output"]) == {"key": "docs/checklist.json", "version": 3,
                                              "written": True}
    retick_call = [i for i in calls[3].input if i.get("type") == "function_call"
                   and i.get("call_id") == "critic-retick"]
    assert json.loads(retick_call[0]["arguments"])["expect"] == 2
    # The critic's first run is in its conversation (AccordSession): run 2 starts from it.
    first_inputs = json.dumps(calls[0].input)
    assert "critic-read-checklist" in first_inputs and "Review the draft." in first_inputs
    assert result.checklist == {"dates checked": True, "budget reviewed": True}
    assert result.draft.endswith("Budget: 40k EUR.\n")
    assert result.check.ok, result.check.summary()
    assert result.conflict_output == output


def test_the_example_prints_the_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert example.main([]) == 0
    out = capsys.readouterr().out
    assert "(v2 by author). Re-read it, apply your change on top, and write with expect=2." in out
    assert "Budget: 40k EUR." in out and "accord check: clean" in out
