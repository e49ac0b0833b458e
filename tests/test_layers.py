"""Imports go one way: down the layers that docs/architecture.md draws.

Every module under ``src/accord`` is parsed with :mod:`ast` (nothing is
imported, so a module that would fail to import is still checked), and every
import it makes is collected: at module level, inside functions, under
``if TYPE_CHECKING:``, and the dynamic ones whose target is a literal
(``importlib.import_module("accord.x")``, ``__import__("accord.x")``).

The rules:

* ``LAYERS`` orders the package bottom up; a module may import its own
  layer and the layers below it, never a layer above. Type-only imports
  count too: a lower module that names an upper one's type cannot be read,
  typed or moved without it.
* ``STACKS`` does the same inside a package (``accord.history``,
  ``accord.plan``), so a package's own modules import one way as well.
* No import loop at run time: module-level, function-level and dynamic
  imports (``TYPE_CHECKING`` imports are left out here: two modules of one
  layer may name each other's types, as ``Session`` and ``Store`` do).
* Every module has a layer: a new module fails here until it is placed.

``ALLOWED_UPWARD`` lists, one entry per import, the upward imports that
exist today in modules another branch is rewriting; each entry says why it
is there. Delete an entry when its import goes: a test fails on an entry
that no longer matches any import ("remove it").
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "accord"

# Bottom up. A pattern names a module and everything below it; a stack's
# root (``accord`` here) names only its own ``__init__``. A module whose last
# part ends in ``_async`` (an async source from which a sync module is
# generated) sits in the layer of its sync twin.
LAYERS: Sequence[tuple[str, Sequence[str]]] = (
    # The exception tree: imports nothing from accord.
    ("errors", ("accord.errors",)),
    # Plain data and pure helpers: no I/O, no state, nothing above them.
    (
        "leaves",
        (
            "accord.records",
            "accord.keys",
            "accord.params",
            "accord.diff",
            "accord.merge",
            "accord._segments",
        ),
    ),
    # Storage: the Backend protocol and its drivers.
    ("backends", ("accord.backends",)),
    # The write path without a face: clocks (read from and written through a
    # backend) and the I/O-free core that issue 13 adds.
    # The one write path (its commit, hooks and guards) is the core's I/O.
    ("core", ("accord.clock", "accord._clockio", "accord._core", "accord._writepath")),
    # Recipes over the core (kazoo's recipes over its client): leases,
    # queues, branches, CRDT values; the manifest and its enforcement, which
    # the store installs as a guard.
    ("strategies", ("accord.strategies", "accord.policy")),
    # The front door: Store and Session bind the strategies (as kazoo's
    # client binds its recipes) and run every call through one hook. The
    # async face and watch (issue 13) live here too.
    # (accord._session and accord._store are the async sources of
    # accord.session and accord.store; accord._open opens a store by URL for
    # both faces; accord._aio_strategies gives the strategies the async face.)
    (
        "session",
        (
            "accord.session",
            "accord.store",
            "accord._session",
            "accord._store",
            "accord._open",
            "accord._aio_strategies",
            "accord.aio",
            "accord.watch",
            "accord._watch",
        ),
    ),
    # What reads histories and manifests: the race checker, the plan, the
    # schedule explorer.
    ("analysis", ("accord.history", "accord.plan", "accord.explorer")),
    # The cost simulator (issue 18): the real strategies on the explorer's
    # scheduler and virtual clock; it reads plans to fill them in.
    ("simulation", ("accord.simulator",)),
    # What the servers share over a Session: credentials, the rules for
    # branch ids and merge resolutions, replayed answers (issue 12).
    # What a call that died in the crash window did (_recover).
    (
        "services",
        ("accord.remote", "accord.credentials", "accord.replay", "accord._recover"),
    ),
    # The public names: accord/__init__.py re-exports, nothing else.
    ("api", ("accord",)),
    # Faces for people, programs and frameworks. They import anything below,
    # and each other (the demo prints with the CLI's console).
    (
        "surfaces",
        (
            "accord.__main__",
            "accord.cli",
            "accord.mcp",
            "accord.http",
            "accord.langgraph",
            "accord.agents_sdk",
            "accord._async_twin",
            "accord.otel",
            "accord.demo",
            "accord.pytest_plugin",
        ),
    ),
)

# Layers inside a package, bottom up, by the same rules.
STACKS: Mapping[str, Sequence[tuple[str, Sequence[str]]]] = {
    "accord": LAYERS,
    "accord.history": (
        # Reading history files; what a check finds.
        ("format and result", ("accord.history.format", "accord.history.result")),
        # Foreign operations (read, write, cas, append) read from lines.
        ("foreign", ("accord.history.foreign",)),
        # The native checker's parts: what it remembers, how it reads an
        # event's fields, its findings in words.
        (
            "native parts",
            (
                "accord.history.native_state",
                "accord.history.native_fields",
                "accord.history.native_explain",
            ),
        ),
        # The checkers and the importers: each one job, none imports another.
        (
            "checkers",
            (
                "accord.history.native",
                "accord.history.infer",
                "accord.history.linearizable",
                "accord.history.otel",
                "accord.history.shiviz",
            ),
        ),
        # One pass: a history to the checker for its shape.
        ("scan", ("accord.history.scan",)),
        # Several processes, one share of the keys each.
        ("parallel", ("accord.history.parallel",)),
        # check(): its arguments, one pass or several processes.
        ("entry point", ("accord.history.check",)),
        # The timeline marks what check() found.
        ("pictures", ("accord.history.timeline",)),
        ("package", ("accord.history",)),
    ),
    "accord.backends": (
        # The contract (the Protocols) and the drivers' shared helpers.
        ("contract", ("accord.backends.base",)),
        # PostgreSQL without I/O, for both faces: the URL, the SQL, rows and
        # arguments, errors and the retry rule.
        (
            "postgres without I/O",
            (
                "accord.backends._pg_config",
                "accord.backends._pg_sql",
                "accord.backends._pg_rows",
                "accord.backends._pg_errors",
            ),
        ),
        # PostgreSQL's own I/O parts: the schema's migration, the LISTEN
        # connection (generated from its async source).
        ("postgres parts", ("accord.backends._pg_schema", "accord.backends._pg_listener")),
        # The drivers (postgres_async, their async source, sits with postgres)
        # and the thread-offload adapter.
        (
            "drivers",
            (
                "accord.backends.memory",
                "accord.backends.sqlite",
                "accord.backends.postgres",
                "accord.backends.thread",
            ),
        ),
        ("package", ("accord.backends",)),
    ),
    "accord.policy": (
        ("patterns", ("accord.policy.patterns",)),
        ("manifest", ("accord.policy.manifest",)),
        ("enforce", ("accord.policy.enforce",)),
        ("package", ("accord.policy",)),
    ),
    "accord.plan": (
        # Access classes and the recommendation.
        ("classify", ("accord.plan._classify",)),
        # What a history shows about each key.
        ("access", ("accord.plan._access",)),
        # The plan of a manifest, and its violations.
        ("plan", ("accord.plan._plan",)),
        # From a history alone; writing a manifest; the table for people.
        (
            "from the plan",
            ("accord.plan._from_history", "accord.plan._write", "accord.plan._render"),
        ),
        # The demo's own plan, drawn.
        ("demo", ("accord.plan._demo",)),
        ("package", ("accord.plan",)),
    ),
    "accord.simulator": (
        # The shape of the work, and one run of it.
        ("workload", ("accord.simulator._workload",)),
        ("run", ("accord.simulator._run",)),
        # The same agents as real processes on a real store, to check it.
        ("reality", ("accord.simulator._real",)),
        # Sums over seeds and the choice; many runs, on every core.
        ("metrics", ("accord.simulator._metrics",)),
        ("api", ("accord.simulator._api",)),
        # What is made of the results: shapes from plans, tables, plots.
        (
            "outputs",
            (
                "accord.simulator._plan",
                "accord.simulator._render",
                "accord.simulator._plot",
                "accord.simulator._validate",
            ),
        ),
        ("package", ("accord.simulator",)),
    ),
}

# Upward imports that exist on main today, in modules the issue 13 branch
# (one write path, strategies over the core) is rewriting. Each entry is
# (importing module, imported module): every import of that module from that
# file. Delete an entry when its import is gone; a stale entry fails.
ALLOWED_UPWARD: Mapping[tuple[str, str], str] = {
    # Empty since issue 13: the strategies type their session and store
    # against Protocols (_core.faces, the lease's own, crdt's), and the
    # manifest's Policy against a Protocol of what it installs on. Keep it so.
}


@dataclass(frozen=True)
class Import:
    """One import statement (or literal dynamic import) of one accord module."""

    source: str  # the importing module
    target: str  # the imported accord module (a package's __init__ for a name in it)
    path: Path
    line: int
    kind: str  # "module level", "in a function", "TYPE_CHECKING", "dynamic"
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(SRC.parent)}:{self.line}"


def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a file under SRC, and whether it is a package's __init__."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: name -> (path, is a package)."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        name, is_package = module_name(path)
        found[name] = (path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _dynamic_target(call: ast.Call) -> str | None:
    """The literal module of ``importlib.import_module("x")`` or ``__import__("x")``."""
    func = call.func
    name = getattr(func, "id", None) or getattr(func, "attr", None)
    if name not in ("import_module", "__import__") or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


def imports_of(
    name: str, path: Path, is_package: bool, source: str, known: Iterable[str]
) -> list[Import]:
    """Every import of an accord module that ``source`` (module ``name``) makes."""
    known = set(known)
    tree = ast.parse(source, filename=str(path))
    found: list[Import] = []

    def resolve(node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = name.split(".")
        if not is_package:
            base.pop()
        base = base[: len(base) - (node.level - 1)]
        return ".".join([*base, node.module] if node.module else base)

    def add(target: str, node: ast.stmt | ast.expr, kind: str) -> None:
        if target != PACKAGE and not target.startswith(PACKAGE + "."):
            return
        # "from accord.x import y": y is a module, or a name in accord.x.
        while target not in known and "." in target:
            target = target.rsplit(".", 1)[0]
        found.append(
            Import(
                name, target, path, node.lineno, kind, ast.get_source_segment(source, node) or ""
            )
        )

    def visit(node: ast.AST, kind: str) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, kind)
        elif isinstance(node, ast.ImportFrom):
            base = resolve(node)
            for alias in node.names:
                add(f"{base}.{alias.name}", node, kind)
        elif isinstance(node, ast.Call) and (target := _dynamic_target(node)) is not None:
            add(target, node, "dynamic")
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.body:
                visit(statement, "TYPE_CHECKING")
            for statement in node.orelse:
                visit(statement, kind)
            return
        inner = kind
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            inner = "in a function" if kind == "module level" else kind
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, "module level")
    return found


def all_imports() -> list[Import]:
    mods = modules()
    out: list[Import] = []
    for name, (path, is_package) in mods.items():
        out += imports_of(name, path, is_package, path.read_text(encoding="utf-8"), mods)
    return out


def _twin(module: str) -> str:
    """An async source's sync twin (``accord.session_async`` -> ``accord.session``)."""
    head, _, last = module.rpartition(".")
    if last.endswith("_async"):
        return f"{head}.{last[: -len('_async')]}" if head else last[: -len("_async")]
    return module


