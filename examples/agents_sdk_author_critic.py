"""An author and a critic (OpenAI Agents SDK) share a draft and a checklist through accord.

No model and no network: each agent is driven by the SDK's own
``agents.testing.ScriptedModel``, which plays back the tool calls a model
would make and records every input the model was given. The story:

1. the author writes the draft (``docs/draft.md``) and a review checklist
   (``docs/checklist.json``);
2. the critic reads both;
3. the author ticks a checklist item (version 2);
4. the critic ticks another, still based on version 1: its write hits a
   Conflict, and the SDK hands the model accord's message, "v2 by author ...
   write with expect=2", as the tool's output (the SDK's default would have
   been "An error occurred while running the tool"). The scripted critic
   does what the message says: it re-reads and writes with expect=2;
5. the critic proposes an edit to the draft through the queue (the author is
   the draft's single writer), and the author applies it.

The critic's conversation lives in an ``AccordSession``, so its second run
starts from its first. Run it::

    python examples/agents_sdk_author_critic.py [--store URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import Agent, Runner, set_tracing_disabled
from agents.testing import ModelCall, ModelStep, ScriptedModel, assistant_message, function_call

import accord
from accord.agents_sdk import AccordSession, tools

DRAFT = "docs/draft.md"
CHECKLIST = "docs/checklist.json"
FIRST_DRAFT = "# Launch plan\n\nWe launch in May.\nBudget: TBD.\n"


def _outputs(call: ModelCall) -> dict[str, str]:
    """The tool outputs in a model input, by call id."""
    items = call.input if isinstance(call.input, list) else []
    return {
        str(item["call_id"]): str(item["output"])
        for item in items
        if isinstance(item, dict) and item.get("type") == "function_call_output"
    }


def _write_on_top(call: ModelCall) -> list[Any]:
    """What a model does with the conflict: the version from accord's message, its change
    applied on top of the value it just re-read."""
    outputs = _outputs(call)
    version = int(re.findall(r"write with expect=(\d+)", outputs["critic-tick"])[0])
    current = json.loads(outputs["critic-reread"])["value"]
    ticked = {**current, "budget reviewed": True}
    return [
        function_call(
            "accord_write",
            {"key": CHECKLIST, "value": json.dumps(ticked), "expect": version, "is_json": True},
            call_id="critic-retick",
        )
    ]


def author_model_first() -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("accord_write", {"key": DRAFT, "value": FIRST_DRAFT, "expect": 0,
                                            "is_json": False}, call_id="author-draft")],
            [function_call("accord_write", {
                "key": CHECKLIST, "expect": 0, "is_json": True,
                "value": json.dumps({"dates checked": False, "budget reviewed": False}),
            }, call_id="author-checklist")],
            [assistant_message("Draft and checklist written (version 1 each).")],
        ]
    )


def author_model_second() -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("accord_write", {
                "key": CHECKLIST, "expect": 1, "is_json": True,
                "value": json.dumps({"dates checked": True, "budget reviewed": False}),
            }, call_id="author-tick")],
            [assistant_message("Ticked: dates checked.")],
        ]
    )


def critic_model_first() -> ScriptedModel:
    return ScriptedModel(
        [
            [function_call("accord_read", {"key": DRAFT}, call_id="critic-read-draft")],
            [function_call("accord_read", {"key": CHECKLIST}, call_id="critic-read-checklist")],
            [assistant_message("Read the draft and the checklist, both at version 1.")],
        ]
    )


def critic_model_second() -> ScriptedModel:
    return ScriptedModel(
        [
            # Ticks its item on the version it read in its first run: version 1.
            [function_call("accord_write", {
                "key": CHECKLIST, "expect": 1, "is_json": True,
                "value": json.dumps({"dates checked": False, "budget reviewed": True}),
            }, call_id="critic-tick")],
            [function_call("accord_read", {"key": CHECKLIST}, call_id="critic-reread")],
            ModelStep(responder=_write_on_top),
            [function_call("accord_submit", {
                "key": DRAFT, "is_json": True, "wait_seconds": 0,
                "change": json.dumps({"replace": "Budget: TBD.", "with": "Budget: 40k EUR."}),
            }, call_id="critic-submit")],
            [assistant_message("Checklist ticked; budget edit submitted to the author.")],
        ]
    )


@dataclass
class Result:
    """What the example leaves behind, for printing and for the tests."""

    critic_models: list[ScriptedModel]
    conflict_output: str
    draft: str
    checklist: dict[str, Any]
    check: accord.CheckResult


def apply_edit(current: Any, change: Any) -> Any:
    """The author's rule for a queued edit: replace one line of the draft."""
    if not isinstance(change, dict) or change.get("replace") not in current:
        return accord.Reject("the text to replace is not in the draft")
    return str(current).replace(change["replace"], change["with"])


async def scenario(store: accord.Store, history: Path) -> Result:
    """Run the four agent runs and the author's queue on ``store``; export the history."""
    set_tracing_disabled(True)  # the SDK would send its traces to OpenAI: no network here
    author = store.session("author")
    critic = store.session("critic")
    critic_conversation = AccordSession("critic-review", store, agent="critic")
    author_tools, critic_tools = tools(author), tools(critic)

    def agent(name: str, model: ScriptedModel, agent_tools: list[Any]) -> Agent[Any]:
        return Agent(name=name, instructions=f"You are the {name}.", model=model,
                     tools=agent_tools)

    models = [author_model_first(), critic_model_first(), author_model_second(),
              critic_model_second()]
    await Runner.run(agent("author", models[0], author_tools), "Write the draft.")
    await Runner.run(agent("critic", models[1], critic_tools), "Review the draft.",
                     session=critic_conversation)
    await Runner.run(agent("author", models[2], author_tools), "Tick what you checked.")
    await Runner.run(agent("critic", models[3], critic_tools), "Tick what you reviewed.",
                     session=critic_conversation)
    for model in models:
        model.assert_complete()

    # The author serves the draft's queue: applies the critic's edit.
    author.serve(DRAFT, apply_edit, timeout=0)

    critic_second = models[3]
    after_conflict = critic_second.calls[1]  # the model call right after the failed write
    store.export_history(history)
    return Result(
        critic_models=[models[1], models[3]],
        conflict_output=_outputs(after_conflict)["critic-tick"],
        draft=author.read(DRAFT).value,
        checklist=author.read(CHECKLIST).value,
        check=accord.check(history),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="accord store URL (default: a fresh SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.store or f"sqlite:///{Path(tmp) / 'state.db'}"
        with accord.open(url) as store:
            result = asyncio.run(scenario(store, Path(tmp) / "history.jsonl"))
    print("The critic's write hit a conflict; its next model input carried this tool output:")
    for line in result.conflict_output.splitlines():
        print(f"    {line}")
    print(f"\nchecklist: {json.dumps(result.checklist)}")
    print("draft:")
    for line in result.draft.splitlines():
        print(f"    {line}")
    print(f"\naccord check: {result.check.summary()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
