"""The benchmarks' own set-up: a benchmark that dies half-way measures nothing."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

import accord

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def bench_postgres():  # type: ignore[no-untyped-def]
    pytest.importorskip("psycopg")
    sys.path.insert(0, str(BENCH))
    try:
        yield importlib.import_module("bench_postgres")
    finally:
        sys.path.remove(str(BENCH))


def test_contention_creates_every_own_key(bench_postgres, store: accord.Store) -> None:  # type: ignore[no-untyped-def]
    # With 16 clients, "own/1" is a prefix of "own/10".."own/15": every key must exist anyway.
    keys = [f"own/{i}" for i in range(16)]
    bench_postgres.create_keys(store, list(reversed(keys)))
    bench_postgres.create_keys(store, keys)  # a second run finds them and changes nothing
    s = store.session("check")
    for key in keys:
        doc = s.read(key)
        assert (doc.value, doc.version) == (0, 1), key