def layer_of(module: str, root: str = PACKAGE) -> tuple[int, str] | None:
    """(position, name) of ``module``'s layer in the stack of ``root``; None if it has none."""
    module = _twin(module)
    best: tuple[int, int, str] | None = None
    for position, (layer, patterns) in enumerate(STACKS[root]):
        for pattern in patterns:
            if pattern == root:
                hit = module == root
            else:
                hit = module == pattern or module.startswith(pattern + ".")
            if hit and (best is None or len(pattern) > best[0]):
                best = (len(pattern), position, layer)
    return None if best is None else (best[1], best[2])


def _in_stack(module: str, root: str) -> bool:
    return module == root or module.startswith(root + ".")


def upward(imports: Iterable[Import]) -> list[tuple[Import, str]]:
    """Imports that go up a stack, each with the rule it breaks."""
    out: list[tuple[Import, str]] = []
    for imp in imports:
        for root in STACKS:
            if not (_in_stack(imp.source, root) and _in_stack(imp.target, root)):
                continue
            here, there = layer_of(imp.source, root), layer_of(imp.target, root)
            if here is None or there is None or there[0] <= here[0]:
                continue
            scope = "" if root == PACKAGE else f" (inside {root})"
            out.append(
                (
                    imp,
                    f"layer '{here[1]}' may not import layer '{there[1]}' above it{scope}",
                )
            )
    return out


