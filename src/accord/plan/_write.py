"""A manifest written as accord.toml text (``accord plan --write-manifest``)."""

from __future__ import annotations

import os
import re
import textwrap
from collections.abc import Mapping
from pathlib import Path

from ..errors import ManifestError
from ..policy.manifest import Manifest, toml_string
from ._plan import Plan


def manifest_to_toml(
    manifest: Manifest, *, header: str = "", comments: Mapping[str, str] | None = None
) -> str:
    """``manifest`` as accord.toml text (what ``--write-manifest`` writes).

    Recommended strategies are written explicitly, so the file passes
    ``accord plan --check``; ``comments`` (by resource key) are written above
    each resource, so a reviewer sees where each strategy came from.
    """
    lines: list[str] = []
    if header:
        lines.extend(f"# {line}".rstrip() for line in header.splitlines())
        lines.append("")
    if manifest.store_url:
        lines += ["[store]", f"url = {toml_string(manifest.store_url)}", ""]
    for agent, info in manifest.agents.items():
        lines.append(f"[agents.{_key(agent)}]")
        for name, value in info.items():
            lines.append(f"{name} = {toml_string(str(value))}")
    if manifest.agents:
        lines.append("")
    for res in manifest.resources:
        comment = (comments or {}).get(res.key)
        if comment:
            lines.extend(f"# {line}".rstrip() for line in textwrap.wrap(comment, 86))
        lines.append("[[resource]]")
        lines.append(f"key = {toml_string(res.key)}")
        if res.description:
            lines.append(f"description = {toml_string(res.description)}")
        if res.strategy:
            lines.append(f"strategy = {toml_string(res.strategy)}")
        if res.strategy in ("owner", "queue") and res.writer is not None:
            lines.append(f"writer = {toml_string(res.writer)}")
        elif res.writers:
            lines.append(f"writers = {_toml_list(res.writers.to_toml())}")
        if res.readers:
            lines.append(f"readers = {_toml_list(res.readers.to_toml())}")
        if res.submitters:
            lines.append(f"submitters = {_toml_list(res.submitters.to_toml())}")
        for name, value in res.hints().items():
            shown = str(value).lower() if isinstance(value, bool) else toml_string(str(value))
            lines.append(f"{name} = {shown}")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _toml_list(items: list[str]) -> str:
    return "[" + ", ".join(toml_string(i) for i in items) + "]"


def _key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else toml_string(name)


def write_manifest(
    manifest: Manifest,
    path: str | os.PathLike[str],
    *,
    source: str,
    plan: Plan | None = None,
) -> None:
    """Write ``manifest`` to ``path`` as TOML; refuses to overwrite an existing file.

    With ``plan`` (the plan of the same history), each resource gets a
    comment saying whether its strategy is in use or recommended, and why.
    """
    target = Path(path)
    if target.exists():
        raise ManifestError(
            f"{target} already exists; not overwriting it. Remove it or name another path.",
            path=str(target),
        )
    header = (
        f"Starting manifest built by `accord plan --from-history {source}`.\n"
        "Review every resource: the comment above each says whether its strategy is what\n"
        "the agents used (in use) or the protocol's recommendation. See docs/protocol.md."
    )
    comments = {}
    for row in plan.rows if plan is not None else []:
        comments[row.resource.key] = f"{row.strategy} ({row.origin}): {row.why}"
    target.write_text(
        manifest_to_toml(manifest, header=header, comments=comments), encoding="utf-8"
    )
