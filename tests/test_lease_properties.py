"""Hypothesis: leases against a model, on a simulated store clock.

Random sequences of acquire (no waiting), renew, release, ensure_held,
writes under a lease and clock jumps, by three agents on two keys. After
every step the store must agree with a plain model: a grant happens exactly
when nothing conflicting is live, tokens count up per key from 1, and a
write under a lease is accepted exactly when that lease is live, exclusive
and for that key; nothing refused changes the value.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import accord

AGENTS = ["agent-a", "agent-b", "agent-c"]
KEYS = ["doc", "other"]


@dataclass
class Model:
    key: str
    agent: str
    mode: str
    token: int
    expires: float
    released: bool = False

    def live(self, now: float) -> bool:
        return not self.released and self.expires > now


class Leases(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 1_000_000.0
        self.store = accord.open("memory://", clock=lambda: self.now)
        self.sessions = {a: self.store.session(a) for a in AGENTS}
        self.leases: list[tuple[accord.Lease, Model]] = []
        self.last_token = dict.fromkeys(KEYS, 0)
        self.values: dict[str, str | None] = dict.fromkeys(KEYS)
        self.writes = 0

    def teardown(self) -> None:
        self.store.close()

    def live(self, key: str) -> list[Model]:
        return [m for _, m in self.leases if m.key == key and m.live(self.now)]

    @rule(
        agent=st.sampled_from(AGENTS),
        key=st.sampled_from(KEYS),
        mode=st.sampled_from(["exclusive", "shared"]),
        ttl=st.sampled_from([0.5, 1.0, 2.0, 5.0]),
    )
    def acquire(self, agent: str, key: str, mode: str, ttl: float) -> None:
        live = self.live(key)
        allowed = not live if mode == "exclusive" else all(m.mode == "shared" for m in live)
        try:
            lease = self.sessions[agent].acquire(key, ttl=ttl, wait=0, mode=mode)
        except accord.LeaseTimeout:
            assert not allowed, "refused a lease nothing conflicting held"
            return
        assert allowed, f"granted {mode} {key} to {agent} while {live} were live"
        assert lease.token == self.last_token[key] + 1
        assert lease.expires == self.now + ttl
        self.last_token[key] = lease.token
        self.leases.append((lease, Model(key, agent, mode, lease.token, lease.expires)))

    @precondition(lambda self: bool(self.leases))
    @rule(i=st.integers(min_value=0), ttl=st.sampled_from([0.5, 1.0, 3.0]))
    def renew(self, i: int, ttl: float) -> None:
        lease, model = self.leases[i % len(self.leases)]
        if model.live(self.now):
            assert lease.renew(ttl) == self.now + ttl
            model.expires = self.now + ttl
        else:
            try:
                lease.renew(ttl)
            except accord.LeaseLost:
                return
            raise AssertionError("renewed a lease that was not live")

    @precondition(lambda self: bool(self.leases))
    @rule(i=st.integers(min_value=0))
    def release(self, i: int) -> None:
        lease, model = self.leases[i % len(self.leases)]
        was_live = model.live(self.now)
        try:
            lease.release()
            assert was_live, "released a lease that was not live"
        except accord.LeaseLost:
            assert not was_live, "refused to release a live lease"
        model.released = True

    @precondition(lambda self: bool(self.leases))
    @rule(i=st.integers(min_value=0))
    def ensure_held(self, i: int) -> None:
        lease, model = self.leases[i % len(self.leases)]
        try:
            lease.ensure_held()
            assert model.live(self.now)
        except accord.LeaseLost:
            assert not model.live(self.now)

    @precondition(lambda self: bool(self.leases))
    @rule(i=st.integers(min_value=0), key=st.sampled_from(KEYS), agent=st.sampled_from(AGENTS))
    def write(self, i: int, key: str, agent: str) -> None:
        lease, model = self.leases[i % len(self.leases)]
        self.writes += 1
        value = f"w{self.writes}"
        ok = (
            model.live(self.now)
            and model.mode == "exclusive"
            and model.key == key
            and model.agent == agent
        )
        try:
            self.sessions[agent].write(key, value, lease=lease)
        except accord.Fenced:
            assert not ok, f"fenced a write under a live lease {model}"
            return
        assert ok, f"accepted a write under {model} at {self.now} to {key} by {agent}"
        self.values[key] = value

    @rule(dt=st.sampled_from([0.25, 0.5, 1.0, 2.5]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @invariant()
    def store_agrees(self) -> None:
        for key in KEYS:
            status = accord.lease_status(self.store, key)
            assert sorted(h.token for h in status.holders if h.token is not None) == sorted(
                m.token for m in self.live(key)
            )
            assert status.waiters == []
            current: str | None
            try:
                current = self.sessions["agent-a"].read(key).value
            except accord.NotFound:
                current = None
            assert current == self.values[key]


TestLeases = Leases.TestCase
TestLeases.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
