"""Write docs/openapi.json: the OpenAPI document `accord serve` serves at /openapi.json.

    python tools/gen_openapi.py           # regenerate
    python tools/gen_openapi.py --check   # exit 1 if the committed file is stale

tests/test_http.py fails when the two drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import accord
from accord.http import app

TARGET = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def document() -> str:
    with accord.open("memory://") as store:
        api = app(store)
        schema = api.openapi()  # type: ignore[attr-defined]
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def main() -> int:
    text = document()
    if "--check" in sys.argv[1:]:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python tools/gen_openapi.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
