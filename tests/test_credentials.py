"""Agent credentials (accord.credentials and `accord agents`), on every backend."""

from __future__ import annotations

import hmac
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import accord
from accord import credentials
from accord.cli import cli

MANIFEST = """
[agents.author]
[agents.critic]

[[resource]]
key = "docs/draft.md"
strategy = "optimistic"
writers = ["author", "critic"]
"""


def _raw_records(store: accord.Store) -> list[bytes]:
    return [rec.key.encode() + b"\0" + rec.data for rec in store.backend.scan(".accord/")]


def test_add_then_verify_names_the_agent(store: accord.Store) -> None:
    cred, token = credentials.add(store, "agent-a")
    assert re.fullmatch(r"accord_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token)
    assert cred.agent == "agent-a" and token.startswith(f"accord_{cred.token_id}_")
    assert credentials.verify(store, token) == "agent-a"
    assert credentials.any_credentials(store)


def test_the_store_keeps_only_a_hash(store: accord.Store) -> None:
    _, token = credentials.add(store, "agent-a")
    secret = token.split("_", 2)[2]
    raw = b"\n".join(_raw_records(store))
    assert secret.encode() not in raw and token.encode() not in raw
    assert b"sha256:" in raw
    history = "\n".join(json.dumps(e.to_dict()) for e in store.history())
    assert secret not in history


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "accord_",
        "Bearer x",
        "accord_0123456789abcdef_" + "x" * 43,  # well formed, never issued
        None,
        12345,
    ],
)
def test_anything_but_a_live_token_is_refused(store: accord.Store, bad: object) -> None:
    credentials.add(store, "agent-a")
    assert credentials.verify(store, bad) is None


def test_a_forged_secret_for_a_real_token_id_is_refused(store: accord.Store) -> None:
    _, token = credentials.add(store, "agent-a")
    prefix, secret = token.rsplit("_", 1)
    forged = prefix + "_" + ("A" if secret[0] != "A" else "B") + secret[1:]
    assert credentials.verify(store, forged) is None
    assert credentials.verify(store, token + "x") is None