def violations(imports: Iterable[Import], allowed: Mapping[tuple[str, str], str]) -> list[str]:
    """One message per upward import that ``allowed`` does not list."""
    return [
        f"{imp.where}: {imp.source} imports {imp.target} ({imp.kind}: {imp.text!r}): {rule}. "
        "Move what it needs down (to the lower module or to the core), or pass it in; "
        "see docs/architecture.md."
        for imp, rule in upward(imports)
        if (imp.source, imp.target) not in allowed
    ]


def import_loops(imports: Iterable[Import]) -> list[list[str]]:
    """Run-time import loops: strongly connected groups of two or more modules.

    Importing ``accord.a.b`` also runs ``accord/a/__init__.py``, unless the
    importer is itself inside ``accord.a`` (then that package is already
    being imported), so such edges count as well.
    """
    edges: dict[str, set[str]] = {}
    for imp in imports:
        if imp.kind == "TYPE_CHECKING" or imp.source == imp.target:
            continue
        targets = {imp.target}
        parent = imp.target
        while "." in parent:
            parent = parent.rsplit(".", 1)[0]
            if not _in_stack(imp.source, parent):
                targets.add(parent)
        edges.setdefault(imp.source, set()).update(targets - {imp.source})
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                loops.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return loops


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return all_imports()


