"""The simulator against reality: 3 shapes x 3 strategies as real processes on a
SQLite file with real (scaled-down) sleeps, against the simulated run of the
same seed. Goodput and retry counts agree within 25 % (retry counts of a few
within 2: one retry more or less is not a difference of model)."""

from __future__ import annotations

import pytest

from accord.simulator._validate import SHAPES, compare, within

pytestmark = pytest.mark.slow

STRATEGIES = ("optimistic", "lease", "queue")


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_simulator_predicts_real_processes(shape: str, strategy: str) -> None:
    c = compare(shape, strategy)
    assert c.real.failed == 0, c.real.error
    assert c.simulated.failed == 0, c.simulated.error
    assert within(c.simulated.goodput, c.real.goodput), (c.simulated, c.real)
    assert within(c.retries_simulated, c.retries_real, slack=2), (
        c.retries_simulated,
        c.retries_real,
    )
    assert c.simulated.lost == c.real.lost or strategy == "blind"
