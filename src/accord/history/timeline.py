"""The picture: one lane per agent over time, drawn with matplotlib.

Reads are hollow circles, committed writes filled squares labelled with
their version, refused writes (conflict, fenced) crosses; in a foreign
history a cas is labelled ``expect→value``, an append ``+value``, and an
operation whose outcome is unknown (``info``) is a hollow square marked
``?``. A bar under each
write spans its read-think-write window: from the read of the version it was
based on (solid), or, when reads were not recorded, from the moment that
version was committed (dotted: the read happened somewhere in there). An
arrow runs from each write back to the version it was based on. The writes
a lost update erased, the erasing write and both agents' windows are red,
and the span in which both agents held the same version is shaded and
labelled: the classic lost-update diagram, generated from data. Other
anomalies are orange; for ``nonlinearizable`` the span in which one of the
operations that cannot follow the longest linearizable prefix had to happen
is shaded.

``draw(events, result, path)`` writes ``.svg``, ``.png`` or ``.html`` (an
HTML page with the SVG inline and the checker's explanations below it).
matplotlib is an optional dependency: ``pip install 'accord[timeline]'``.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .format import parse_time
from .result import CheckResult

FORMATS = (".svg", ".png", ".html")
MAX_LABELS = 160

RED = "#d62728"
GREY = "#7f7f7f"
BLUE = "#1f77b4"
GREEN = "#2ca02c"
ORANGE = "#ff7f0e"


def ensure_format(path: str) -> None:
    """Raise :class:`UsageError` unless ``path`` ends in .svg, .png or .html and
    matplotlib can be imported."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise UsageError(
            f"Cannot draw a timeline to {path!r}: name a file ending in .svg, .png or .html."
        )
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:  # pragma: no cover - matplotlib is a dev dependency
        raise UsageError(
            "Drawing the timeline needs matplotlib: pip install 'accord[timeline]'."
        ) from exc


@dataclass
class Mark:
    """One operation on the picture."""

    agent: str
    kind: str  # read, write, refused, other
    key: str
    start: float
    end: float
    label: str
    rev: int | None = None
    line: int | None = None
    version: int | None = None
    based_on: int | None = None
    ident: str | None = None
    color: str = ""
    bar_start: float | None = None
    bar_solid: bool = True
    basis: Mark | None = None
    notes: list[str] = field(default_factory=list)


def _marks(events: list[dict[str, Any]]) -> list[Mark]:
    marks: list[Mark] = []
    foreign = bool(events) and "rev" not in events[0]
    writes: dict[tuple[str, Any], Mark] = {}
    last_read: dict[tuple[str, str], Mark] = {}
    by_ident: dict[tuple[str, str], list[Mark]] = {}
    ordered = events
    if foreign:
        ordered = sorted(events, key=lambda e: _t(e.get("start", e.get("time"))) or 0.0)
    for ev in ordered:
        agent = str(ev.get("agent", "?"))
        op = str(ev.get("op", "?"))
        key = str(ev.get("key") or "")
        if foreign:
            start = _t(ev.get("start", ev.get("time"))) or 0.0
            end = _t(ev.get("end", ev.get("time"))) or start
        else:
            start = end = _t(ev.get("time")) or 0.0
        outcome = ev.get("outcome", "ok")
        if outcome is None or outcome is True:
            outcome = "ok"
        version = ev.get("version")
        if op == "read":
            kind = "read" if outcome == "ok" else "refused"
        elif op in ("write", "delete", "accept", "merge", "cas", "append"):
            if foreign and outcome == "info":
                kind = "info"
            elif outcome == "ok" and (foreign or version is not None):
                kind = "write"
            else:
                kind = "refused"
        else:
            kind = "other"
        ident = None
        if foreign:
            ident = str(ev.get("hash", ev.get("value")))
            value = ev.get("value", ev.get("hash"))
            label = _short(value) if value is not None else "absent"
            if op == "cas":
                label = f"{_short(ev.get('expect'))}→{label}"
            elif op == "append":
                label = f"+{label}"
            if kind == "info":
                label += "?"
        elif kind == "write":
            label = f"v{version}" if op != "delete" else f"del v{version}"
        elif kind == "read":
            label = f"r v{version}" if version else "r absent"
        elif kind == "refused":
            label = str(outcome)
        else:
            label = op.replace("lease_", "lease ")
        m = Mark(
            agent=agent,
            kind=kind,
            key=key,
            start=start,
            end=end,
            label=label,
            rev=ev.get("rev"),
            line=ev.get("line"),
            version=version if isinstance(version, int) else None,
            based_on=ev.get("based_on") if isinstance(ev.get("based_on"), int) else None,
            ident=ident,
        )
        marks.append(m)
        if kind == "read":
            last_read[(agent, key)] = m
            if foreign:
                cands = by_ident.get((key, ident or ""), [])
                m.basis = cands[-1] if len(cands) == 1 else None
        elif kind == "write":
            if foreign:
                # A blind write, a cas and an append are built on nothing the
                # agent read earlier: no read-think-write window to draw.
                r = last_read.get((agent, key))
                if r is not None and op == "write" and ev.get("blind") is not True:
                    m.bar_start = r.start
                    m.basis = r.basis
                by_ident.setdefault((key, ident or ""), []).append(m)
                last_read[(agent, key)] = m
            else:
                if m.based_on:
                    m.basis = writes.get((key, m.based_on))
                    r = last_read.get((agent, key))
                    if r is not None and r.version == m.based_on:
                        m.bar_start = r.start
                    elif m.basis is not None:
                        m.bar_start = m.basis.end
                        m.bar_solid = False
                writes[(key, m.version)] = m
    return marks


