"""The manifest (accord.toml) and its enforcement: every rule, every backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import accord
from accord.policy import load_manifest, load_policy, parse_manifest, patterns_overlap
from accord.policy.manifest import compile_pattern

MANIFESTS = Path(__file__).parent / "manifests"
ENFORCE = MANIFESTS / "enforce.toml"
OpenStore = Callable[..., accord.Store]


# --- loading and bad input ---------------------------------------------------------


def test_example_manifest_loads() -> None:
    root = Path(__file__).parent.parent
    manifest = load_manifest(root / "examples" / "research-crew" / "accord.toml")
    assert list(manifest.agents) == [
        "planner", "researcher-1", "researcher-2", "researcher-3", "writer", "critic",
    ]
    plan = manifest.resource_for("plan.md")
    assert plan is not None and plan.strategy == "owner" and plan.writer == "planner"
    assert plan.readers.describe() == "everyone" and "critic" in plan.readers
    # A relative SQLite path is relative to the manifest, not the working directory.
    assert manifest.store_url == (
        "sqlite:///" + (root / "examples" / "research-crew" / ".accord" / "state.db").as_posix()
    )


def test_toml_error_names_line_and_column() -> None:
    with pytest.raises(accord.ManifestError) as info:
        load_manifest(MANIFESTS / "bad_syntax.toml")
    exc = info.value
    assert (exc.line, exc.column) == (5, 12)
    assert "at line 5, column 12" in exc.message
    assert "strategy = optimistic" in exc.message and "nothing was started" in exc.message
    assert exc.exit_code == 1


def test_unknown_strategy_suggests_the_right_one() -> None:
    with pytest.raises(accord.ManifestError) as info:
        load_manifest(MANIFESTS / "unknown_strategy.toml")
    msg = info.value.message
    assert "line 4" in msg and "unknown strategy 'optimistc'" in msg
    assert "did you mean 'optimistic'" in msg and "read_only, owner, optimistic" in msg


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("owner_without_writer.toml", "an owner resource needs its writer: add writer"),
        ("queue_without_writer.toml", "a queue resource needs its writer: add writer"),
    ],
)
def test_owner_or_queue_without_writer(name: str, words: str) -> None:
    with pytest.raises(accord.ManifestError, match=words):
        load_manifest(MANIFESTS / name)


def test_undeclared_agents_are_listed_together() -> None:
    with pytest.raises(accord.ManifestError) as info:
        load_manifest(MANIFESTS / "undeclared_agent.toml")
    msg = info.value.message
    assert "2 problems" in msg
    assert "writers names agent 'writr', which is not declared (did you mean 'writer'?)" in msg
    assert "readers names agent 'critic'" in msg and "[agents.critic]" in msg


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[resource]]\nkey = "a"\nwriterz = ["x"]\n', "unknown field 'writerz' (did you mean"),
        ('[[resource]]\nstrategy = "owner"\n', "every resource needs key"),
        ('[[resources]]\nkey = "a"\n', "write [[resource]]"),
        ('[[resource]]\nkey = "a//b"\n', "empty segment"),
        ('[[resource]]\nkey = "notes/[ab"\n', "never closed"),
        ('[[resource]]\nkey = "a"\nwriter = "x"\nwriters = ["y"]\n', "not both"),
        ('[[resource]]\nkey = "a"\nconflicts = "sometimes"\n', 'use "low" or "medium" or "high"'),
        ('[[resource]]\nkey = "a"\nbuilds_on = "yes"\n', "use true or false"),
        ('[[resource]]\nkey = "a"\nstrategy = "owner"\nwriters = ["x", "y"]\n',
         "exactly one writer"),
        ('[[resource]]\nkey = "a"\nstrategy = "read_only"\nwriters = ["x"]\n',
         "read_only resource has no writers"),
        ('[[resource]]\nkey = "a"\nstrategy = "optimistic"\n', "needs writers"),
        ('[[resource]]\nkey = "a"\nstrategy = "optimistic"\nwriters = ["x"]\n'
         'submitters = ["y"]\n', 'Use strategy = "queue"'),
        ('[[resource]]\nkey = "a"\n[[resource]]\nkey = "a"\n', "declared twice"),
        ('[store]\nurl = "nowhere"\n', "not a store URL"),
        ('[agents]\nx = 1\n', "must be a table"),
    ],
)
def test_bad_manifests(text: str, words: str) -> None:
    with pytest.raises(accord.ManifestError, match=_escape(words)):
        parse_manifest(text, path="accord.toml")


def _escape(words: str) -> str:
    import re

    return re.escape(words)


def test_missing_manifest_says_how_to_start() -> None:
    with pytest.raises(accord.ManifestError, match="--from-history"):
        load_manifest(MANIFESTS / "nope.toml")


def test_bad_manifest_opens_nothing(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    with pytest.raises(accord.ManifestError):
        accord.open(f"sqlite:///{db}", manifest=MANIFESTS / "unknown_strategy.toml")
    assert not db.exists()


def test_agents_as_a_list_and_star_without_agents() -> None:
    m = parse_manifest('agents = ["a", "b"]\n[[resource]]\nkey = "k"\nwriters = ["*"]\n')
    res = m.resource_for("k")
    assert res is not None and res.writers.names == ("a", "b")
    m = parse_manifest('[[resource]]\nkey = "k"\nwriters = ["*"]\n')
    res = m.resource_for("k")
    assert res is not None and res.writers.anyone and "whoever" in res.writers


# --- patterns and precedence --------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("notes/*", "notes/a.md", True),
        ("notes/*", "notes/a/b.md", False),
        ("notes/**", "notes/a/b.md", True),
        ("notes/?.md", "notes/a.md", True),
        ("notes/?.md", "notes/ab.md", False),
        ("notes/[ab].md", "notes/b.md", True),
        ("notes/[!ab].md", "notes/b.md", False),
        ("notes/[!ab].md", "notes/c.md", True),
        ("notes/[a-c]*", "notes/cat", True),
        ("*", "a/b", False),
        ("*.md", "plan.md", True),
    ],
)
def test_pattern_semantics(pattern: str, key: str, matches: bool) -> None:
    assert (compile_pattern(pattern).fullmatch(key) is not None) is matches


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("notes/*", "*/draft.md", True),
        ("notes/*", "notes/*/deep", False),
        ("notes/**", "notes/*/deep", True),
        ("notes/[ab]*", "notes/[!a]x", True),
        ("notes/[a]*", "notes/[!a]*", False),
        ("a?c", "*b*", True),
        ("*.md", "*.json", False),
        ("x/*.md", "*/y.md", True),
    ],
)
def test_pattern_overlap(a: str, b: str, overlap: bool) -> None:
    assert patterns_overlap(a, b) is overlap
    assert patterns_overlap(b, a) is overlap


def test_exact_key_beats_pattern_and_first_pattern_wins() -> None:
    m = load_manifest(MANIFESTS / "overlap.toml")
    exact = m.resource_for("notes/draft.md")
    assert exact is not None and exact.strategy == "owner"
    first = m.resource_for("notes/x.md")
    assert first is not None and first.key == "notes/*"
    other = m.resource_for("docs/draft.md")
    assert other is not None and other.key == "*/draft.md"
    assert m.resource_for("elsewhere") is None


# --- enforcement, every backend -------------------------------------------------------


def test_policy_is_installed(open_store: OpenStore) -> None:
    store = open_store(manifest=ENFORCE)
    assert store.policy is not None
    assert store.policy.writer_for("draft.md") == "author"
    assert store.policy.writer_for("plan.md") == "owner"
    assert store.policy.writer_for("notes/a.md") is None
    assert store.policy.writer_for("unlisted") is None


def test_unknown_agent_is_refused(open_store: OpenStore) -> None:
    store = open_store(manifest=ENFORCE)
    with pytest.raises(accord.PolicyViolation) as info:
        store.session("mallory")
    assert "not declared" in info.value.message and "a, b, owner, author, reader" in (
        info.value.message
    )


def test_reads_are_never_refused(open_store: OpenStore) -> None:
    admin = open_store()
    admin.session("setup").write("config/model.json", {"model": "m"})
    store = open_store(manifest=ENFORCE)
    for agent in ("a", "reader", "owner"):
        assert store.session(agent).read("config/model.json").value == {"model": "m"}


def test_read_only_refuses_every_write(open_store: OpenStore) -> None:
    admin = open_store()
    doc = admin.session("setup").write("config/model.json", {"model": "m"})
    store = open_store(manifest=ENFORCE)
    a = store.session("a")
    for attempt in (
        lambda: a.write("config/model.json", {}, expect=doc.version),
        lambda: a.write("config/new.json", {}),
        lambda: a.write("config/model.json", {}, force=True),
        lambda: a.delete("config/model.json", expect=doc.version),
    ):
        with pytest.raises(accord.PolicyViolation, match="read_only") as info:
            attempt()
        assert "agents only read it" in info.value.message
    assert a.read("config/model.json").version == doc.version
    assert all(e.key != "config/new.json" for e in store.history())


def test_owner_writes_blind_others_are_refused(open_store: OpenStore) -> None:
    store = open_store(manifest=ENFORCE)
    owner = store.session("owner")
    owner.write("plan.md", "v1")
    doc = owner.write("plan.md", "v2")  # no expect: nobody else can write it
    assert doc.version == 2
    with pytest.raises(accord.NotWriter) as info:
        store.session("a").write("plan.md", "mine", expect=2)
    assert "owned by owner" in info.value.message and "Ask owner" in info.value.message
    assert info.value.writer == "owner"
    with pytest.raises(accord.NotWriter):
        store.session("a").delete("plan.md", force=True)
    assert store.session("reader").read("plan.md").value == "v2"


def test_queue_key_refuses_non_writers_with_not_writer(open_store: OpenStore) -> None:
    store = open_store(manifest=ENFORCE)
    author = store.session("author")
    author.write("draft.md", "draft v1")
    author.write("draft.md", "draft v2")  # the single writer needs no expect
    for agent in ("a", "reader"):
        with pytest.raises(accord.NotWriter) as info:
            store.session(agent).write("draft.md", "mine", expect=2)
        assert "submit" in info.value.message and info.value.writer == "author"
    with pytest.raises(accord.NotWriter):
        store.session("a").delete("draft.md", force=True)
    assert store.session("a").read("draft.md").value == "draft v2"


def test_optimistic_refuses_blind_writes(open_store: OpenStore) -> None:
    store = open_store(manifest=ENFORCE)
    a, b = store.session("a"), store.session("b")
    with pytest.raises(accord.PolicyViolation, match="expect=0 to create"):
        a.write("notes/a.md", "x")  # no expect
    doc = a.write("notes/a.md", "x", expect=0)
    with pytest.raises(accord.PolicyViolation, match="force=True"):
        b.write("notes/a.md", "y", force=True)
    with pytest.raises(accord.PolicyViolation, match="no expect"):
        b.write("notes/a.md", "y")
    with pytest.raises(accord.Conflict):
        b.write("notes/a.md", "y", expect=0)
    doc = b.write("notes/a.md", "y", expect=doc.version)
    doc = a.update("notes/a.md", lambda old: old + "z")
    assert doc.value == "yz"
    with pytest.raises(accord.PolicyViolation):
        a.delete("notes/a.md", force=True)
    assert a.delete("notes/a.md", expect=doc.version) == doc.version + 1


def test_non_writer_is_refused_with_the_writers_named(open_store: OpenStore) -> None:
    store = open_store(manifest=ENFORCE)
    with pytest.raises(accord.PolicyViolation) as info:
        store.session("reader").write("notes/a.md", "x", expect=0)
    msg = info.value.message
    assert "resource 'notes/*'" in msg and "writers: a, b" in msg and "add reader" in msg


def test_lease_resource_refuses_unleased_writes(open_store: OpenStore) -> None:
    # notes/special.md is an exact key: it beats the optimistic notes/* pattern.
    store = open_store(manifest=ENFORCE)
    a = store.session("a")
    for attempt in (
        lambda: a.write("notes/special.md", "x", expect=0),
        lambda: a.write("notes/special.md", "x", force=True),
        lambda: a.write("notes/special.md", "x"),
    ):
        with pytest.raises(accord.PolicyViolation, match="lease=lease"):
            attempt()
    with pytest.raises(accord.PolicyViolation, match="writers: a, b"):
        store.session("reader").write("notes/special.md", "x", lease=1)


def test_lease_resource_accepts_leased_writes(open_store: OpenStore) -> None:
    pytest.importorskip("accord.strategies.lease", reason="lease strategy not built yet")
    store = open_store(manifest=ENFORCE)
    a = store.session("a")
    with a.lease("notes/special.md", ttl=30, wait=5) as lease:
        doc = a.write("notes/special.md", "x", lease=lease)
    assert doc.version == 1


def test_branch_resource_refuses_direct_writes(open_store: OpenStore) -> None:
    """Its writers create the key (the base to fork from); nothing else writes it
    directly. (issue 11, item 3: the create was refused too, so nobody could.)"""
    store = open_store(manifest=ENFORCE)
    a = store.session("a")
    with pytest.raises(accord.PolicyViolation, match=r"fork it") as info:
        a.write("findings/a.md", "x", force=True)
    assert "store.merge" in info.value.message and "expect=0" in info.value.message
    assert a.write("findings/a.md", "base", expect=0).version == 1
    assert a.write("findings/b.md", "base").version == 1  # no guard: create only
    for kwargs in ({"expect": 1}, {"force": True}, {"expect": 0}, {}):
        with pytest.raises(accord.PolicyViolation, match=r"fork it"):
            a.write("findings/a.md", "x", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(accord.PolicyViolation, match=r"fork it"):
        a.delete("findings/a.md", expect=1)
    with pytest.raises(accord.PolicyViolation, match="may not write"):
        store.session("reader").write("findings/c.md", "x", expect=0)
    assert store.session("reader").read("findings/a.md").value == "base"


def test_many_writers_without_strategy_only_checks_writers(open_store: OpenStore) -> None:
    store = open_store(manifest=ENFORCE)
    a = store.session("a")
    a.write("shared/x", "1")
    a.write("shared/x", "2", force=True)  # no strategy declared: the store's defaults apply
    with pytest.raises(accord.PreconditionRequired):
        store.session("b").write("shared/x", "3")
    with pytest.raises(accord.PolicyViolation, match="strategy not declared"):
        store.session("reader").write("shared/x", "3", force=True)


def test_uncovered_keys_follow_store_defaults(open_store: OpenStore) -> None:
    store = open_store(manifest=ENFORCE)
    r = store.session("reader")
    r.write("scratch/reader.txt", "mine")
    with pytest.raises(accord.PreconditionRequired):
        r.write("scratch/reader.txt", "again")


def test_refused_operation_leaves_no_trace(open_store: OpenStore) -> None:
    store = open_store(manifest=ENFORCE)
    before = store.revision()
    with pytest.raises(accord.PolicyViolation):
        store.session("reader").write("notes/a.md", "x", expect=0)
    assert store.revision() == before


def test_queue_submit_rules(open_store: OpenStore) -> None:
    from accord.policy.enforce import Policy
    from accord.session import Operation

    store = open_store(manifest=ENFORCE)
    policy = store.policy
    assert isinstance(policy, Policy)

    def op(agent: str, name: str, key: str) -> Operation:
        return Operation(store.session(agent), name, key)

    policy.check(op("a", "submit", "draft.md"))
    policy.check(op("author", "accept", "draft.md"))
    with pytest.raises(accord.PolicyViolation, match="lets a, b submit"):
        policy.check(op("reader", "submit", "draft.md"))
    with pytest.raises(accord.NotWriter, match="author is"):
        policy.check(op("a", "accept", "draft.md"))
    with pytest.raises(accord.PolicyViolation, match="no queue writer"):
        policy.check(op("a", "submit", "notes/a.md"))
    policy.check(op("a", "fork", "findings/a.md"))
    with pytest.raises(accord.PolicyViolation, match="may not fork"):
        policy.check(op("reader", "fork", "findings/a.md"))
    with pytest.raises(accord.PolicyViolation, match="may not merge into"):
        policy.check(op("reader", "merge", "findings/a.md"))


def test_manifest_store_url_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "accord.toml"
    manifest.write_text(
        '[store]\nurl = "sqlite:///state/crew.db"\n[agents.a]\n'
        '[[resource]]\nkey = "k"\nstrategy = "optimistic"\nwriters = ["a"]\n'
    )
    monkeypatch.chdir(tmp_path.parent)
    monkeypatch.setenv("ACCORD_MANIFEST", str(manifest))
    monkeypatch.delenv("ACCORD_URL", raising=False)
    with accord.open() as store:
        assert store.url == f"sqlite:///{(tmp_path / 'state' / 'crew.db').as_posix()}"
        with pytest.raises(accord.PolicyViolation):
            store.session("b")
        with pytest.raises(accord.PolicyViolation):
            store.session("a").write("k", "x")
    assert (tmp_path / "state" / "crew.db").exists()


def test_load_policy_rejects_non_paths() -> None:
    with pytest.raises(accord.UsageError, match=r"path of an accord\.toml"):
        load_policy(42)  # type: ignore[arg-type]


def test_queue_under_the_manifest(open_store: OpenStore) -> None:
    pytest.importorskip("accord.strategies.queue", reason="queue strategy not built yet")
    store = open_store(manifest=ENFORCE)
    author, a = store.session("author"), store.session("a")
    author.write("draft.md", "draft\n")
    with pytest.raises(accord.PolicyViolation, match="lets a, b submit"):
        store.session("reader").submit("draft.md", "more")
    with pytest.raises(accord.NotWriter):
        a.requests("draft.md", timeout=0)
    req = a.submit("draft.md", "+ a's line\n")
    served = 0
    for pending in author.requests("draft.md", timeout=0):
        author.accept(pending, pending.base.value + pending.change)
        served += 1
    assert served == 1
    assert req.wait(timeout=10).accepted
    assert a.read("draft.md").value == "draft\n+ a's line\n"


def test_cli_enforces_accord_manifest(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from accord.cli import cli

    url = f"sqlite:///{tmp_path / 'state.db'}"
    env = {"ACCORD_MANIFEST": str(ENFORCE), "ACCORD_URL": url}
    runner = CliRunner()
    ok = runner.invoke(cli, ["write", "notes/a.md", "--expect", "0", "--agent", "a"],
                       input="x", env=env)
    assert ok.exit_code == 0, ok.output
    refused = runner.invoke(cli, ["write", "notes/a.md", "--force", "--agent", "a"],
                            input="y", env=env)
    assert refused.exit_code == 3 and "PolicyViolation" in refused.output
    stranger = runner.invoke(cli, ["read", "notes/a.md", "--agent", "mallory"], env=env)
    assert stranger.exit_code == 3 and "not declared" in stranger.output


def test_cli_bad_manifest_starts_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from accord.cli import cli

    db = tmp_path / "state.db"
    env = {"ACCORD_MANIFEST": str(MANIFESTS / "bad_syntax.toml"), "ACCORD_URL": f"sqlite:///{db}"}
    result = CliRunner().invoke(cli, ["write", "k", "--agent", "a"], input="x", env=env)
    assert result.exit_code == 1 and "line 5, column 12" in result.output
    assert not db.exists()


def test_branch_under_the_manifest(open_store: OpenStore) -> None:
    pytest.importorskip("accord.strategies.branch", reason="branch strategy not built yet")
    admin = open_store()
    admin.session("setup").write("findings/all.json", {"title": "Findings"})
    store = open_store(manifest=ENFORCE)
    a, b = store.session("a"), store.session("b")
    with pytest.raises(accord.PolicyViolation, match="may not fork"):
        store.session("reader").fork("findings/all.json")
    ba, bb = a.fork("findings/all.json"), b.fork("findings/all.json")
    ba.write({"title": "Findings", "a": "a found"})
    bb.write({"title": "Findings", "b": "b found"})
    with pytest.raises(accord.PolicyViolation, match="may not merge into"):
        store.merge("findings/all.json", [ba, bb], agent="reader").commit()
    doc = store.merge("findings/all.json", [ba, bb], agent="a").commit()
    assert doc.value == {"title": "Findings", "a": "a found", "b": "b found"}


def test_pattern_overlap_agrees_with_brute_force() -> None:
    """patterns_overlap is exact: it agrees with trying every short key."""
    import itertools

    from hypothesis import given, settings
    from hypothesis import strategies as st

    alphabet = "ab/c"
    # A shortest common key needs at most one character per non-star token
    # of either pattern: 3 + 3 here.
    keys = ["".join(p) for n in range(7) for p in itertools.product(alphabet, repeat=n)]
    token = st.sampled_from(["a", "b", "/", "*", "**", "?", "[ab]", "[!a]"])
    pattern = st.lists(token, min_size=1, max_size=3).map("".join)

    @settings(max_examples=150, deadline=None)
    @given(pattern, pattern)
    def check(a: str, b: str) -> None:
        ra, rb = compile_pattern(a), compile_pattern(b)
        brute = any(ra.fullmatch(k) and rb.fullmatch(k) for k in keys)
        assert patterns_overlap(a, b) is brute, (a, b)

    check()


def test_the_research_crew_example_runs_its_branch_resource_end_to_end(
    open_store: OpenStore,
) -> None:
    """issue 11, item 3: with examples/research-crew/accord.toml nobody could
    create notes/findings.md (PolicyViolation), and fork said NotFound."""
    manifest = Path(__file__).parent.parent / "examples" / "research-crew" / "accord.toml"
    store = open_store(manifest=manifest)
    key = "notes/findings.md"
    r1, r2, r3 = (store.session(f"researcher-{i}") for i in (1, 2, 3))
    writer, critic = store.session("writer"), store.session("critic")
    with pytest.raises(accord.NotFound, match=r"expect=0"):
        r2.fork(key)
    with pytest.raises(accord.PolicyViolation, match="may not write"):
        critic.write(key, "I decide the findings\n", expect=0)
    base = "# Findings\n\n## Topic 1\n\n## Topic 2\n\n## Topic 3\n"
    assert r1.write(key, base, expect=0).version == 1  # a writer creates the base
    with pytest.raises(accord.PolicyViolation, match="It exists already"):
        r3.write(key, "another base\n", expect=0)
    with pytest.raises(accord.PolicyViolation, match="fork it"):
        r1.write(key, base + "direct\n", expect=1)
    b1, b2, b3 = r1.fork(key), r2.fork(key), r3.fork(key)
    b1.write(base.replace("## Topic 1\n", "## Topic 1\nsource A says x\n"))
    b2.write(base.replace("## Topic 2\n", "## Topic 2\nsource B says y\n"))
    with pytest.raises(accord.NotOwner):
        r2.branch(key, b1.id).write("researcher-2 overwrites researcher-1\n")
    b3.discard()
    with pytest.raises(accord.PolicyViolation, match="may not fork"):
        writer.fork(key)
    with pytest.raises(accord.PolicyViolation, match="may not merge into"):
        store.merge(key, [b1, b2], agent="writer").commit()
    merge = store.merge(key, [b1, b2], agent="researcher-1")
    assert merge.clean
    doc = merge.commit()
    assert doc.version == 2 and doc.author == "researcher-1"
    expected = (
        "# Findings\n\n## Topic 1\nsource A says x\n\n## Topic 2\nsource B says y\n\n"
        "## Topic 3\n"
    )
    assert writer.read(key).value == expected and critic.read(key).value == expected
    assert store.branches(key) == []
