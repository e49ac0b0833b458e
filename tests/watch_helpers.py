"""Writers and a watcher for the watch tests in real processes (importable by
spawned children): each writer update()s its own key and one shared key; the
watcher checks it saw every version of every key exactly once, in order."""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import accord

SHARED = "w/shared"


def own_key(agent: str) -> str:
    return f"w/{agent}"


def watch_writer(url: str, agent: str, rounds: int | None, start: Any, stop: Any, out: Any) -> None:
    """``rounds`` rounds (None: until ``stop``) of: bump ``w/<agent>``, bump
    the shared key, both with update(). Reports ``(agent, rounds done)``."""
    with accord.open(url) as store:
        s = store.session(agent)
        assert start.wait(60), "the test never started the writers"
        done = 0
        while (done < rounds) if rounds is not None else not stop.is_set():
            for key in (own_key(agent), SHARED):
                s.update(key, lambda v: (v or 0) + 1, retries=100_000, max_backoff=0.05)
            done += 1
        out.put((agent, done))


class Tally:
    """What a watcher saw: every event, per key, checked as it arrives."""

    def __init__(self) -> None:
        self.versions: dict[str, list[int]] = {}
        self.events = 0
        self.superseded = 0
        self.last_revision = 0

    def add(self, event: accord.WatchEvent) -> None:
        assert event.revision > self.last_revision, (
            f"revision {event.revision} after {self.last_revision}: out of order or twice"
        )
        self.last_revision = event.revision
        seen = self.versions.setdefault(event.key, [])
        # Every version, once, in order: the next one is always last + 1.
        assert event.version == len(seen) + 1, (
            f"{event.key}: version {event.version} after {seen[-3:]}"
        )
        seen.append(event.version)
        assert event.kind == "write"
        if event.superseded:
            self.superseded += 1
        else:
            # Each update adds 1 to a counter that starts at 1: value == version.
            assert event.value == event.version, (event.key, event.version, event.value)
        self.events += 1

    def reached(self, finals: dict[str, int]) -> bool:
        return all(len(self.versions.get(k, ())) >= v for k, v in finals.items())


def follow(
    events: Iterator[accord.WatchEvent],
    tally: Tally,
    until: Callable[[], bool],
    deadline: float,
    between: Callable[[], None] = lambda: None,
) -> None:
    """Take events into ``tally`` until ``until()`` holds (checked after
    each event, and before waiting for one), calling ``between()`` after each."""
    while not until():
        assert time.monotonic() < deadline, f"watcher stalled: {tally.events} events"
        event = next(events)  # the watch's own idle timeout bounds this wait
        tally.add(event)
        between()


def collect_done(out: Any, writers: Sequence[Any], timeout: float) -> dict[str, int]:
    """The ``(agent, rounds)`` reports of every writer."""
    done: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while len(done) < len(writers):
        assert time.monotonic() < deadline, f"writers did not finish: {done}"
        try:
            agent, rounds = out.get(timeout=1)
        except queue.Empty:
            dead = [w.exitcode for w in writers if w.exitcode not in (None, 0)]
            assert not dead, f"writers died with exit codes {dead}"
            continue
        done[agent] = rounds
    return done


class Observed:
    """A real backend, unchanged, that counts the BackendUnavailable errors
    its callers see (to show that a watch rode out an outage itself)."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.unavailable = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.backend, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return attr(*args, **kwargs)
            except accord.BackendUnavailable:
                self.unavailable += 1
                raise

        return call