def _short(value: Any) -> str:
    label = " ".join(str(value).split()) if value is not None else "null"
    return label if len(label) <= 12 else label[:11] + "…"


def _t(value: Any) -> float | None:
    try:
        return parse_time(value)
    except ValueError:
        return None


def figure(events: list[dict[str, Any]], result: CheckResult | None = None) -> Any:
    """Build the matplotlib Figure of ``events`` (dicts), highlighting ``result``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    marks = _marks(events)
    if not marks:
        raise UsageError("There are no events to draw.")
    agents = list(dict.fromkeys(m.agent for m in marks))
    lane = {a: len(agents) - 1 - i for i, a in enumerate(agents)}
    t0 = min(m.start for m in marks)
    span = max(m.end for m in marks) - t0
    scale, unit = (1000.0, "ms") if span < 2 else (1.0, "s")

    def x(t: float) -> float:
        return (t - t0) * scale

    by_rev = {m.rev: m for m in marks if m.rev is not None}
    by_line = {m.line: m for m in marks if m.line is not None}

    def find(ev: dict[str, Any]) -> Mark | None:
        if ev.get("rev") is not None and ev["rev"] in by_rev:
            return by_rev[ev["rev"]]
        if ev.get("line") is not None:
            return by_line.get(ev["line"])
        return None

    red_marks: set[int] = set()
    red_bars: set[int] = set()
    orange: set[int] = set()
    windows: list[tuple[float, float, str, str]] = []
    if result is not None:
        for anomaly in result.anomalies + result.unknown:
            involved = [m for m in (find(e) for e in anomaly.events) if m is not None]
            if anomaly.name == "lost-update":
                for m in involved:
                    red_marks.add(id(m))
                    red_bars.add(id(m))
                if involved:
                    involved[-1].notes.append(
                        "erased " + ", ".join(f"{i.agent}'s {i.label}" for i in involved[:-1])
                        if len(involved) > 1
                        else "lost update"
                    )
                    for m in involved[:-1]:
                        m.notes.append("erased")
                if anomaly.window and anomaly.window[0]:
                    lo, hi = _t(anomaly.window[0]), _t(anomaly.window[1])
                    if lo is not None and hi is not None:
                        label = "lost update" if anomaly.certain else "lost update?"
                        windows.append((x(lo), x(hi), label, RED))
            else:
                for m in involved:
                    orange.add(id(m))
                    m.notes.append(anomaly.name)
                if anomaly.name == "nonlinearizable" and anomaly.window:
                    # The span in which one of the operations that cannot
                    # follow the longest linearizable prefix had to happen.
                    lo, hi = _t(anomaly.window[0]), _t(anomaly.window[1])
                    if lo is not None and hi is not None:
                        label = "nonlinearizable" if anomaly.certain else "nonlinearizable?"
                        windows.append((x(lo), x(hi), label, ORANGE))

    height = 1.2 + 0.9 * len(agents)
    width = min(18.0, max(8.0, 0.35 * len(marks) + 4))
    fig, ax = plt.subplots(figsize=(width, height))
    for lo, hi, label, shade in windows:
        ax.axvspan(lo, max(hi, lo + span * scale * 0.002), color=shade, alpha=0.12, lw=0)
        ax.text(lo, len(agents) - 0.45, label, color=shade, fontsize=8, va="bottom")
    for agent in agents:
        ax.axhline(lane[agent], color="#dddddd", lw=0.8, zorder=0)
    show_labels = len(marks) <= MAX_LABELS
    for m in marks:
        y = lane[m.agent]
        # A dense picture keeps only the windows and arrows of anomalies:
        # hundreds of grey arrows would hide the red ones.
        detail = show_labels or id(m) in red_bars or id(m) in orange
        if m.kind == "write" and m.bar_start is not None and detail:
            color = RED if id(m) in red_bars else GREY
            ax.plot(
                [x(m.bar_start), x(m.end)],
                [y - 0.18, y - 0.18],
                color=color,
                lw=3 if m.bar_solid else 1.5,
                ls="-" if m.bar_solid else ":",
                alpha=0.7,
                solid_capstyle="butt",
            )
        if m.kind == "write" and m.basis is not None and detail:
            b = m.basis
            ax.annotate(
                "",
                xy=(x(b.end), lane[b.agent]),
                xytext=(x(m.end), y),
                arrowprops={
                    "arrowstyle": "->",
                    "color": RED if id(m) in red_marks else "#9a9a9a",
                    "lw": 0.9,
                    "connectionstyle": "arc3,rad=0.25",
                    "shrinkA": 5,
                    "shrinkB": 5,
                },
            )
        if m.end > m.start:
            ax.plot([x(m.start), x(m.end)], [y, y], color="#444444", lw=1, alpha=0.6)
        color = (
            RED
            if id(m) in red_marks
            else ORANGE
            if id(m) in orange
            else BLUE
            if m.kind == "read"
            else GREEN
            if m.kind in ("write", "info")
            else GREY
        )
        z = 4 if color in (RED, ORANGE) else 3
        if m.kind == "read":
            ax.plot(x(m.end), y, "o", mfc="white", mec=color, mew=1.5, ms=7, zorder=z)
        elif m.kind == "write":
            ax.plot(x(m.end), y, "s", color=color, ms=8, zorder=z)
        elif m.kind == "info":
            # Outcome unknown: it may have taken effect, or not.
            ax.plot(x(m.end), y, "s", mfc="white", mec=color, mew=1.5, ms=8, zorder=z)
        elif m.kind == "refused":
            ax.plot(x(m.end), y, "x", color=GREY, ms=8, mew=2)
        else:
            ax.plot(x(m.end), y, "d", color=GREY, ms=5)
        if show_labels:
            text = m.label if len({mm.key for mm in marks}) == 1 else f"{m.key}\n{m.label}"
            ax.annotate(
                text,
                (x(m.end), y),
                xytext=(0, 8),
                textcoords="offset points",
                ha="center",
                fontsize=7,
                color=color if color in (RED, ORANGE) else "#333333",
            )
            if m.notes and color in (RED, ORANGE):
                ax.annotate(
                    "; ".join(dict.fromkeys(m.notes)),
                    (x(m.end), y),
                    xytext=(0, -22),
                    textcoords="offset points",
                    ha="center",
                    fontsize=7,
                    color=color,
                )
    ax.set_yticks([lane[a] for a in agents])
    ax.set_yticklabels(agents)
    ax.set_ylim(-0.8, len(agents) - 0.2)
    ax.set_xlabel(f"time ({unit}) since the first event")
    title = "history timeline"
    if result is not None:
        title += f": {result.summary()}"
    ax.set_title(title, fontsize=9, loc="left")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def draw(events: list[dict[str, Any]], result: CheckResult | None, path: str) -> str:
    """Draw ``events`` (with ``result``'s anomalies highlighted) to ``path``; returns it.

    The format follows the suffix: ``.svg``, ``.png`` or ``.html``.
    """
    ensure_format(path)
    import matplotlib.pyplot as plt

    fig = figure(events, result)
    suffix = Path(path).suffix.lower()
    try:
        if suffix == ".html":
            buf = io.StringIO()
            fig.savefig(buf, format="svg")
            Path(path).write_text(_html(buf.getvalue(), result), encoding="utf-8")
        else:
            fig.savefig(path, dpi=150 if suffix == ".png" else None)
    finally:
        plt.close(fig)
    return path


def draw_history(events: list[dict[str, Any]], path: str) -> tuple[str, CheckResult | None]:
    """Check ``events`` and draw them to ``path``; returns (path, result)."""
    from .check import check

    result = check(events) if events else None
    return draw(events, result, path), result


def _html(svg: str, result: CheckResult | None) -> str:
    svg = svg[svg.find("<svg") :]
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>accord timeline</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
        "li{margin:.6em 0}.n{font-weight:bold;color:#d62728}.u{color:#b8860b}</style>",
        "</head><body><h1>accord timeline</h1>",
    ]
    if result is not None:
        parts.append(f"<p>{html.escape(result.summary())}</p>")
    parts.append(svg)
    if result is not None and (result.anomalies or result.unknown):
        parts.append("<h2>What the checker found</h2><ol>")
        for a in result.anomalies + result.unknown:
            cls = "n" if a.certain else "u"
            name = a.name if a.certain else a.name + " (unknown)"
            parts.append(
                f"<li><span class='{cls}'>{html.escape(name)}</span> on "
                f"{html.escape(a.key or '')}: {html.escape(a.explanation)}</li>"
            )
        parts.append("</ol>")
    parts.append("</body></html>")
    return "\n".join(parts)
