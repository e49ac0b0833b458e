"""A client process for the HTTP stress tests: append to one JSON list over HTTP.

    python -m tests.http_workers URL TOKEN KEY WORKER COUNT careful|unsafe

careful: GET, append, PUT with the GET's ETag in If-Match; on 412 start over.
unsafe: GET the value, append, then GET again for a fresh ETag and PUT with
it, a client that "fixes" its 412s by refreshing the ETag instead of the
value: the baseline that loses updates. Prints {"retries": n} on stdout.
"""

from __future__ import annotations

import json
import sys

import httpx

from tests.http_helpers import JSON, append_until_done, bearer, if_match


def main() -> None:
    url, token, key, worker, count, mode = sys.argv[1:7]
    retries = 0
    with httpx.Client(base_url=url, headers=bearer(token), timeout=60) as client:
        for n in range(int(count)):
            item = f"{worker}-{n}"
            if mode == "careful":
                retries += append_until_done(client, key, item)
                continue
            while True:
                value = client.get(f"/v1/keys/{key}").json()
                fresh = client.get(f"/v1/keys/{key}").headers["etag"].strip('"')
                put = client.put(f"/v1/keys/{key}", json=[*value, item],
                                 headers={**JSON, **if_match(int(fresh))})
                if put.status_code == 200:
                    break
                retries += 1
    print(json.dumps({"retries": retries}))


if __name__ == "__main__":
    main()
