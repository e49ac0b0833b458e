"""The cost simulator: workload shapes, runs in virtual time, the CLI, the plots."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import accord
from accord.cli import cli
from accord.simulator import SHAPES, Think, Workload, shape
from accord.simulator._run import run_once
from accord.simulator._workload import ZipfPicker, percentile

# --- the workload shape ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"agents": 0}, "agents"),
        ({"agents": 65}, "at most 64"),
        ({"agents": True}, "agents"),
        ({"resources": 0}, "resources"),
        ({"skew": -1}, "skew"),
        ({"skew": float("nan")}, "skew"),
        ({"operations": 0}, "operations"),
        ({"conflict": 1.5}, "from 0 to 1"),
        ({"conflict": "high"}, "share from 0 to 1"),
        ({"rethink": "yes"}, "rethink"),
        ({"apply": -1}, "apply"),
        ({"op_latency": -0.1}, "op_latency"),
        ({"cost_per_second": float("inf")}, "cost_per_second"),
        ({"currency": ""}, "currency"),
        ({"think": "gamma:3"}, "fixed, exponential, lognormal"),
        ({"think": "fixed:abc"}, "KIND:MEAN"),
        ({"think": "fixed:0"}, "think mean"),
        ({"think": "fixed:3,4"}, "too many numbers"),
        ({"think": "lognormal:3,9"}, "think sigma"),
        ({"think": [1]}, "think must be"),
    ],
)
def test_bad_fields_are_refused_with_the_field_named(fields: dict, words: str) -> None:
    with pytest.raises(accord.UsageError, match=words):
        Workload(**fields)


def test_think_parses_and_draws_its_mean() -> None:
    assert Think.parse("30") == Think("fixed", 30.0)
    assert Think.parse(12) == Think("fixed", 12.0)
    assert Think.parse("exp:5") == Think("exponential", 5.0)
    assert Think.parse("lognormal:30,0.8") == Think("lognormal", 30.0, 0.8)
    rng = random.Random(1)
    for think in (Think("exponential", 10.0), Think("lognormal", 10.0, 0.5)):
        draws = [think.draw(rng) for _ in range(20_000)]
        assert sum(draws) / len(draws) == pytest.approx(10.0, rel=0.05)
        assert min(draws) > 0


def test_a_lognormal_is_fitted_from_measured_latencies() -> None:
    rng = random.Random(2)
    samples = [rng.lognormvariate(2.0, 0.6) for _ in range(5000)]
    fitted = Think.from_samples(samples)
    assert fitted.kind == "lognormal"
    assert fitted.sigma == pytest.approx(0.6, rel=0.05)
    assert fitted.mean == pytest.approx(sum(samples) / len(samples), rel=0.05)
    with pytest.raises(accord.UsageError, match="at least 2"):
        Think.from_samples([3.0])
    with pytest.raises(accord.UsageError, match="latency sample"):
        Think.from_samples([3.0, -1.0])


def test_zipf_skew_makes_the_first_resource_hot() -> None:
    flat = ZipfPicker(10, 0.0)
    assert flat.share(0) == pytest.approx(0.1)
    hot = ZipfPicker(10, 1.5)
    assert hot.share(0) > 0.5
    rng = random.Random(3)
    picks = [hot.pick(rng) for _ in range(20_000)]
    assert picks.count(0) / len(picks) == pytest.approx(hot.share(0), abs=0.02)
    assert set(picks) <= set(range(10))


def test_shapes_round_trip_and_unknown_names_are_refused() -> None:
    for name, w in SHAPES.items():
        assert shape(name) is w
        assert Workload.from_dict(w.to_dict()) == w
    with pytest.raises(accord.UsageError, match="document, counter, memory"):
        shape("spreadsheet")
    with pytest.raises(accord.UsageError, match="unknown workload field"):
        Workload.from_dict({"agentz": 3})


def test_percentile() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([5.0], 99) == 5.0


# --- runs -----------------------------------------------------------------------


def test_blind_writes_lose_updates_and_optimistic_loses_none() -> None:
    w = Workload(agents=6, resources=1, operations=3, think="fixed:10")
    blind = run_once(w, "blind", 1)
    assert blind.outcome == "ok", blind.error
    assert blind.lost > 0
    optimistic = run_once(w, "optimistic", 1)
    assert optimistic.outcome == "ok", optimistic.error
    assert optimistic.lost == 0
    assert sum(c.retries for c in optimistic.changes) > 0


def test_unknown_strategy_is_refused() -> None:
    with pytest.raises(accord.UsageError, match="blind, optimistic, lease, queue, branch"):
        run_once(Workload(), "pessimistic", 0)
    with pytest.raises(accord.UsageError, match="unknown strategy"):
        accord.simulate(strategies=["optimistic", "mutex"])


def test_simulate_is_public_and_takes_fields() -> None:
    result = accord.simulate(agents=3, operations=2, strategies=["blind", "optimistic"], seeds=2)
    assert result.workload.agents == 3
    assert [s.strategy for s in result.summaries] == ["blind", "optimistic"]
    assert result.choice.strategy == "optimistic"
    assert "blind loses" in result.choice.reason
    data = result.to_dict()
    json.dumps(data, allow_nan=False)
    with pytest.raises(accord.UsageError, match="takes a Workload"):
        accord.simulate({"agents": 3})  # type: ignore[arg-type]


# --- the command line -----------------------------------------------------------


def test_cli_table_and_json() -> None:
    runner = CliRunner()
    out = runner.invoke(
        cli,
        ["simulate", "document", "--strategies", "blind,optimistic", "--seeds", "2"],
    )
    assert out.exit_code == 0, out.output
    assert "optimistic" in out.output and "use" in out.output
    out = runner.invoke(
        cli,
        [
            "simulate",
            "--agents",
            "3",
            "--operations",
            "2",
            "--strategies",
            "blind,optimistic",
            "--seeds",
            "2",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["workload"]["agents"] == 3
    assert data["choice"]["strategy"] == "optimistic"


def test_cli_bad_input_exits_1_with_a_message() -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["simulate", "--agents", "100", "--json"])
    assert out.exit_code == 1
    assert "at most 64" in json.loads(out.output)["message"]
    out = runner.invoke(cli, ["simulate", "nosuchshape"])
    assert out.exit_code == 1
    assert "document, counter, memory" in out.output
    out = runner.invoke(cli, ["simulate", "--sweep", "--sweep-agents", "a,b"])
    assert out.exit_code == 1
    assert "separated by commas" in out.output


def test_plot_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = CliRunner().invoke(cli, ["simulate", "--plot", "x"])
    assert out.exit_code == 1
    assert "accord[timeline]" in out.output


# --- accord plan --simulate ------------------------------------------------------

MANIFEST = """
[agents.a]
[agents.b]
[agents.c]