# --- the package -------------------------------------------------------------------


def test_every_module_has_a_layer() -> None:
    missing = [name for name in modules() if layer_of(name) is None]
    for root in STACKS:
        missing += [
            f"{name} (in the stack of {root})"
            for name in modules()
            if root != PACKAGE and _in_stack(name, root) and layer_of(name, root) is None
        ]
    assert not missing, (
        "These modules have no layer: add each to LAYERS (or its package's STACKS entry) in "
        "tests/test_layers.py and to the table in docs/architecture.md: " + ", ".join(missing)
    )


def test_imports_only_go_down(imports: list[Import]) -> None:
    found = violations(imports, ALLOWED_UPWARD)
    assert not found, "Upward imports:\n" + "\n".join(found)


def test_allowed_upward_imports_still_exist(imports: list[Import]) -> None:
    real = {(imp.source, imp.target) for imp, _ in upward(imports)}
    stale = [
        f"{source} -> {target}" for source, target in ALLOWED_UPWARD if (source, target) not in real
    ]
    assert not stale, (
        "ALLOWED_UPWARD in tests/test_layers.py lists imports that no longer go up (or no "
        "longer exist): remove it: " + "; ".join(stale)
    )


def test_no_import_loops(imports: list[Import]) -> None:
    loops = import_loops(imports)
    assert not loops, "Import loops (module-level, in functions or dynamic): " + "; ".join(
        " <-> ".join(loop) for loop in loops
    )


def _unit(module: str) -> str:
    """The top-level module or package a module belongs to (``accord.cli``)."""
    return ".".join(module.split(".")[:2])


def test_no_import_loops_between_packages(imports: list[Import]) -> None:
    # A loop of function-level imports between two packages (the CLI runs the
    # demo, the demo printed with the CLI's console) is a loop all the same.
    collapsed = [
        Import(_unit(i.source), _unit(i.target), i.path, i.line, i.kind, i.text)
        for i in imports
        if _unit(i.source) != _unit(i.target)
    ]
    loops = import_loops(collapsed)
    assert not loops, "Import loops between packages: " + "; ".join(
        " <-> ".join(loop) for loop in loops
    )


