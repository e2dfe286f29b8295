"""Where the install sets resolve: platforms/resolution.json against CLAIMS, pyproject.toml and README.

The record is written by ``python scripts/resolve_platforms.py`` (uv and the package index); these tests
only read it, offline.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
RERUN = "run `python scripts/resolve_platforms.py`"


def _load_script() -> Any:
    spec = importlib.util.spec_from_file_location("resolve_platforms", ROOT / "scripts" / "resolve_platforms.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


rp = _load_script()
RECORD: dict[str, Any] = json.loads(rp.RESULT.read_text())


def _statuses(record: dict[str, Any]) -> dict[str, dict[str, dict[str, str]]]:
    """{install set: {platform label: {python: status}}}, the shape README's matrix parses to."""
    labels = {p: record["platforms"][p]["label"] for p in record["platforms"]}
    return {s: {labels[p]: {py: c["status"] for py, c in by_py.items()} for p, by_py in row.items()} for s, row in record["cells"].items()}


def test_record_was_resolved_from_this_pyproject() -> None:
    assert RECORD["pyproject_sha256"] == rp.pyproject_fingerprint(), (
        f"pyproject.toml's dependencies changed since platforms/resolution.json was recorded: {RERUN}"
    )


def test_record_covers_every_cell() -> None:
    assert (list(RECORD["cells"]), list(RECORD["platforms"]), RECORD["pythons"]) == (
        list(rp.INSTALL_SETS),
        list(rp.PLATFORMS),
        list(rp.PYTHONS),
    ), f"a partial or outdated record: {RERUN}"
    for s, row in RECORD["cells"].items():
        for p, by_py in row.items():
            for py, cell in by_py.items():
                assert cell["status"] in (rp.OK, rp.OK_UV, rp.OK_PIP, rp.FAIL), (s, p, py)
                resolved = cell["pip"] if cell["pip"]["resolves"] else cell["uv"]
                assert resolved.get("pins", {}).get("torch") or cell["status"] == rp.FAIL, (s, p, py)


@pytest.mark.parametrize(
    ("install_set", "platform", "python", "installer"), rp.claimed_cells(), ids=lambda v: v if isinstance(v, str) else None
)
def test_claimed_cell_resolves(install_set: str, platform: str, python: str, installer: str) -> None:
    cell = RECORD["cells"][install_set][platform][python]
    assert rp.claim_holds(cell["status"], installer), (
        f"[{install_set}] on {rp.PLATFORMS[platform].label} / Python {python} is promised with {installer} "
        f"but recorded {cell['status']}: {cell['reason']}"
    )


def test_readme_block_round_trips() -> None:
    """The matrix the script writes parses back to the record (so the README check below means something)."""
    assert rp.parse_readme_matrix(rp.readme_block(RECORD)) == _statuses(RECORD)


def test_readme_platform_matrix_matches_the_record() -> None:
    readme = (ROOT / "README.md").read_text()
    if rp.START not in readme:
        pytest.fail(
            f"README.md has no {rp.START} block: run python scripts/resolve_platforms.py --from-json --write-readme after adding the markers",
            pytrace=False,
        )
    claimed, recorded = rp.parse_readme_matrix(readme), _statuses(RECORD)
    wrong = [
        f"[{s}] {label} {py}: README {claimed.get(s, {}).get(label, {}).get(py)}, recorded {status}"
        for s, row in recorded.items()
        for label, by_py in row.items()
        for py, status in by_py.items()
        if claimed.get(s, {}).get(label, {}).get(py) != status
    ]
    extra = sorted(set(claimed) - set(recorded))
    assert not wrong and not extra, (
        f"README's platform matrix disagrees with platforms/resolution.json ({'; '.join(wrong[:3]) or extra}): "
        "run `python scripts/resolve_platforms.py --from-json --write-readme`"
    )
