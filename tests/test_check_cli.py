"""``accord check``, ``accord log --timeline`` and ``accord export --shiviz``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import accord
from accord.cli import cli

HERE = Path(__file__).parent / "histories"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def lost_update_store(url: str) -> None:
    with accord.open(url, record_reads=True) as store:
        a, b = store.session("agent-a"), store.session("agent-b")
        store.session("setup").write("doc", "v0")
        x, y = a.read("doc"), b.read("doc")
        a.write("doc", x.value + " A", force=True)
        b.write("doc", y.value + " B", force=True)


def test_anomalies_exit_5_with_explanation() -> None:
    code, out, _ = invoke("check", str(HERE / "lost_update.jsonl"))
    assert code == 5
    assert "lost-update on docs/plan.md" in out
    assert "erased W1's change without having seen it" in out
    assert "revisions 4, 5" in out


def test_clean_exit_0() -> None:
    code, out, _ = invoke("check", str(HERE / "clean_retry.jsonl"))
    assert code == 0
    assert out.startswith("clean: no anomalies in 4 events")


def test_unknown_exits_5_and_says_unknown() -> None:
    code, out, _ = invoke("check", str(HERE / "foreign_unknown.jsonl"))
    assert code == 5
    assert out.startswith("unknown:")
    assert "lost-update (unknown)" in out


def test_json_for_programs() -> None:
    code, out, _ = invoke("check", "--json", str(HERE / "foreign_lost_update.jsonl"))
    assert code == 5
    data = json.loads(out)
    assert data["verdict"] == "anomalies" and data["format"] == "foreign"
    assert data["counts"] == {"lost-update": 1}
    (anomaly,) = data["anomalies"]
    assert anomaly["name"] == "lost-update" and anomaly["agents"] == ["agent-b", "agent-a"]
    assert [e["line"] for e in anomaly["events"]] == [4, 5]


def test_malformed_line_is_a_usage_error_without_traceback() -> None:
    code, out, err = invoke("check", str(HERE / "malformed.jsonl"))
    assert code == 1
    assert "line 2: not valid JSON" in err and "Traceback" not in err + out
    code, out, _ = invoke("check", "--json", str(HERE / "malformed.jsonl"))
    assert code == 1 and json.loads(out)["error"] == "HistoryFormatError"


def test_lenient_skips_and_reports() -> None:
    code, out, _ = invoke("check", "--lenient", str(HERE / "malformed.jsonl"))
    assert code == 0
    assert "1 malformed line(s) skipped" in out and "line 2:" in out


@pytest.mark.parametrize("name", ["empty.jsonl", "missing.jsonl"])
def test_empty_or_missing_file(name: str) -> None:
    code, _, err = invoke("check", str(HERE / name))
    assert code == 1
    assert "no events" in err or "No history file" in err


@pytest.mark.parametrize("suffix", [".svg", ".png", ".html"])
def test_timeline_formats(tmp_path: Path, suffix: str) -> None:
    out_path = tmp_path / f"timeline{suffix}"
    code, out, _ = invoke("check", str(HERE / "lost_update.jsonl"), "--timeline", str(out_path))
    assert code == 5
    assert f"timeline written to {out_path}" in out
    data = out_path.read_bytes()
    if suffix == ".png":
        assert data.startswith(b"\x89PNG")
    elif suffix == ".svg":
        text = data.decode()
        assert "<svg" in text and "lost update" in text and "agent-a" in text
    else:
        text = data.decode()
        assert text.startswith("<!DOCTYPE html>") and "<svg" in text
        assert "erased W1&#x27;s change" in text


def test_timeline_of_a_foreign_history(tmp_path: Path) -> None:
    out_path = tmp_path / "foreign.svg"
    code, _, _ = invoke("check", str(HERE / "foreign_lost_update.jsonl"), "--timeline",
                        str(out_path))
    assert code == 5
    assert "lost update" in out_path.read_text()


def test_timeline_bad_suffix(tmp_path: Path) -> None:
    code, _, err = invoke("check", str(HERE / "lost_update.jsonl"), "--timeline",
                          str(tmp_path / "t.jpg"))
    assert code == 1 and ".svg, .png or .html" in err


def test_check_the_store_itself(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    lost_update_store(url)
    code, out, _ = invoke("check", "--store", url)
    assert code == 5 and "lost-update on doc" in out


def test_log_timeline_and_shiviz(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    lost_update_store(url)
    picture = tmp_path / "log.svg"
    code, out, _ = invoke("log", "--store", url, "--timeline", str(picture))
    assert code == 0 and "timeline of 5 events" in out and "lost-update" in out
    assert "<svg" in picture.read_text()

    shiviz = tmp_path / "log.shiviz"
    code, out, _ = invoke("export", "--store", url, "--shiviz", str(shiviz))
    assert code == 0 and "exported 5 events" in out
    lines = shiviz.read_text().splitlines()
    regex = lines[0]
    assert "(?<event>" in regex and "(?<host>" in regex and "(?<clock>" in regex
    assert lines[1] == ""
    pattern = re.compile(r"(?P<event>.*)\n(?P<host>\S*) (?P<clock>{.*})")
    body = "\n".join(lines[2:])
    matches = list(pattern.finditer(body))
    assert len(matches) == 5
    counts: dict[str, int] = {}
    for m in matches:
        clock = json.loads(m["clock"])
        host = m["host"]
        counts[host] = counts.get(host, 0) + 1
        # ShiViz needs each host's own entry to count its events, 1, 2, 3...
        assert clock[host] == counts[host]
    assert "write doc v3 based on v1" in body


def test_check_is_documented() -> None:
    code, out, _ = invoke("check", "--help")
    assert code == 0
    for option in ("--json", "--lenient", "--timeline"):
        assert option in out


def test_workers_option() -> None:
    code, out, _ = invoke("check", "--workers", "2", str(HERE / "lost_update.jsonl"))
    assert code == 5 and "lost-update on docs/plan.md" in out
    code, _, _ = invoke("check", "--workers", "0", str(HERE / "lost_update.jsonl"))
    assert code != 0


def _lease_history(tmp_path: Path, ttl: object) -> Path:
    """A lease granted with ``ttl`` at 19:00:01, and a write under it 5 s later."""
    events = [
        {"rev": 1, "time": "2026-11-28T19:00:00.000000Z", "agent": "setup", "op": "write",
         "key": "doc", "version": 1, "prev": 0, "based_on": 0, "check": "version"},
        {"rev": 2, "time": "2026-11-28T19:00:01.000000Z", "agent": "a", "op": "lease_acquire",
         "key": "doc", "lease": 1, "ttl": ttl},
        {"rev": 3, "time": "2026-11-28T19:00:06.000000Z", "agent": "a", "op": "write",
         "key": "doc", "version": 2, "prev": 1, "based_on": 1, "check": "lease", "lease": 1},
    ]
    path = tmp_path / "lease.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


@pytest.mark.parametrize("ttl", ["x", None])
def test_an_unreadable_lease_deadline_is_never_clean(tmp_path: Path, ttl: object) -> None:
    path = _lease_history(tmp_path, ttl)
    code, _, err = invoke("check", str(path))
    assert code == 1
    assert "line 2" in err and "'ttl'" in err and "--lenient" in err
    code, out, _ = invoke("check", str(path), "--lenient")
    assert code == 5 and out.startswith("unknown:")
    assert "fenced-write-accepted (unknown)" in out
    code, out, _ = invoke("check", str(_lease_history(tmp_path, 1)))
    assert code == 5 and "fenced-write-accepted on doc" in out
