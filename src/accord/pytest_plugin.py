"""accord's pytest plugin (entry point ``pytest11``): explorations as tests.

It adds the ``accord_explore`` fixture, which ``@accord.explores`` tests use
and tests may call directly (``accord_explore(workflow, schedules=500)``),
and three options: ``--accord-replay TOKEN`` replays a failing schedule (in
the explorations whose workflow recorded it; the others are skipped),
``--accord-schedules N`` and ``--accord-seed S`` override every
exploration's ``schedules`` and ``seed``. The explorer itself is imported
only when a test asks for the fixture.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from accord.explorer import Explorer


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("accord", "accord interleaving explorer")
    group.addoption(
        "--accord-replay",
        metavar="TOKEN",
        default=None,
        help="Replay the schedule of this token (printed by a failing exploration) in the "
        "explorations whose workflow recorded it; skip the other explorations.",
    )
    group.addoption(
        "--accord-schedules",
        metavar="N",
        type=int,
        default=None,
        help="Run N schedules in every exploration (overrides schedules=).",
    )
    group.addoption(
        "--accord-seed",
        metavar="S",
        type=int,
        default=None,
        help="Use seed S in every exploration (overrides seed=).",
    )


@pytest.fixture
def accord_explore(request: pytest.FixtureRequest) -> Explorer:
    """``accord_explore(workflow, **options)``: explore ``workflow`` (see
    ``accord.explore``), failing the test with the timeline and the replay
    command when a schedule fails."""
    from accord.explorer import Explorer

    config = request.config
    nodeid = request.node.nodeid
    return Explorer(
        replay=config.getoption("accord_replay"),
        schedules=config.getoption("accord_schedules"),
        seed=config.getoption("accord_seed"),
        replay_hint=f"pytest {shlex.quote(nodeid)} --accord-replay {{token}}",
        skip=lambda reason: pytest.skip(reason),
    )