[[resource]]
key = "plan.md"
writer = "a"
readers = ["b"]

[[resource]]
key = "counter"
writers = ["a", "b", "c"]
conflicts = "high"
reasoning = "short"
"""


def test_plan_simulate_fills_the_shared_rows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "accord.toml"
    path.write_text(MANIFEST)
    out = CliRunner().invoke(cli, ["plan", str(path), "--simulate", "--seeds", "2", "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["key"]: r for r in json.loads(out.output)["resources"]}
    assert "simulated" not in rows["plan.md"]  # one writer: nothing to choose
    simulated = rows["counter"]["simulated"]
    assert simulated["strategy"] in accord.simulator.STRATEGIES
    assert "3 agents" in simulated["why"] and "conflicts=high" in simulated["why"]
    out = CliRunner().invoke(cli, ["plan", str(path), "--simulate", "--seeds", "2"])
    assert out.exit_code == 0, out.output
    assert "simulated:" in out.output


def test_plan_simulate_from_history_uses_what_it_shows() -> None:
    from accord.plan import plan_history, read_history
    from accord.simulator._plan import workload_for

    history = Path(__file__).parent / "histories" / "clean_retry.jsonl"
    plan = plan_history(read_history(history), source="h")
    row = next(r for r in plan.rows if r.resource.key == "docs/plan.md")
    workload, where = workload_for(row, 0)
    assert "writes refused" in where
    assert workload.agents >= 2
    assert 0 < workload.conflict <= 1


def test_sweep_and_plot_write_png_and_svg(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = CliRunner().invoke(
        cli,
        [
            "simulate",
            "--operations",
            "2",
            "--think",
            "exp:5",
            "--strategies",
            "optimistic,queue",
            "--seeds",
            "1",
            "--sweep-agents",
            "1,3",
            "--sweep-conflicts",
            "0,0.5",
            "--processes",
            "1",
            "--plot",
            str(tmp_path / "sweep"),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert len(data["points"]) == 4
    assert sorted(data["plots"]) == [str(tmp_path / "sweep.png"), str(tmp_path / "sweep.svg")]
    assert (tmp_path / "sweep.png").stat().st_size > 1000
    assert (tmp_path / "sweep.svg").read_text().lstrip().startswith("<?xml")
