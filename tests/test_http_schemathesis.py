"""Schemathesis against the HTTP API's own OpenAPI document: every operation, with a
valid token, positive and negative cases. No response is a 5xx, every response
matches the document (status, Content-Type, headers, body schema). The number of
generated cases is printed and checked at the end (docs/benchmarks.md records it).
(One default check is left out: see the comment at the call.)
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

import accord
from accord import credentials
from accord.http import app

_DIR = Path(tempfile.mkdtemp(prefix="accord-schemathesis-"))
STORE = accord.open(f"sqlite:///{_DIR / 'state.db'}", max_value_size=64 * 1024)
# The app must exist when the module is collected; close and remove it at exit.
atexit.register(shutil.rmtree, _DIR, True)
atexit.register(STORE.close)
TOKEN = credentials.add(STORE, "fuzzer")[1]
_session = STORE.session("seed")
_session.write("docs/a.md", "hello\n", expect=0)
_session.write("data/j", {"a": [1, 2]}, expect=0)
_session.fork("docs/a.md")
APP = app(STORE)



@schemathesis.serializer("application/x-ndjson")
def _ndjson(ctx: Any, value: Any) -> bytes:
    # A history body is JSON lines; whatever was generated goes as one line of text.
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else (
        json.dumps(value).encode() + b"\n"
    )


schema = schemathesis.openapi.from_asgi("/openapi.json", APP)

CASES: dict[str, int] = {"count": 0}
EXAMPLES = 60


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_by_its_document(case: Any) -> None:
    CASES["count"] += 1
    headers = dict(case.headers or {})
    meta = getattr(case, "_meta", None)
    negative = meta is not None and meta.generation.mode == schemathesis.GenerationMode.NEGATIVE
    if not negative:
        # A negative case may have dropped or mangled the token on purpose (401 expected).
        headers["Authorization"] = f"Bearer {TOKEN}"
    # Long-polls would only make the run slow: keep them short.
    wait = (case.query or {}).get("wait")
    try:
        if not isinstance(wait, bool) and float(wait) > 0.05:
            case.query["wait"] = 0.05
    except (TypeError, ValueError):
        pass
    # Every default check but positive_data_acceptance: a key's rules (no empty, '.' or
    # '..' segment, not under .accord/, no control character) are stated in words, not
    # as a JSON Schema pattern, so a schema-valid key may still be refused with 400.
    case.call_and_validate(
        headers=headers, excluded_checks=[schemathesis.checks.positive_data_acceptance]
    )


def test_the_run_generated_enough_cases() -> None:
    operations = len(list(schema.get_all_operations()))
    print(f"schemathesis: {CASES['count']} cases over {operations} operations")
    if CASES["count"] == 0:
        pytest.skip("run with the operations' tests to count the cases")
    assert CASES["count"] >= operations * 10
