"""accord.explore's public face: arguments, results, reports, the pytest plugin, the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import accord
from accord.cli import cli
from accord.explorer import ExploreFailed, World, explore, point

from . import explore_toys as toys

pytest_plugins = ["pytester"]

TOYS = str(Path(__file__).with_name("explore_toys.py"))


# --- arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schedules": 0}, "schedules must be a whole number >= 1"),
        ({"schedules": True}, "schedules must be a whole number >= 1"),
        ({"max_steps": -1}, "max_steps"),
        ({"strategy": "bfs"}, "Unknown strategy 'bfs'"),
        ({"strategy": object()}, "has no begin"),
        ({"depth": 0}, "depth"),
        ({"seed": "x"}, "seed"),
        ({"store": "sqlite:///x.db"}, "store must be 'memory://'"),
        ({"replay": "nonsense"}, "not a replay token"),
        ({"preemptions": -1}, "preemptions"),
    ],
)
def test_bad_arguments_are_refused_with_what_to_do(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(accord.UsageError, match=match):
        explore(toys.lost_update, **kwargs)


def test_the_workflow_must_be_an_async_function() -> None:
    def sync_workflow(world: World) -> None:
        pass

    with pytest.raises(accord.UsageError, match="must be an async function"):
        explore(sync_workflow, store=None)
    with pytest.raises(accord.UsageError, match="takes the workflow"):
        explore("lost_update", store=None)  # type: ignore[arg-type]


# --- results and reports -----------------------------------------------------------------


def test_a_passing_exploration_says_how_it_passed() -> None:
    result = explore(toys.optimistic_update, schedules=300, seed=42, store=None)
    assert result.ok and result.failure is None
    assert result.schedules == 300 and result.seed == 42
    summary = result.summary()
    assert "passed 300 schedules (pct, depth 3, seed 42)" in summary
    result.raise_for_failure()
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ok"] is True and data["failure"] is None and data["seed"] == 42


def test_a_random_seed_is_chosen_and_reported() -> None:
    result = explore(toys.optimistic_update, schedules=5, store=None)
    assert isinstance(result.seed, int)
    again = explore(
        toys.optimistic_update, schedules=5, seed=result.seed, store=None, keep_runs=True
    )
    assert again.ok


def test_exhaustive_reports_that_it_ran_out() -> None:
    result = explore(toys.independent_keys, strategy="exhaustive", preemptions=None, store=None)
    assert result.exhausted
    assert "every schedule (1 schedules; " in result.summary()


def test_a_failure_report_has_the_timeline_the_token_and_the_traceback() -> None:
    result = explore(toys.lost_update, schedules=100, seed=3, store=None)
    failure = result.failure
    assert failure is not None
    report = result.report()
    assert report.startswith("accord explore: lost_update: schedule ")
    assert "AssertionError" in report
    assert failure.timeline() in report
    assert f"Replay token: {failure.token}" in report
    assert f'accord.explore(lost_update, replay="{failure.token}")' in report
    assert "Traceback of main" in report
    lines = failure.timeline().splitlines()
    assert lines[0].split() == ["step", "time", "main", "agent-a", "agent-b"]
    assert any("read doc" in line for line in lines)
    assert any("think 30s" in line for line in lines)
    with pytest.raises(ExploreFailed) as info:
        result.raise_for_failure("pytest x --accord-replay {token}")
    assert isinstance(info.value, accord.AccordError)
    assert info.value.exit_code == 5
    assert f"pytest x --accord-replay {failure.token}" in str(info.value)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["failure"]["token"] == failure.token
    assert data["failure"]["kind"] == "exception"
    assert data["failure"]["trace"][0]["agent"] == "main"
    with pytest.raises(accord.UsageError, match="no store history to draw"):
        failure.draw("x.svg")


def test_world_choose_is_explored_and_replayed() -> None:
    async def workflow(world: World) -> None:
        pick = world.choose(["small", "medium", "large"])
        await point("use it")
        assert pick != "large", "large inputs break it"

    result = explore(workflow, strategy="exhaustive", store=None)
    assert result.failure is not None and "large inputs break it" in result.failure.message
    again = explore(workflow, replay=result.failure.token, store=None)
    assert again.failure is not None


def test_explore_can_be_called_from_a_running_loop() -> None:
    async def caller() -> accord.explorer.ExploreResult:
        return explore(toys.lost_update_no_think, seed=1, store=None)

    result = asyncio.run(caller())
    assert result.failure is not None


def test_progress_is_reported_after_each_schedule() -> None:
    seen: list[tuple[int, int]] = []
    explore(
        toys.optimistic_update,
        schedules=7,
        seed=1,
        store=None,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen == [(i, 7) for i in range(1, 8)]


def test_the_top_level_names() -> None:
    assert accord.explore is accord.explorer.explore
    assert accord.explores is accord.explorer.explores
    assert accord.think is accord.explorer.think
    assert accord.tool_call is accord.explorer.tool_call


# --- the pytest plugin --------------------------------------------------------------------

PLUGIN_TESTS = """
import accord
from accord.explorer import point


async def lost(world):
    doc = {"v": ""}

    async def agent(line):
        await point("read", reads={"doc"})
        text = doc["v"]
        await point("write", writes={"doc"})
        doc["v"] = text + line

    world.spawn("a", agent("A"))
    world.spawn("b", agent("B"))
    await world.join()
    assert sorted(doc["v"]) == ["A", "B"], doc


