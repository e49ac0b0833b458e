"""The author/critic example runs and keeps its promise (no comment lost or doubled)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "author_critic.py"


@pytest.mark.slow
def test_author_critic_example(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--store", url],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "OK: 6 requests, 5 folded in once each, 1 rejected" in result.stdout
    assert result.stdout.count("NotWriter, as expected") == 2
