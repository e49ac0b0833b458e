"""The numbers and flags public calls take, checked in one place with one wording.

Every timeout, TTL, wait, backoff and window goes through :func:`seconds`;
every count (retries, batch, limit, sizes) through :func:`count`; every
version (``expect=``) through :func:`version`; every on/off argument
(``force``, ``keepalive``, ``record_reads``) through :func:`flag`. Each
refuses what would otherwise be taken silently for something else: a
boolean where a number belongs (``expect=True`` is not version 1), a truthy
string where a bool belongs (``force="no"`` is not a blind write), text
(``timeout="x"``), NaN (every comparison with it is false, so a wait
bounded by it never ends), infinities where a bound is needed, negatives.
Each raises :class:`~accord.UsageError` saying which argument, what it got,
and what to pass instead; nothing has been changed when it does.
"""

from __future__ import annotations

import math

from .errors import UsageError, argument, option, var

__all__ = ["count", "flag", "seconds", "version"]


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _example(text: str) -> int | float:
    # The example as a number, so Python shows ``ttl=30`` (not ``ttl='30'``).
    return float(text) if "." in text else int(text)


def seconds(
    value: object,
    name: str,
    *,
    minimum: float = 0.0,
    maximum: float | None = None,
    above: bool = False,
    example: str = "5",
    hint: str = "",
    unit: str = "seconds",
) -> float:
    """``value`` as a float number of seconds, or :class:`UsageError`.

    Accepts int and float (not bool), finite, at least ``minimum`` (more
    than it with ``above``) and at most ``maximum``. ``example`` is shown in
    the message (``name=example``); ``hint`` is added to a range error;
    ``unit`` names what the number counts (``""`` for a plain number).
    """
    what = f"a number of {unit}" if unit else "a number"
    if not _number(value):
        raise UsageError(
            f"{argument(name)} must be {what}, not {value!r} "
            f"({type(value).__name__}). Pass, say, {option(name, _example(example))}. "
            "Nothing was changed.",
            argument=name,
        )
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        raise UsageError(
            f"{argument(name)} must be {what}, not NaN. Pass, say, "
            f"{option(name, _example(example))}. Nothing was changed.",
            argument=name,
        )
    low_ok = number > minimum if above else number >= minimum
    if not low_ok or (maximum is not None and number > maximum) or math.isinf(number):
        low = f"more than {minimum:g}" if above else f"at least {minimum:g}"
        high = f" and at most {maximum:g}" if maximum is not None else ""
        raise UsageError(
            f"{option(name, value)} is out of range: use a finite {what[2:]}, {low}{high}."
            + (f" {hint}" if hint else "")
            + " Nothing was changed.",
            argument=name,
        )
    return number


def count(
    value: object, name: str, *, minimum: int = 0, maximum: int | None = None, example: str = "8"
) -> int:
    """``value`` as an int (not bool) from ``minimum`` to ``maximum``, or :class:`UsageError`."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise UsageError(
            f"{argument(name)} must be a whole number, not {value!r} ({type(value).__name__}). "
            f"Pass, say, {option(name, _example(example))}. Nothing was changed.",
            argument=name,
        )
    if value < minimum or (maximum is not None and value > maximum):
        high = f" and at most {maximum}" if maximum is not None else ""
        raise UsageError(
            f"{option(name, value)} is out of range: use a whole number, at least "
            f"{minimum}{high}. "
            "Nothing was changed.",
            argument=name,
        )
    return value


def version(value: object, name: str = "expect") -> int:
    """``value`` as a version to compare with (an int >= 0, not bool), or :class:`UsageError`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(
            f"{argument(name)} must be a version number >= 0 (0: the key must be absent), not "
            f"{value!r}. Read the key and pass its version, "
            f"{option(name, var('the version you read'))}. Nothing was changed.",
            argument=name,
        )
    return value


def flag(value: object, name: str) -> bool:
    """``value`` if it is a bool, else :class:`UsageError` (``"no"`` is not False)."""
    if not isinstance(value, bool):
        raise UsageError(
            f"{argument(name)} must be True or False, not {value!r} ({type(value).__name__}). "
            "Nothing was changed.",
            argument=name,
        )
    return value
