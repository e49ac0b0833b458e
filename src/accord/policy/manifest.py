"""The manifest, ``accord.toml``: agents, resources, strategies, hints.

A manifest lists the resources that more than one agent reads or writes,
who reads and writes each, and the strategy that keeps them safe::

    [store]
    url = "sqlite:///.accord/state.db"   # relative paths: relative to this file

    [agents.author]
    [agents.critic]

    [[resource]]
    key = "docs/draft.md"                # or a glob pattern: "notes/*"
    strategy = "queue"                   # read_only | owner | optimistic | lease | queue | branch
    writer = "author"                    # or writers = ["a", "b"]
    readers = ["critic"]
    submitters = ["critic"]
    # hints for the plan (all optional):
    builds_on = true                     # agents build on each other's work
    conflicts = "low"                    # expected conflict rate: low | medium | high
    latency = "tolerant"                 # can writers wait? tolerant | sensitive
    mergeable = false                    # can concurrent versions be merged?
    reasoning = "short"                  # time between read and write: short | long

Patterns: ``*`` matches any characters except ``/``, ``**`` any characters
including ``/``, ``?`` one character except ``/``, ``[abc]``/``[!abc]``/
``[a-z]`` one character of (or not of) a set, never ``/``. Precedence: a
resource whose key is exactly the key beats every pattern; among patterns the
first one in the file wins. Overlapping patterns with different strategies
are reported by ``accord plan --check``. Matching and the overlap test live
in :mod:`accord.policy.patterns`.

Everything is validated when the manifest is loaded: a malformed file, an
unknown field or strategy, an owner or queue resource without its writer,
an agent named in a resource but not declared under ``[agents]``: each is a
:class:`ManifestError` (CLI exit 1) naming the line and what to do.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import ManifestError
from .patterns import CONTROL_CHARACTERS, compile_pattern, is_pattern, pattern_problem

STRATEGIES = ("read_only", "owner", "optimistic", "lease", "queue", "branch")
"""Every strategy a resource may declare, simplest first."""

HINTS: dict[str, tuple[Any, ...]] = {
    "builds_on": (True, False),
    "conflicts": ("low", "medium", "high"),
    "latency": ("tolerant", "sensitive"),
    "mergeable": (True, False),
    "reasoning": ("short", "long"),
}
"""Optional hints of a resource and the values each accepts."""

_RESOURCE_FIELDS = (
    "key",
    "strategy",
    "writer",
    "writers",
    "readers",
    "submitters",
    "description",
    *HINTS,
)
_AGENT_FIELDS = ("description", "role")
_TOP_FIELDS = ("store", "agents", "resource")
_STORE_FIELDS = ("url",)


@dataclass(frozen=True)
class Who:
    """A set of agents named in a resource: ``names``, or ``anyone`` ("*").

    ``"*"`` means every declared agent (``star=True``, ``names`` all of
    them); when the manifest declares no agents it means any agent at all
    (``anyone=True``).
    """

    names: tuple[str, ...] = ()
    anyone: bool = False
    star: bool = False

    def __contains__(self, agent: object) -> bool:
        return self.anyone or agent in self.names

    def __bool__(self) -> bool:
        return self.anyone or bool(self.names)

    def count(self) -> float:
        """How many agents: ``inf`` for anyone."""
        return float("inf") if self.anyone else float(len(self.names))

    def describe(self) -> str:
        """For people: ``a, b`` or ``anyone`` or ``-``."""
        if self.anyone:
            return "anyone"
        if self.star:
            return "everyone"
        return ", ".join(self.names) if self.names else "-"

    def to_toml(self) -> list[str]:
        """The names as a manifest lists them (``["*"]`` for everyone)."""
        return ["*"] if self.anyone or self.star else list(self.names)


@dataclass(frozen=True)
class Resource:
    """One ``[[resource]]`` of the manifest.

    ``key`` is an exact key or a glob pattern (``is_pattern``). ``strategy``
    is None when the manifest declares none (the plan then recommends one).
    ``writers`` holds the owner or queue writer first when there is one.
    Hints are None when not stated. ``line`` is the line of its
    ``[[resource]]`` header (0 when built in code).
    """

    key: str
    strategy: str | None = None
    writers: Who = field(default_factory=Who)
    readers: Who = field(default_factory=Who)
    submitters: Who = field(default_factory=Who)
    builds_on: bool | None = None
    conflicts: str | None = None
    latency: str | None = None
    mergeable: bool | None = None
    reasoning: str | None = None
    description: str | None = None
    line: int = 0

    @property
    def is_pattern(self) -> bool:
        """True when ``key`` is a glob pattern, not one exact key."""
        return is_pattern(self.key)

    @property
    def writer(self) -> str | None:
        """The one named writer (owner or queue writer), else None."""
        if self.writers.anyone or len(self.writers.names) != 1:
            return None
        return self.writers.names[0]

    def matches(self, key: str) -> bool:
        """Whether ``key`` is this resource (exact, or matching the pattern)."""
        if not self.is_pattern:
            return key == self.key
        return compile_pattern(self.key).fullmatch(key) is not None

    def hints(self) -> dict[str, Any]:
        """The hints that are stated, by name."""
        return {name: getattr(self, name) for name in HINTS if getattr(self, name) is not None}


@dataclass
class Manifest:
    """A loaded ``accord.toml``: store URL, agents, resources in file order.

    Build one with :func:`load_manifest` (validated), or in code (call
    :meth:`validate` before use). ``agents`` is empty when the manifest
    declares none; then agent names are not checked. Lookups index the
    resources on first use: build a new Manifest rather than editing one in
    place.
    """

    resources: list[Resource] = field(default_factory=list)
    agents: dict[str, dict[str, Any]] = field(default_factory=dict)
    store_url: str | None = None
    path: str | None = None
    _cache: dict[str, Resource | None] = field(default_factory=dict, repr=False, compare=False)
    _indexed: (
        tuple[int, dict[str, Resource], list[tuple[re.Pattern[str], Resource]]] | None
    ) = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        """How messages name this manifest (its path, or "the manifest")."""
        return self.path or "the manifest"

    def resource_for(self, key: str) -> Resource | None:
        """The resource that governs ``key``, or None if none covers it.

        An exact key beats every pattern; among patterns, the first in the
        file wins.
        """
        cached = self._cache.get(key, _MISSING)
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        exact, patterns = self._index()
        found = exact.get(key)
        if found is None:
            for compiled, resource in patterns:
                if compiled.fullmatch(key) is not None:
                    found = resource
                    break
        if len(self._cache) < 65536:
            self._cache[key] = found
        return found

    def _index(self) -> tuple[dict[str, Resource], list[tuple[re.Pattern[str], Resource]]]:
        # Built once per list of resources: exact keys in a dict, patterns
        # compiled in file order (the first match wins).
        if self._indexed is None or self._indexed[0] != len(self.resources):
            exact: dict[str, Resource] = {}
            patterns: list[tuple[re.Pattern[str], Resource]] = []
            for resource in self.resources:
                if resource.is_pattern:
                    patterns.append((compile_pattern(resource.key), resource))
                else:
                    exact.setdefault(resource.key, resource)
            self._indexed = (len(self.resources), exact, patterns)
            self._cache.clear()
        return self._indexed[1], self._indexed[2]

    def validate(self) -> Manifest:
        """Check the manifest is consistent; raise :class:`ManifestError` if not."""
        problems: list[str] = []
        seen: dict[str, Resource] = {}
        for res in self.resources:
            where = _where(self, res)
            if res.key in seen:
                problems.append(
                    f"{where}: key {res.key!r} is declared twice (first at line "
                    f"{seen[res.key].line}); merge the two resources into one."
                )
            seen[res.key] = res
            problems.extend(f"{where}: {p}" for p in _resource_problems(res, self.agents))
        if problems:
            raise ManifestError(_joined(self, problems), path=self.path, problems=problems)
        return self


_MISSING = object()


def _where(manifest: Manifest, res: Resource) -> str:
    place = f"{manifest.name}"
    if res.line:
        place += f" line {res.line}"
    return f"{place} (resource {res.key!r})"


def _joined(manifest: Manifest, problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0] + " Nothing was started."
    return (
        f"{manifest.name} has {len(problems)} problems; nothing was started:\n"
        + "\n".join(f"  - {p}" for p in problems)
    )


def _resource_problems(res: Resource, agents: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if res.strategy is not None and res.strategy not in STRATEGIES:
        out.append(
            f"unknown strategy {res.strategy!r}{_did_you_mean(res.strategy, STRATEGIES)}. "
            f"Use one of: {', '.join(STRATEGIES)}, or leave strategy out to get a recommendation."
        )
        return out
    if agents:
        for role, who in (("writers", res.writers), ("readers", res.readers),
                          ("submitters", res.submitters)):
            unknown = [n for n in who.names if n not in agents]
            for name in unknown:
                out.append(
                    f"{role} names agent {name!r}, which is not declared"
                    f"{_did_you_mean(name, agents)}. Add [agents.{_toml_key(name)}] "
                    f"or fix the name (declared: {', '.join(agents)})."
                )
    n_writers = res.writers.count()
    strategy = res.strategy
    if strategy in ("owner", "queue"):
        if n_writers == 0:
            out.append(
                f"{'an' if strategy == 'owner' else 'a'} {strategy} resource needs its writer: "
                "add writer = \"AGENT\" "
                f"(the one agent that {'owns' if strategy == 'owner' else 'applies the queue of'} "
                "it)."
            )
        elif n_writers != 1:
            out.append(
                f"{'an' if strategy == 'owner' else 'a'} {strategy} resource has exactly one "
                "writer, but it names "
                f"{res.writers.describe()}. Name one writer, or choose optimistic, lease or "
                "branch for several writers."
            )
    if strategy == "read_only" and (res.writers or res.submitters):
        out.append(
            "a read_only resource has no writers or submitters, but it names some. Remove them, "
            "or choose the strategy the writers should follow."
        )
    if strategy in ("optimistic", "lease", "branch") and n_writers == 0:
        out.append(
            f"a {strategy} resource needs writers: add writers = [\"AGENT\", ...], or declare it "
            "read_only if nobody writes it."
        )
    if res.submitters and strategy not in (None, "queue"):
        out.append(
            f"submitters hand change requests to a queue's writer, but this resource is "
            f"{strategy}. Use strategy = \"queue\" with one writer, or move the submitters to "
            "writers."
        )
    if res.submitters and strategy is None and n_writers == 0:
        out.append(
            "submitters need a writer to apply their requests: add writer = \"AGENT\"."
        )
    return out


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(name: str) -> str:
    return name if _BARE_KEY.match(name) else toml_string(name)


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (quoted and escaped)."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


# --- loading ---------------------------------------------------------------------


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Load and validate the manifest at ``path``.

    Raises :class:`ManifestError` (a :class:`UsageError`, CLI exit 1) for a
    missing or unreadable file, malformed TOML (with line and column), and
    every inconsistency, all listed in one message. Relative SQLite paths in
    ``[store] url`` are resolved against the manifest's directory.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ManifestError(
            f"No manifest at {p}. Create one (see docs/protocol.md), or build a starting one "
            "from a recorded history: accord plan --from-history HISTORY --write-manifest "
            f"{p}.",
            path=str(p),
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"Cannot read the manifest {p}: {exc}.", path=str(p)) from exc
    return parse_manifest(text, path=str(p))


def parse_manifest(text: str, *, path: str | None = None) -> Manifest:
    """Parse and validate manifest ``text`` (see :func:`load_manifest`)."""
    name = path or "the manifest"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\(at line (\d+), column (\d+)\)", message)
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        if found:
            line, column = int(found.group(1)), int(found.group(2))
            src = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
            raise ManifestError(
                f"{name} is not valid TOML: {reason} at line {line}, column {column}:\n"
                f"    {src}\n    {' ' * (column - 1)}^\nFix the file and run again; "
                "nothing was started.",
                path=path,
                line=line,
                column=column,
            ) from exc
        raise ManifestError(
            f"{name} is not valid TOML: {message}. Nothing was started.", path=path
        ) from exc
    return manifest_from_data(data, path=path, text=text)


def manifest_from_data(
    data: Mapping[str, Any], *, path: str | None = None, text: str = ""
) -> Manifest:
    """Build and validate a :class:`Manifest` from parsed TOML ``data``."""
    name = path or "the manifest"
    problems: list[str] = []
    for top in data:
        if top not in _TOP_FIELDS:
            hint = (
                " Resources are an array of tables: write [[resource]]."
                if top in ("resources", "resource_", "keys")
                else _did_you_mean(top, _TOP_FIELDS)
            )
            problems.append(
                f"{name}: unknown top-level entry {top!r}.{hint} "
                "A manifest has [store], [agents.NAME] and [[resource]] entries."
            )
    store_url = _store_url(data.get("store"), path, problems, name)
    agents = _agents(data.get("agents"), problems, name)
    raw_resources = data.get("resource", [])
    if not isinstance(raw_resources, list):
        problems.append(
            f"{name}: 'resource' must be an array of tables: write each one as [[resource]]."
        )
        raw_resources = []
    lines = _resource_lines(text)
    resources: list[Resource] = []
    for index, raw in enumerate(raw_resources):
        line = lines[index] if index < len(lines) else 0
        where = f"{name}" + (f" line {line}" if line else "") + f" (resource #{index + 1})"
        res = _resource(raw, agents, where, problems, line)
        if res is not None:
            resources.append(res)
    if problems:
        raise ManifestError(
            problems[0] + " Nothing was started."
            if len(problems) == 1
            else f"{name} has {len(problems)} problems; nothing was started:\n"
            + "\n".join(f"  - {p}" for p in problems),
            path=path,
            problems=problems,
        )
    manifest = Manifest(resources=resources, agents=agents, store_url=store_url, path=path)
    return manifest.validate()


def _resource_lines(text: str) -> list[int]:
    return [
        number
        for number, line in enumerate(text.splitlines(), start=1)
        if re.match(r"^\s*\[\[\s*resource\s*\]\]", line)
    ]


def _store_url(raw: Any, path: str | None, problems: list[str], name: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        problems.append(f"{name}: [store] must be a table with url = \"...\".")
        return None
    for extra in raw:
        if extra not in _STORE_FIELDS:
            problems.append(
                f"{name}: unknown [store] entry {extra!r}{_did_you_mean(extra, _STORE_FIELDS)}; "
                "[store] takes url only."
            )
    url = raw.get("url")
    if url is None:
        return None
    if not isinstance(url, str) or "://" not in url:
        problems.append(
            f"{name}: [store] url = {url!r} is not a store URL. Use memory://, "
            "sqlite:///path/state.db or postgresql://user@host:5432/db."
        )
        return None
    return _resolve_sqlite(url, path)


def _resolve_sqlite(url: str, path: str | None) -> str:
    # A relative SQLite path in a manifest means "next to the manifest", so
    # the same manifest opens the same file from any working directory.
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or path is None or parts.netloc:
        return url
    file_path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not file_path or file_path == ":memory:" or os.path.isabs(file_path):
        return url
    resolved = (Path(path).resolve().parent / file_path).as_posix()
    return f"{parts.scheme}:///{resolved}" + (f"?{parts.query}" if parts.query else "")


def _agents(raw: Any, problems: list[str], name: str) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    agents: dict[str, dict[str, Any]] = {}
    if isinstance(raw, list):
        for item in raw:
            if not isinstance(item, str):
                problems.append(f"{name}: agents = [...] must list agent names as strings.")
                continue
            agents[item] = {}
    elif isinstance(raw, dict):
        for agent, info in raw.items():
            if not isinstance(info, dict):
                problems.append(
                    f"{name}: agents.{agent} must be a table: write [agents.{_toml_key(agent)}]."
                )
                continue
            for extra in info:
                if extra not in _AGENT_FIELDS:
                    problems.append(
                        f"{name}: unknown entry {extra!r} in [agents.{_toml_key(agent)}]"
                        f"{_did_you_mean(extra, _AGENT_FIELDS)}; an agent takes description "
                        "and role."
                    )
            agents[agent] = dict(info)
    else:
        problems.append(
            f"{name}: 'agents' must be tables ([agents.NAME]) or a list of names."
        )
        return {}
    for agent in agents:
        if not agent or len(agent) > 128 or CONTROL_CHARACTERS.search(agent) or agent == "*":
            problems.append(
                f"{name}: invalid agent name {agent!r}: use 1 to 128 printable characters."
            )
    return agents


def _resource(
    raw: Any,
    agents: Mapping[str, Any],
    where: str,
    problems: list[str],
    line: int,
) -> Resource | None:
    if not isinstance(raw, dict):
        problems.append(f"{where}: a resource must be a table ([[resource]]).")
        return None
    before = len(problems)
    for extra in raw:
        if extra not in _RESOURCE_FIELDS:
            problems.append(
                f"{where}: unknown field {extra!r}{_did_you_mean(extra, _RESOURCE_FIELDS)}. "
                f"A resource takes: {', '.join(_RESOURCE_FIELDS)}."
            )
    key = raw.get("key")
    if not isinstance(key, str):
        problems.append(
            f"{where}: every resource needs key = \"...\" (an exact key such as "
            "\"docs/plan.md\" or a pattern such as \"notes/*\")."
        )
        return None
    where = where.replace(")", f", key {key!r})", 1)
    problem = pattern_problem(key)
    if problem:
        problems.append(f"{where}: {problem}")
    strategy = raw.get("strategy")
    if strategy is not None and not isinstance(strategy, str):
        problems.append(f"{where}: strategy must be a string: one of {', '.join(STRATEGIES)}.")
        strategy = None
    if "writer" in raw and "writers" in raw:
        problems.append(
            f"{where}: use writer = \"A\" (one writer) or writers = [\"A\", \"B\"], not both."
        )
    writers_raw = raw.get("writers", raw.get("writer"))
    writers = _who(writers_raw, "writers", agents, where, problems)
    readers = _who(raw.get("readers"), "readers", agents, where, problems)
    submitters = _who(raw.get("submitters"), "submitters", agents, where, problems)
    hints: dict[str, Any] = {}
    for hint, allowed in HINTS.items():
        if hint not in raw:
            continue
        value = raw[hint]
        if value not in allowed or type(value) is not type(allowed[0]):
            shown = " or ".join(
                str(a).lower() if isinstance(a, bool) else f'"{a}"' for a in allowed
            )
            problems.append(f"{where}: {hint} = {value!r} is not allowed; use {shown}.")
            continue
        hints[hint] = value
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        problems.append(f"{where}: description must be a string.")
        description = None
    if len(problems) > before:
        return None
    return Resource(
        key=key,
        strategy=strategy,
        writers=writers,
        readers=readers,
        submitters=submitters,
        description=description,
        line=line,
        **hints,
    )


def _who(
    raw: Any, role: str, agents: Mapping[str, Any], where: str, problems: list[str]
) -> Who:
    if raw is None:
        return Who()
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        problems.append(
            f"{where}: {role} must be an agent name or a list of agent names "
            "(\"*\" means every declared agent)."
        )
        return Who()
    if "*" in items:
        if agents:
            return Who(tuple(agents), star=True)
        return Who(anyone=True, star=True)
    names: list[str] = []
    for item in items:
        if item not in names:
            names.append(item)
    return Who(tuple(names))
