// accord over HTTP from TypeScript, with fetch only (Node 18+, Deno, Bun, browsers).
//
//   ACCORD_HTTP=http://127.0.0.1:8780 ACCORD_TOKEN=accord_... node dist/example.js
//
// It shows the four habits of a well-behaved agent: read a key and keep its ETag;
// write it back with If-Match, and on 412 read again and redo the change on top;
// give every mutating request an Idempotency-Key and repeat it unchanged after a
// network error; hold a lease for long work and write under its token.
// Each step prints one JSON line (tests/test_http_typescript.py reads them).

declare const process: { env: Record<string, string | undefined>; exitCode?: number };

const BASE = process.env.ACCORD_HTTP ?? "http://127.0.0.1:8780";
const TOKEN = process.env.ACCORD_TOKEN ?? "";
const AUTH = { Authorization: `Bearer ${TOKEN}` };

/** An accord error: RFC 9457 problem details with the error's own fields. */
interface Problem {
  type: string;
  status: number;
  detail: string;
  current?: number;
  [field: string]: unknown;
}

class AccordError extends Error {
  constructor(readonly problem: Problem) {
    super(`${problem.type}: ${problem.detail}`);
  }
}

async function fail(response: Response): Promise<never> {
  throw new AccordError((await response.json()) as Problem);
}

function versionOf(response: Response): number {
  return Number((response.headers.get("ETag") ?? '"0"').replaceAll('"', ""));
}

/** Read a JSON list; [] and version 0 when the key does not exist yet. */
async function readList(key: string): Promise<{ items: string[]; version: number }> {
  const response = await fetch(`${BASE}/v1/keys/${key}`, { headers: AUTH });
  if (response.status === 404) return { items: [], version: 0 };
  if (!response.ok) return fail(response);
  return { items: (await response.json()) as string[], version: versionOf(response) };
}

/** A request that is safe to repeat: the same Idempotency-Key every time. */
async function idempotent(url: string, init: RequestInit, attempts = 5): Promise<Response> {
  const headers = { ...AUTH, ...(init.headers as Record<string, string>),
                    "Idempotency-Key": `"${crypto.randomUUID()}"` };
  for (let attempt = 1; ; attempt++) {
    try {
      const response = await fetch(url, { ...init, headers });
      if (response.status !== 409 || !response.headers.get("Retry-After")) return response;
      // The first attempt is still in flight (or its server died): wait, repeat.
      const seconds = Number(response.headers.get("Retry-After"));
      await new Promise((done) => setTimeout(done, seconds * 1000));
    } catch (error) {
      if (attempt >= attempts) throw error; // a network error: repeat the very same request
    }
  }
}

/** Append `item` to the JSON list at `key`, however many agents append at once. */
async function append(key: string, item: string): Promise<number> {
  for (let retries = 0; ; retries++) {
    const { items, version } = await readList(key);
    const precondition: Record<string, string> =
      version === 0 ? { "If-None-Match": "*" } : { "If-Match": `"${version}"` };
    const response = await idempotent(`${BASE}/v1/keys/${key}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json", ...precondition },
      body: JSON.stringify([...items, item]),
    });
    if (response.ok) return retries;
    if (response.status !== 412) return fail(response);
    // Someone wrote it meanwhile: the 412 says who and what changed. Read, redo, retry.
    const problem = (await response.json()) as Problem;
    console.log(JSON.stringify({ step: "conflict", current: problem.current }));
  }
}

async function main(): Promise<void> {
  const me = await fetch(`${BASE}/v1/whoami`, { headers: AUTH });
  if (!me.ok) return fail(me);
  console.log(JSON.stringify({ step: "whoami", ...((await me.json()) as object) }));

  // Optimistic: read, change, write with If-Match.
  for (const item of ["first", "second"]) {
    const retries = await append("ts/log", item);
    console.log(JSON.stringify({ step: "append", item, retries }));
  }

  // A stale ETag is refused with 412 and the conflict; nothing is overwritten.
  const stale = await fetch(`${BASE}/v1/keys/ts/log`, {
    method: "PUT",
    headers: { ...AUTH, "Content-Type": "application/json", "If-Match": '"1"' },
    body: JSON.stringify(["overwrite"]),
  });
  const problem = (await stale.json()) as Problem;
  console.log(JSON.stringify({ step: "stale", status: stale.status, type: problem.type,
                               current: problem.current }));

  // A text value: its kind travels in the Content-Type.
  const note = await idempotent(`${BASE}/v1/keys/ts/note.md`, {
    method: "PUT",
    headers: { "Content-Type": "text/plain; charset=utf-8", "If-None-Match": "*" },
    body: "# written from TypeScript\n",
  });
  if (!note.ok) return fail(note);

  // Pessimistic: a lease, a write fenced by its token, a release.
  const granted = await idempotent(`${BASE}/v1/leases/ts/note.md?ttl=30&wait=5`,
                                   { method: "POST" });
  if (!granted.ok) return fail(granted);
  const lease = (await granted.json()) as { token: number };
  const leased = await fetch(`${BASE}/v1/keys/ts/note.md`, {
    method: "PUT",
    headers: { ...AUTH, "Content-Type": "text/plain; charset=utf-8",
               "Accord-Lease": String(lease.token) },
    body: "# written from TypeScript\nunder a lease\n",
  });
  if (!leased.ok) return fail(leased);
  const released = await fetch(`${BASE}/v1/leases/ts/note.md?token=${lease.token}`,
                               { method: "DELETE", headers: AUTH });
  if (!released.ok) return fail(released);
  console.log(JSON.stringify({ step: "lease", token: lease.token, version: versionOf(leased) }));

  // The history, one JSON event a line.
  const history = await fetch(`${BASE}/v1/history?key=ts/log`, { headers: AUTH });
  const events = (await history.text()).trim().split("\n").map((line) => JSON.parse(line));
  console.log(JSON.stringify({ step: "history", ops: events.map((e) => e.op) }));
}

main().catch((error: unknown) => {
  console.error(String(error));
  process.exitCode = 1;
});