def test_the_secret_is_compared_in_constant_time(
    store: accord.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = credentials.add(store, "agent-a")
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(credentials.hmac, "compare_digest", spy)
    assert credentials.verify(store, token) == "agent-a"
    assert len(seen) == 1


def test_one_credential_per_agent(store: accord.Store) -> None:
    credentials.add(store, "agent-a")
    with pytest.raises(accord.PreconditionFailed) as info:
        credentials.add(store, "agent-a")
    # Each surface its own words: the function in Python, the command on the CLI.
    assert "credentials.rotate(store, 'agent-a')" in info.value.message
    assert "accord agents rotate agent-a" in info.value.render("cli")
    assert [c.agent for c in credentials.list_agents(store)] == ["agent-a"]


def test_rotate_replaces_the_token_at_once(store: accord.Store) -> None:
    first, old = credentials.add(store, "agent-a")
    cred, new = credentials.rotate(store, "agent-a")
    assert new != old and cred.token_id != first.token_id
    assert cred.created == first.created and cred.rotated is not None
    assert credentials.verify(store, old) is None
    assert credentials.verify(store, new) == "agent-a"


def test_revoke_refuses_the_token_and_allows_a_new_add(store: accord.Store) -> None:
    _, token = credentials.add(store, "agent-a")
    revoked = credentials.revoke(store, "agent-a")
    assert revoked.agent == "agent-a"
    assert credentials.verify(store, token) is None
    assert credentials.list_agents(store) == []
    assert not credentials.any_credentials(store)
    _, again = credentials.add(store, "agent-a")
    assert credentials.verify(store, again) == "agent-a"
    assert credentials.verify(store, token) is None


def test_rotate_or_revoke_without_a_credential_says_to_add(store: accord.Store) -> None:
    with pytest.raises(accord.NotFound, match=r"credentials\.add\(store, 'ghost'\)") as info:
        credentials.rotate(store, "ghost")
    assert "accord agents add ghost" in info.value.render("cli")
    with pytest.raises(accord.NotFound, match=r"credentials\.add\(store, 'ghost'\)") as info:
        credentials.revoke(store, "ghost")
    assert "accord agents add ghost" in info.value.render("cli")


def test_revocation_counts_for_every_store_object_at_once(
    open_store: Callable[..., accord.Store],
) -> None:
    # Two Store objects stand for two server processes on one store.
    server_one, server_two = open_store(), open_store()
    _, token = credentials.add(server_one, "agent-a")
    assert credentials.verify(server_two, token) == "agent-a"
    credentials.revoke(server_one, "agent-a")
    assert credentials.verify(server_two, token) is None


@pytest.mark.parametrize("name", ["a/b", "agent with spaces", "ünïcødé", "x" * 128, ".."])
def test_any_valid_agent_name_works(store: accord.Store, name: str) -> None:
    _, token = credentials.add(store, name)
    assert credentials.verify(store, token) == name
    assert [c.agent for c in credentials.list_agents(store)] == [name]
    credentials.revoke(store, name)


@pytest.mark.parametrize("name", ["", "   ", "x" * 129, "bad\nname"])
def test_invalid_agent_names_are_refused(store: accord.Store, name: str) -> None:
    with pytest.raises(accord.UsageError, match="Invalid agent name"):
        credentials.add(store, name)
    assert credentials.list_agents(store) == []


def test_a_manifest_refuses_credentials_for_undeclared_agents(
    open_store: Callable[..., accord.Store], tmp_path: Path
) -> None:
    manifest = tmp_path / "accord.toml"
    manifest.write_text(MANIFEST)
    store = open_store(manifest=str(manifest))
    with pytest.raises(accord.PolicyViolation, match="not declared"):
        credentials.add(store, "intruder")
    credentials.add(store, "author")


# --- the CLI ------------------------------------------------------------------------


def test_cli_add_prints_the_token_once_and_list_never(sqlite_url: str) -> None:
    runner = CliRunner()
    added = runner.invoke(cli, ["agents", "add", "agent-a", "--store", sqlite_url])
    assert added.exit_code == 0, added.output
    token = added.stdout.strip()
    assert re.fullmatch(r"accord_[0-9a-f]{16}_[A-Za-z0-9_-]{43}", token)
    assert "only time" in added.stderr
    listed = runner.invoke(cli, ["agents", "list", "--store", sqlite_url, "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert [r["agent"] for r in rows] == ["agent-a"]
    assert token.split("_", 2)[2] not in listed.output
    table = runner.invoke(cli, ["agents", "list", "--store", sqlite_url])
    assert "agent-a" in table.stdout and token not in table.stdout
    with accord.open(sqlite_url) as store:
        assert credentials.verify(store, token) == "agent-a"


def test_cli_rotate_and_revoke(sqlite_url: str) -> None:
    runner = CliRunner()
    old = runner.invoke(cli, ["agents", "add", "agent-a", "--store", sqlite_url]).stdout.strip()
    rotated = runner.invoke(cli, ["agents", "rotate", "agent-a", "--store", sqlite_url, "--json"])
    assert rotated.exit_code == 0, rotated.output
    new = json.loads(rotated.stdout)["token"]
    with accord.open(sqlite_url) as store:
        assert credentials.verify(store, old) is None
        assert credentials.verify(store, new) == "agent-a"
    revoked = runner.invoke(cli, ["agents", "revoke", "agent-a", "--store", sqlite_url])
    assert revoked.exit_code == 0 and "revoked" in revoked.stdout
    with accord.open(sqlite_url) as store:
        assert credentials.verify(store, new) is None


def test_cli_errors_say_what_to_do(sqlite_url: str) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["agents", "add", "agent-a", "--store", sqlite_url])
    again = runner.invoke(cli, ["agents", "add", "agent-a", "--store", sqlite_url])
    assert again.exit_code == 3 and "accord agents rotate agent-a" in again.stderr
    missing = runner.invoke(cli, ["agents", "revoke", "ghost", "--store", sqlite_url])
    assert missing.exit_code == 3 and "accord agents add ghost" in missing.stderr