@accord.explores(schedules=100, seed=1)
async def test_lost(world):
    await lost(world)


@accord.explores
async def test_passes(world, tmp_path):
    assert tmp_path.exists()
    await point("nothing shared")


def test_fixture(accord_explore):
    result = accord_explore(lost, schedules=100, seed=2)


def test_fixture_counts(accord_explore):
    async def fine(world):
        await point("p")
    result = accord_explore(fine, schedules=50)
    assert result.schedules == SCHEDULES
"""


def _plugin_tests(pytester: pytest.Pytester, schedules: int = 50) -> None:
    pytester.makepyfile(test_flows=PLUGIN_TESTS.replace("SCHEDULES", str(schedules)))


def test_plugin_fails_a_test_with_the_timeline_and_the_replay_command(
    pytester: pytest.Pytester,
) -> None:
    _plugin_tests(pytester)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "AssertionError" in out
    assert "step      time  main" in out
    assert "pytest test_flows.py::test_lost --accord-replay x1." in out
    assert "pytest test_flows.py::test_fixture --accord-replay x1." in out


def test_plugin_replays_a_token_and_skips_the_other_workflows(pytester: pytest.Pytester) -> None:
    _plugin_tests(pytester)
    first = pytester.runpytest("-k", "test_lost")
    first.assert_outcomes(failed=1, deselected=3)
    token = next(
        line.split()[-1]
        for line in first.stdout.lines
        if line.strip().startswith("Replay token: ") or "Replay token: x1." in line
    )
    timeline = [line for line in first.stdout.lines if "read" in line and "0s" in line]
    again = pytester.runpytest("--accord-replay", token)
    # test_lost replays and fails the same way; the fixture tests run another
    # workflow and are skipped; test_passes (another workflow) too.
    again.assert_outcomes(failed=1, skipped=3)
    assert "schedule 1 of 1 failed (replay)" in again.stdout.str()
    assert [line for line in again.stdout.lines if "read" in line and "0s" in line] == timeline


def test_plugin_overrides_the_number_of_schedules(pytester: pytest.Pytester) -> None:
    _plugin_tests(pytester, schedules=3)
    result = pytester.runpytest("--accord-schedules", "3", "-k", "counts")
    result.assert_outcomes(passed=1, deselected=3)


def test_explores_refuses_what_it_cannot_explore() -> None:
    with pytest.raises(accord.UsageError, match="decorates an async function"):
        accord.explores(lambda world: None)

    async def no_world() -> None:
        pass

    with pytest.raises(accord.UsageError, match="must take the world"):
        accord.explores(no_world)


# --- the command line ----------------------------------------------------------------------


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, ["explore", *args], catch_exceptions=False)


def test_cli_reports_a_failing_schedule_and_exits_5() -> None:
    result = invoke(f"{TOYS}:lost_update", "--seed", "4", "--schedules", "50")
    assert result.exit_code == 5, result.output
    assert "lost_update: schedule " in result.output
    assert "Replay it: accord explore --replay x1." in result.output
    token = result.output.rsplit("Replay token: ", 1)[1].split()[0]
    again = invoke(f"{TOYS}:lost_update", "--replay", token)
    assert again.exit_code == 5
    assert "failed (replay)" in again.output


def test_cli_json_and_a_passing_workflow() -> None:
    result = invoke(f"{TOYS}:optimistic_update", "--schedules", "40", "--seed", "1", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["ok"] is True and data["schedules"] == 40 and data["strategy"] == "pct"
    failing = invoke(
        f"{TOYS}:opposite_locks", "--strategy", "exhaustive", "--preemptions", "none", "--json"
    )
    assert failing.exit_code == 5
    data = json.loads(failing.output)
    assert data["failure"]["kind"] == "deadlock"
    assert data["failure"]["deadlock"]["cycle"][0] == data["failure"]["deadlock"]["cycle"][-1]


def test_cli_runs_a_decorated_test_with_its_options() -> None:
    result = invoke(f"{TOYS}:test_decorated_lost_update", "--json")
    assert result.exit_code == 5
    data = json.loads(result.output)
    assert data["seed"] == 7 and data["requested"] == 200
    assert data["workflow"] == "test_decorated_lost_update"


@pytest.mark.parametrize(
    ("target", "extra", "message"),
    [
        ("nothing-here", [], "MODULE:FUNCTION"),
        (f"{TOYS}:nope", [], "has no 'nope'"),
        (f"{TOYS}:Shared", [], "not an async function"),
        ("no_such_module_xyz:flow", [], "Cannot import 'no_such_module_xyz'"),
        ("missing/file.py:flow", [], "There is no file"),
        (f"{TOYS}:lost_update", ["--preemptions", "-3"], "--preemptions takes"),
        (f"{TOYS}:lost_update", ["--replay", "x1.AAAA"], "damaged"),
        (f"{TOYS}:lost_update", ["--timeline", "out.txt"], ".svg, .png or .html"),
    ],
)
def test_cli_usage_errors_exit_1(target: str, extra: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["explore", target, *extra])
    assert result.exit_code == 1, result.output
    assert message in result.output


def test_cli_module_form_and_docs() -> None:
    result = invoke(
        "tests.explore_toys:independent_keys", "--strategy", "exhaustive", "--preemptions", "none"
    )
    assert result.exit_code == 0, result.output
    assert "every schedule" in result.output
    text = (Path(__file__).parent.parent / "docs" / "cli.md").read_text()
    assert "## accord explore" in text