def test_errors_imports_nothing_from_accord(imports: list[Import]) -> None:
    own = [imp.where for imp in imports if imp.source == "accord.errors"]
    assert not own, f"accord.errors must import nothing from accord: {own}"


def test_the_architecture_page_names_every_layer_and_module() -> None:
    page = (SRC.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [
        f"{layer} ({pattern})"
        for root, stack in STACKS.items()
        for layer, patterns in stack
        for pattern in patterns
        if pattern != root and pattern.rsplit(".", 1)[-1] not in page
    ]
    missing += [layer for layer, _ in LAYERS if f"\n  {layer} " not in page]
    assert not missing, (
        "docs/architecture.md does not show these layers or modules of tests/test_layers.py: "
        + ", ".join(missing)
    )


# --- the checker itself ------------------------------------------------------------

PLANTED = """\
from __future__ import annotations

from typing import TYPE_CHECKING

from ..records import Doc
from . import base

if TYPE_CHECKING:
    from ..strategies.lease import Lease


def later() -> None:
    from ..session import Session
    import accord.plan


def hidden() -> object:
    import importlib
    return importlib.import_module("accord.cli")
"""


def _planted() -> list[Import]:
    path = SRC / "accord" / "backends" / "planted.py"
    return imports_of(
        "accord.backends.planted", path, False, PLANTED, [*modules(), "accord.backends.planted"]
    )


def test_the_parser_sees_every_kind_of_import() -> None:
    got = {(imp.target, imp.kind, imp.line) for imp in _planted()}
    assert got == {
        ("accord.records", "module level", 5),
        ("accord.backends.base", "module level", 6),
        ("accord.strategies.lease", "TYPE_CHECKING", 9),
        ("accord.session", "in a function", 13),
        ("accord.plan", "in a function", 14),
        ("accord.cli", "dynamic", 19),
    }


def test_an_upward_import_fails_with_the_import_and_the_rule() -> None:
    found = violations(_planted(), {})
    assert len(found) == 4
    session = next(m for m in found if "imports accord.session" in m)
    assert session.startswith("src/accord/backends/planted.py:13: ")
    assert "'from ..session import Session'" in session
    assert "layer 'backends' may not import layer 'session' above it" in session
    allowed = {("accord.backends.planted", "accord.session"): "planted"}
    assert len(violations(_planted(), allowed)) == 3


def test_a_loop_is_found() -> None:
    path = SRC / "accord" / "x.py"
    a = Import("accord.a", "accord.b", path, 1, "module level", "")
    b = Import("accord.b", "accord.a", path, 1, "in a function", "")
    typed = Import("accord.c", "accord.a", path, 1, "TYPE_CHECKING", "")
    back = Import("accord.a", "accord.c", path, 1, "module level", "")
    assert import_loops([a, b, typed, back]) == [["accord.a", "accord.b"]]


def test_layers_inside_a_package() -> None:
    path = SRC / "accord" / "history" / "infer.py"
    up = Import("accord.history.infer", "accord.history.check", path, 3, "in a function", "")
    (message,) = violations([up], {})
    assert "layer 'checkers' may not import layer 'entry point' above it (inside " in message


def test_an_async_source_sits_with_its_sync_twin() -> None:
    assert layer_of("accord.session_async") == layer_of("accord.session")
    assert layer_of("accord.strategies.lease_async") == layer_of("accord.strategies.lease")
    assert layer_of("accord") == (len(LAYERS) - 2, "api")
    assert layer_of("accord.cli.watch") == layer_of("accord.cli")


def report() -> Iterator[str]:
    """Every module by layer, then the loops that TYPE_CHECKING imports close."""
    for position, (layer, _) in enumerate(LAYERS):
        names = [n for n in modules() if (layer_of(n) or (-1, ""))[0] == position]
        yield f"{layer}: {', '.join(names)}"
    typed = [
        Import(i.source, i.target, i.path, i.line, "module level", i.text) for i in all_imports()
    ]
    for loop in import_loops(typed):
        yield "loop counting TYPE_CHECKING imports: " + " <-> ".join(loop)


if __name__ == "__main__":  # python tests/test_layers.py
    for line in report():
        print(line)
