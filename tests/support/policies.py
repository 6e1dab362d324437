"""Policy files on disk, as the daemon reads them."""

from __future__ import annotations

from pathlib import Path


def write_rules(tmp_path: Path, text: str) -> Path:
    """``text`` as ``<tmp_path>/policies/rules.yaml``; returns the policies directory."""
    d = tmp_path / "policies"
    d.mkdir(exist_ok=True)
    (d / "rules.yaml").write_text(text, encoding="utf-8")
    return d
