"""Hypothesis properties of the store, on every backend.

- a version never repeats for a key (also across delete and re-create);
- a committed (acknowledged) write is never lost: the last acknowledged
  write is what a read returns, and every one is in the history;
- a replayed idempotency key changes nothing.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import accord

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

op = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(["a", "b", "c"]), st.text(max_size=8)),
    st.tuples(st.just("stale"), st.sampled_from(["a", "b", "c"]), st.text(max_size=8)),
    st.tuples(st.just("delete"), st.sampled_from(["a", "b", "c"]), st.just("")),
    st.tuples(st.just("force"), st.sampled_from(["a", "b", "c"]), st.text(max_size=8)),
)


@SETTINGS
@given(ops=st.lists(op, min_size=1, max_size=25))
def test_versions_never_repeat_and_acked_writes_persist(
    store: accord.Store, ops: list[tuple[str, str, str]]
) -> None:
    prefix = uuid.uuid4().hex
    s = store.session("prop")
    acked: dict[str, str | None] = {}
    versions: dict[str, list[int]] = {}
    for kind, name, value in ops:
        key = f"{prefix}/{name}"
        try:
            current = s.read(key).version
        except accord.NotFound:
            current = 0
        try:
            if kind == "write":
                doc = s.write(key, value, expect=current)
            elif kind == "stale":
                doc = s.write(key, value, expect=current + 1)
            elif kind == "force":
                doc = s.write(key, value, force=True)
            else:
                v = s.delete(key, expect=current) if current else None
                if v is not None:
                    versions.setdefault(key, []).append(v)
                    acked[key] = None
                continue
        except accord.Conflict:
            assert kind == "stale"
            continue
        assert kind != "stale"
        versions.setdefault(key, []).append(doc.version)
        acked[key] = value
    for key, seen in versions.items():
        assert seen == sorted(set(seen)), f"versions repeated for {key}: {seen}"
    for key, value in acked.items():
        if value is None:
            try:
                s.read(key)
                raise AssertionError("deleted key still readable")
            except accord.NotFound:
                pass
        else:
            assert s.read(key).value == value
    events = [
        e for e in store.history() if e.key and e.key.startswith(prefix) and e.outcome == "ok"
    ]
    assert sum(len(v) for v in versions.values()) == len(events)


@SETTINGS
@given(values=st.lists(st.text(max_size=6), min_size=1, max_size=6), replays=st.integers(1, 3))
def test_replayed_idempotency_key_changes_nothing(
    store: accord.Store, values: list[str], replays: int
) -> None:
    prefix = uuid.uuid4().hex
    s = store.session("prop")
    key = f"{prefix}/doc"
    firsts = []
    for i, value in enumerate(values):
        expect = i  # each write builds on the one before it
        firsts.append(s.write(key, value, expect=expect, idempotency_key=f"{prefix}-{i}"))
    before = (s.read(key).version, len(list(store.history(key=key))))
    for _ in range(replays):
        for i, value in enumerate(values):
            again = s.write(key, value, expect=i, idempotency_key=f"{prefix}-{i}")
            assert (again.version, again.revision) == (firsts[i].version, firsts[i].revision)
    after = (s.read(key).version, len(list(store.history(key=key))))
    assert before == after
