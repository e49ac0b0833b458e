"""The one exception tree of accord.

Every error accord raises derives from :class:`AccordError`. Backend
exceptions (``sqlite3``, ``psycopg``) are translated once, at the backend
boundary, and chained with ``raise ... from exc``. Every message says what
happened and what to do next, in words an LLM agent can act on::

    AccordError
    ├── UsageError                  the call itself is wrong (exit code 1)
    │   ├── InvalidKey              a key breaks the key rules
    │   ├── InvalidValue            a value of a type accord cannot store
    │   ├── ValueTooLarge           a value over the store's size limit
    │   ├── ManifestError           a malformed or inconsistent accord.toml
    │   └── HistoryFormatError      a malformed history file
    ├── NotFound                    the key (or request, branch) does not exist
    ├── PreconditionFailed          a write was refused before it was applied (exit 3)
    │   ├── Conflict                the version moved since the caller read it
    │   ├── PreconditionRequired    a blind write that was not asked for by name
    │   ├── IdempotencyMismatch     an idempotency key reused with another payload
    │   ├── NotWriter               a queue key written by someone but its writer
    │   ├── NotOwner                a branch written or discarded by another agent
    │   ├── PolicyViolation         the manifest does not allow this
    │   └── RetriesExhausted        update() gave up after its retries
    ├── LeaseError                  leases and fencing (exit 4)
    │   ├── LeaseTimeout            the lease was not granted within ``wait``
    │   ├── LeaseLost               the lease expired or was superseded
    │   ├── Fenced                  a write under a lease that is no longer live
    │   ├── LeaseHeld               a write without the key's live exclusive lease
    │   └── Deadlock                waiting would close a cycle of waiters
    ├── Timeout                     a wait ran out (requests, decisions)
    └── BackendUnavailable          the store cannot be reached or used

Errors are picklable (they cross process boundaries in tests and tools) and
show ``accord`` as their module in tracebacks.

One message, several renderings
-------------------------------

A message often tells the caller what to call next, and the caller may be
Python code, a shell, or an agent behind MCP or HTTP: "write with
``expect=5``" in Python is "``accord write KEY --expect 5``" on the command
line. A message is written once, with the how-to parts as markup made by
:func:`call` (an operation and its arguments) and :func:`option` (one
argument); :func:`render` turns the markup into the words of one surface:

- ``"python"`` (the default: ``str(exc)`` and ``exc.message``):
  ``write('k', value, expect=5)``, ``expect=5``;
- ``"cli"``: ``accord write k --expect 5``, ``--expect 5``;
- ``"mcp"``: Python's words, since the MCP tools take the Python API's
  names and arguments;
- ``"http"``: the HTTP API's requests and headers (``accord serve``):
  ``PUT /v1/keys/k with If-Match: "5"``, ``If-Match: "5"``.

``exc.render(surface)`` renders an error's message for a surface;
``exc.template`` keeps the markup, for a message built from another's.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from typing import Any

__all__ = [
    "SURFACES",
    "AccordError",
    "BackendUnavailable",
    "Conflict",
    "Deadlock",
    "Fenced",
    "HistoryFormatError",
    "IdempotencyMismatch",
    "InvalidKey",
    "InvalidValue",
    "LeaseError",
    "LeaseHeld",
    "LeaseLost",
    "LeaseTimeout",
    "ManifestError",
    "NotFound",
    "NotOwner",
    "NotWriter",
    "PolicyViolation",
    "PreconditionFailed",
    "PreconditionRequired",
    "RetriesExhausted",
    "Timeout",
    "UsageError",
    "ValueTooLarge",
    "Var",
    "argument",
    "call",
    "option",
    "render",
    "var",
]


# --- one message, several renderings ---------------------------------------

SURFACES = ("python", "cli", "mcp", "http")
"""The surfaces a message can be rendered for (see the module docstring)."""

# Private-use characters delimit the markup: they do not occur in the words
# of a message, and the JSON payload between them escapes any that occur in
# its own arguments, so a payload never contains a delimiter.
_OPEN, _CLOSE = "\ue000", "\ue001"
_MARKUP = re.compile(f"{_OPEN}([^{_OPEN}{_CLOSE}]*){_CLOSE}")


class Var(str):
    """A placeholder in a how-to: ``var("key")`` is ``key`` in Python and
    ``KEY`` on the command line; a name with spaces (``var("the version you
    read")``) is ``<the version you read>`` on both."""


def var(name: str) -> Var:
    """A placeholder argument for :func:`call` and :func:`option`."""
    return Var(name)


def call(op: str, *args: Any, **kwargs: Any) -> str:
    """Markup for "call ``op`` with these arguments", rendered per surface.

    ``op`` is the Python name, with its receiver when it has one
    (``"write"`` for a session's method, ``"store.branches"``); ``args`` and
    ``kwargs`` are values (``'docs/plan.md'``, ``5``, ``True``) or
    :func:`var` placeholders. Python renders ``store.branches('k')``, the
    command line ``accord branch list k``.
    """
    return _mark({"call": op, "args": [_arg(a) for a in args], "kwargs": _kwargs(kwargs)})


def option(name: str, value: Any = True) -> str:
    """Markup for one argument: ``expect=5`` in Python, ``--expect 5`` on the
    command line (``force=True`` is ``--force``)."""
    return _mark({"option": name, "value": _arg(value)})


def argument(name: str) -> str:
    """Markup for the name of an argument alone: ``timeout`` in Python,
    ``--wait`` on the command line (as in "``timeout`` must be a number")."""
    return _mark({"argument": name})


def _mark(payload: dict[str, Any]) -> str:
    return _OPEN + json.dumps(payload) + _CLOSE


def _arg(value: Any) -> Any:
    if isinstance(value, Var):
        return {"var": str(value)}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return {"var": str(value)}


def _kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {name: _arg(value) for name, value in kwargs.items()}


def render(text: str, surface: str = "python") -> str:
    """``text`` with its markup (:func:`call`, :func:`option`) in the words of
    ``surface``: ``"python"``, ``"cli"``, ``"mcp"`` or ``"http"``. Text without
    markup comes back unchanged."""
    if _OPEN not in text:
        return text
    if surface not in SURFACES:
        raise ValueError(f"Unknown surface {surface!r}; surfaces are {', '.join(SURFACES)}.")
    cli = surface == "cli"
    http = surface == "http"

    def one(match: re.Match[str]) -> str:
        try:
            payload = json.loads(match.group(1))
        except ValueError:
            return match.group(0)
        if "call" in payload:
            op, args, kwargs = payload["call"], payload["args"], payload["kwargs"]
            if http:
                return _http_call(op, args, kwargs)
            return _cli_call(op, args, kwargs) if cli else _py_call(op, args, kwargs)
        if "argument" in payload:
            name = payload["argument"]
            return _cli_flag(name) if cli else name
        name, value = payload["option"], payload["value"]
        if http:
            return _http_option(name, value)
        return _cli_option(name, value) if cli else f"{name}={_py_value(value)}"

    return _MARKUP.sub(one, text)


def _py_value(value: Any) -> str:
    if isinstance(value, dict):
        name = str(value["var"])
        return name if name.isidentifier() or name == "..." else f"<{name}>"
    return repr(value)


def _py_call(op: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    parts = [_py_value(a) for a in args]
    parts += [f"{name}={_py_value(value)}" for name, value in kwargs.items()]
    return f"{op}({', '.join(parts)})"


def _cli_value(value: Any, name: str = "") -> str:
    if isinstance(value, dict):
        var_name = str(value["var"])
        if var_name in _CLI_VARS:
            return _CLI_VARS[var_name]
        return var_name.upper() if var_name.isidentifier() else f"<{var_name}>"
    return shlex.quote(str(value))


_CLI_VARS = {"lease": "TOKEN", "branches": "[BRANCH_ID ...]", "...": "..."}
"""Placeholders whose command-line name is not their Python name in capitals."""

_CLI_OPTIONS = {
    "idempotency_key": "--idempotency-key",
    "timeout": "--wait",
    "lease": "--lease",
    "resolve": "--prefer",
}
"""Python argument -> command-line option, where it is not ``--`` + the name."""


_PYTHON_ONLY = frozenset({"record_reads", "max_value_size", "idempotency_window", "clock"})
"""Options of ``accord.open`` that no command takes."""

_PYTHON_ARGS = frozenset(
    {"retries", "backoff", "max_backoff", "role_wait", "batch", "keepalive", "stop"}
)
"""Arguments of Python calls (``update``, ``serve``, ``lease``) that no command takes."""


def _cli_flag(name: str) -> str:
    if name in _PYTHON_ONLY:
        return f"the {name} option of accord.open (Python only)"
    if name in _PYTHON_ARGS:
        return f"{name} (in the Python API)"
    return _CLI_OPTIONS.get(name, "--" + name.replace("_", "-"))


def _cli_option(name: str, value: Any) -> str:
    if name in _PYTHON_ONLY:
        return f"the {name} option of accord.open (Python only)"
    if name in _PYTHON_ARGS:
        return f"{name}={_py_value(value)} (in the Python API)"
    flag = _cli_flag(name)
    if value is True:
        return flag
    if name == "resolve":
        return f"{flag} SIDE"
    return f"{flag} {_cli_value(value, name)}"


# The commands of the Python API's operations: the operation's name without
# its receiver -> (command words, the Python positional arguments that are
# command-line arguments, in order; None for one the command takes another
# way, such as the value it reads from standard input).
_CLI_COMMANDS: dict[str, tuple[str, tuple[str | None, ...]]] = {
    "read": ("read", ("key",)),
    "write": ("write", ("key", None)),
    "delete": ("delete", ("key",)),
    "acquire": ("lease acquire", ("key",)),
    "lease": ("lease acquire", ("key",)),
    "renew": ("lease renew", ("key",)),
    "release": ("lease release", ("key",)),
    "submit": ("submit", ("key", None)),
    "requests": ("requests", ("key",)),
    "fork": ("fork", ("key",)),
    "merge": ("merge", ("key", "branches")),
    "branches": ("branch list", ("key",)),
    "export_history": ("export", ("path",)),
    "history": ("log", ()),
    "check": ("check", ("history",)),
    "plan": ("plan", ("manifest",)),
    "branch": ("branch read", ("key", "branch_id")),
    "watch": ("watch", ("key_or_prefix",)),
    # accord.credentials' functions take the store first; the agents
    # commands take the store from --store.
    "credentials.add": ("agents add", (None, "agent")),
    "credentials.rotate": ("agents rotate", (None, "agent")),
    "credentials.revoke": ("agents revoke", (None, "agent")),
    "credentials.list_agents": ("agents list", (None,)),
}

_CLI_SPECIAL: dict[str, Callable[[list[Any], dict[str, Any]], str]] = {
    # update() is a read and a write retried on conflict: the command line
    # spells out the loop.
    "update": lambda args, kwargs: (
        f"accord read {_cli_value(args[0]) if args else 'KEY'}, then accord write "
        f"{_cli_value(args[0]) if args else 'KEY'} --expect <the version read> "
        "(again on a conflict)"
    ),
    "open": lambda args, kwargs: (
        "--store URL (or ACCORD_URL)"
        if args and not kwargs
        else "the store's URL and options (Python: accord.open(...))"
        if not kwargs
        else "opening the store in Python with "
        + ", ".join(f"{k}={_py_value(v)}" for k, v in kwargs.items())
    ),
    # Who the caller is: a session in Python, --agent on the command line.
    "session": lambda args, kwargs: "--agent NAME (or ACCORD_AGENT)",
    # A request's outcome: Request.wait() in Python, submit --wait.
    "request.wait": lambda args, kwargs: "accord submit ... --wait SECONDS",
    # A branch's own methods: the branch commands name the key and the id.
    "branch.write": lambda args, kwargs: "accord branch write KEY BRANCH_ID",
    "branch.read": lambda args, kwargs: "accord branch read KEY BRANCH_ID",
    "branch.discard": lambda args, kwargs: "accord branch discard KEY BRANCH_ID",
    # Deciding a request: Python passes the Request, the commands its key and id.
    "accept": lambda args, kwargs: " ".join(
        ["accord accept KEY REQUEST_ID"] + [_cli_option(k, v) for k, v in kwargs.items()]
    ),
    "reject": lambda args, kwargs: "accord reject KEY REQUEST_ID --reason TEXT",
    # A lease's own methods: the lease commands name the key and the token.
    "lease.renew": lambda args, kwargs: "accord lease renew KEY --token TOKEN",
    "lease.release": lambda args, kwargs: "accord lease release KEY --token TOKEN",
}


def _cli_call(op: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    name = op if op in _CLI_SPECIAL or op in _CLI_COMMANDS else op.rsplit(".", 1)[-1]
    if name in _CLI_SPECIAL:
        return _CLI_SPECIAL[name](args, kwargs)
    command = _CLI_COMMANDS.get(name)
    if command is None:
        # No command for it: say it in Python's words, and that they are.
        return f"{_py_call(op, args, kwargs)} (in the Python API)"
    words, positional = command
    parts = ["accord", words]
    for slot, value in zip(positional, args, strict=False):
        if slot is not None:
            parts.append(_cli_value(value, slot))
    parts += [_cli_option(k, v) for k, v in kwargs.items() if v is not False]
    return " ".join(parts)


# --- the HTTP API's words (accord serve, docs/http.md) ---------------------

_HTTP_QUERY = {"timeout": "wait", "wait": "wait", "ttl": "ttl", "mode": "mode",
               "lenient": "lenient", "token": "token"}
"""Python arguments that are query parameters of the HTTP API."""


def _http_value(value: Any) -> str:
    if isinstance(value, dict):
        name = str(value["var"])
        if name in _CLI_VARS:
            return _CLI_VARS[name]
        return name.upper() if name.isidentifier() else f"<{name}>"
    if value is True:
        return "true"
    return str(value)


def _http_option(name: str, value: Any) -> str:
    if name == "expect":
        if value == 0 and not isinstance(value, dict):
            return "If-None-Match: *"
        return f'If-Match: "{_http_value(value)}"'
    if name == "idempotency_key":
        return f'Idempotency-Key: "{_http_value(value)}"'
    if name == "lease":
        return f"Accord-Lease: {_http_value(value)}"
    if name == "force":
        return "If-Match with the version you read (HTTP has no blind write)"
    if name == "resolve":
        return '"prefer" or "resolutions" in the merge request'
    if name in _PYTHON_ONLY:
        return f"the {name} option of the server's store (Python only)"
    if name in _HTTP_QUERY:
        return f"?{_HTTP_QUERY[name]}={_http_value(value)}"
    return f"{name}={_http_value(value)}"


# The HTTP request of each operation of the Python API: (method, path with
# {0} for the first argument, placeholder when that argument is missing).
_HTTP_REQUESTS: dict[str, tuple[str, str]] = {
    "read": ("GET", "/v1/keys/{0}"),
    "write": ("PUT", "/v1/keys/{0}"),
    "delete": ("DELETE", "/v1/keys/{0}"),
    "acquire": ("POST", "/v1/leases/{0}"),
    "lease": ("POST", "/v1/leases/{0}"),
    "renew": ("PATCH", "/v1/leases/{0}?token=TOKEN"),
    "release": ("DELETE", "/v1/leases/{0}?token=TOKEN"),
    "submit": ("POST", "/v1/queue/{0}"),
    "requests": ("GET", "/v1/queue/{0}"),
    "accept": ("POST", "/v1/requests/REQUEST_ID/accept"),
    "reject": ("POST", "/v1/requests/REQUEST_ID/reject"),
    "fork": ("POST", "/v1/branches/{0}"),
    "merge": ("POST", "/v1/merges/{0}"),
    "branches": ("GET", "/v1/branches/{0}"),
    "export_history": ("GET", "/v1/history"),
    "history": ("GET", "/v1/history"),
    "check": ("POST", "/v1/check"),
    "plan": ("GET", "/v1/plan"),
}

_HTTP_SPECIAL: dict[str, Callable[[list[Any], dict[str, Any]], str]] = {
    "update": lambda args, kwargs: (
        f"GET /v1/keys/{_http_value(args[0]) if args else 'KEY'}, then PUT "
        f"/v1/keys/{_http_value(args[0]) if args else 'KEY'} with If-Match: "
        '"<the version read>" (again on a 412)'
    ),
    "open": lambda args, kwargs: "the options of the server's store (accord serve)",
    "session": lambda args, kwargs: "your agent's token (Authorization: Bearer TOKEN)",
    "request.wait": lambda args, kwargs: "GET /v1/requests/REQUEST_ID?wait=SECONDS",
    "branch.write": lambda args, kwargs: "PUT /v1/branches/KEY?id=BRANCH_ID",
    "branch.read": lambda args, kwargs: "GET /v1/branches/KEY",
    "branch.discard": lambda args, kwargs: "DELETE /v1/branches/KEY?id=BRANCH_ID",
}


def _http_call(op: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    name = op if op in _HTTP_SPECIAL or op in _HTTP_REQUESTS else op.rsplit(".", 1)[-1]
    if name in _HTTP_SPECIAL:
        return _HTTP_SPECIAL[name](args, kwargs)
    request = _HTTP_REQUESTS.get(name)
    if request is None:
        return f"{_py_call(op, args, kwargs)} (in the Python API)"
    method, path = request
    first = _http_value(args[0]) if args else "KEY"
    text = f"{method} {path.replace('{0}', first)}"
    options = [_http_option(k, v) for k, v in kwargs.items() if v is not False]
    if options:
        text += " with " + " and ".join(options)
    return text


class AccordError(Exception):
    """Root of every error accord raises.

    ``exit_code`` is the CLI exit code for this kind of error. ``message``
    (and ``str(exc)``) is the message in the Python API's words;
    ``render(surface)`` gives it in the words of another surface (see the
    module docstring), ``template`` with its markup.
    """

    exit_code = 2

    def __init__(self, message: str, **details: Any) -> None:
        self.template = message
        self.message = render(message)
        super().__init__(self.message)
        for name, value in details.items():
            setattr(self, name, value)
        self._details = details

    def render(self, surface: str = "python") -> str:
        """The message in the words of ``surface``: ``"python"``, ``"cli"``, ``"mcp"`` or
        ``"http"``."""
        return render(self.template, surface)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.template, self._details))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[AccordError], message: str, details: dict[str, Any]) -> AccordError:
    return cls(message, **details)


class UsageError(AccordError):
    """The call itself is wrong: fix the arguments and call again."""

    exit_code = 1


class InvalidKey(UsageError):
    """A key breaks the key rules (see ``accord.keys``)."""


class InvalidValue(UsageError, TypeError):
    """A value of a type accord cannot store (use str, bytes or JSON data)."""


class ValueTooLarge(UsageError):
    """A value is larger than the store's limit; nothing was written."""


class ManifestError(UsageError):
    """The manifest (accord.toml) is malformed or inconsistent."""


class HistoryFormatError(UsageError):
    """A history file is malformed; the message names the line."""


class NotFound(AccordError):
    """The key (or request, branch, lease) does not exist."""

    exit_code = 3


class PreconditionFailed(AccordError):
    """A write was refused before anything was applied."""

    exit_code = 3


class Conflict(PreconditionFailed):
    """The version moved since the caller read it.

    Attributes: ``key``, ``expected`` (the version the caller wrote against),
    ``current`` (the version now), ``writers`` (list of ``(version, agent)``
    for the versions in between), ``value`` (the current value, or None when
    the key is absent), ``diff`` (text: what changed since ``expected``).
    """

    key: str
    expected: int
    current: int
    writers: list[tuple[int, str]]
    value: Any
    diff: str


class PreconditionRequired(PreconditionFailed):
    """A write to an existing key without ``expect``, ``lease`` or ``force``."""


class IdempotencyMismatch(PreconditionFailed):
    """An idempotency key was reused with a different payload."""


class NotWriter(PreconditionFailed):
    """Only the queue's writer may write this key; submit a change request."""


class NotOwner(PreconditionFailed):
    """A branch written or discarded by an agent other than the one that forked it.

    Attributes: ``key``, ``branch`` (its id), ``owner``, ``agent`` (who tried).
    """


class PolicyViolation(PreconditionFailed):
    """The manifest does not allow this operation."""


class RetriesExhausted(PreconditionFailed):
    """``update()`` lost every attempt to concurrent writers."""


class LeaseError(AccordError):
    """Base of lease and fencing errors."""

    exit_code = 4


class LeaseTimeout(LeaseError):
    """The lease was not granted within ``wait`` seconds."""


class LeaseLost(LeaseError):
    """The lease expired or was superseded; the holder must stop writing."""


class Fenced(LeaseError):
    """A write carried a lease that is no longer the key's live lease."""


class LeaseHeld(LeaseError):
    """A write or delete of a key while a lease on it is live, without
    carrying a live exclusive lease of that key; nothing was written.

    Attributes: ``key``, ``holder`` (the agent holding the lease, or the
    first of several shared holders), ``token`` (its fencing token),
    ``mode``, ``expires`` (its deadline, seconds since the epoch on the
    store's clock), ``holders`` (every live lease: dicts of ``agent``,
    ``token``, ``mode``, ``expires``). Wait for the lease with
    ``session.acquire(key, wait=...)`` (CLI: ``accord lease acquire KEY
    --wait SECONDS``), then re-read the key and write under your lease.
    """


class Deadlock(LeaseError):
    """Waiting would close a cycle of agents waiting for each other."""


class Timeout(AccordError):
    """A wait ran out before anything was decided."""

    exit_code = 4


class BackendUnavailable(AccordError):
    """The store cannot be reached or used; the message says what is known."""

    exit_code = 2


for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, AccordError):
        _cls.__module__ = "accord"
