"""Author and critics: one writer owns the draft, critics submit change requests.

The design protocol's example of the queue strategy. The draft has one
writer (the author). Two critics read it and send comments as change
requests; they never write the draft. The author takes the requests oldest
first and folds each comment into the draft, or rejects it (a comment that
is already there). Every agent is a separate process on one SQLite store.

Run it::

    python examples/author_critic.py            # a fresh store in a temp dir
    python examples/author_critic.py --store sqlite:///draft.db

At the end it checks what the queue promises: no comment lost, none applied
twice, and every critic got an answer.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
from pathlib import Path
from typing import Any

import accord

DRAFT = "docs/draft.md"
INITIAL = "# Draft: the launch plan\n\n## Comments folded in\n"
COMMENTS = {
    "critic-1": [
        "State the launch date in the first line.",
        "Name an owner for the rollback plan.",
        "Cut the paragraph on history; nobody needs it.",
    ],
    "critic-2": [
        "Add the budget in a table.",
        "Name an owner for the rollback plan.",  # the same point as critic-1 made
        "Say who signs off.",
    ],
}


def author(url: str, stop: Any, ready: Any) -> None:
    """The draft's one writer: fold each comment in, oldest first."""
    with accord.open(url) as store:
        me = store.session("author")
        # Claim the writer role before the critics start (nothing is pending
        # yet, so this hands out no request). serve() keeps the role.
        next(me.requests(DRAFT, timeout=0), None)
        ready.set()

        def fold(draft: str, comment: str) -> str | accord.Reject:
            if f"- {comment}\n" in draft:
                return accord.Reject("already in the draft (another critic said it first)")
            return draft + f"- {comment}\n"

        decided = me.serve(DRAFT, fold, stop=stop)
        print(f"author: decided {decided} requests")


def critic(url: str, name: str, results: Any) -> None:
    """Read the draft, submit comments, wait for the author's answers."""
    with accord.open(url) as store:
        me = store.session(name)
        me.read(DRAFT)
        try:  # a critic may not write the draft: the store refuses it
            me.write(DRAFT, "my own version", force=True)
        except accord.NotWriter as exc:
            print(f"{name}: NotWriter, as expected: {exc.message.split('. ')[0]}.")
        requests = [
            me.submit(DRAFT, comment, idempotency_key=f"{name}/{i}")
            for i, comment in enumerate(COMMENTS[name])
        ]
        for request in requests:
            done = request.wait(timeout=60)
            how = (
                f"accepted (v{done.outcome.version})"
                if isinstance(done.outcome, accord.Doc)
                else f"rejected: {done.reason}"
            )
            print(f"{name}: {done.change!r} {how}")
            results.put((name, done.id, done.status))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default=None, help="store URL (default: a temp SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.store or f"sqlite:///{Path(tmp) / 'state.db'}"
        with accord.open(url) as store:
            store.session("author").write(DRAFT, INITIAL, force=True)
        ctx = mp.get_context("spawn")
        stop, ready, results = ctx.Event(), ctx.Event(), ctx.Queue()
        writer = ctx.Process(target=author, args=(url, stop, ready))
        writer.start()
        assert ready.wait(60), "the author did not start"
        critics = [ctx.Process(target=critic, args=(url, n, results)) for n in COMMENTS]
        for p in critics:
            p.start()
        answers = [results.get(timeout=120) for name in COMMENTS for _ in COMMENTS[name]]
        for p in critics:
            p.join(60)
        stop.set()
        writer.join(60)

        with accord.open(url) as store:
            draft = store.session("reader").read(DRAFT)
        print(f"\n{DRAFT} v{draft.version}:\n{draft.value}")
        distinct = {c for comments in COMMENTS.values() for c in comments}
        folded = [line[2:] for line in draft.value.splitlines() if line.startswith("- ")]
        accepted = sum(1 for _, _, status in answers if status == "accepted")
        assert sorted(folded) == sorted(distinct), "a comment was lost or applied twice"
        assert accepted == len(folded) == len(distinct)
        assert len(answers) == sum(len(c) for c in COMMENTS.values())
        print(
            f"OK: {len(answers)} requests, {accepted} folded in once each, "
            f"{len(answers) - accepted} rejected as duplicates, none lost."
        )


if __name__ == "__main__":
    main()
