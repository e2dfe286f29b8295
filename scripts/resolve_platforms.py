"""Which install sets of shvit-mobile resolve as wheels on which platform and Python.

The extras pin converters that publish wheels for a few platforms only (coreai-core: macOS 26 arm64 and
Linux x86_64 glibc 2.34; no aarch64 Linux coremltools or onnxoptimizer), and ``[tflite]`` with
``[coreai]`` share an environment only through ``[tool.uv] override-dependencies``. Nobody can check
that on one machine, so this asks ``uv pip compile`` (wheels only, cross-platform) for every cell, once
without the override (what plain pip can install) and once with it (what uv installs), and records the
result in ``platforms/resolution.json``. ``tests/test_platforms.py`` checks that record against
``CLAIMS`` and README's matrix offline; this script is the only thing that needs the package index.

    python scripts/resolve_platforms.py                         # resolve, print, write the JSON
    python scripts/resolve_platforms.py --check                 # resolve, exit 1 if a claim fails
    python scripts/resolve_platforms.py --from-json --write-readme   # README's matrix from the JSON
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
RESULT = ROOT / "platforms" / "resolution.json"
README = ROOT / "README.md"
START, END = "<!-- platforms:start -->", "<!-- platforms:end -->"


@dataclass(frozen=True)
class Platform:
    label: str
    uv_platform: str
    macos: str | None = None  # MACOSX_DEPLOYMENT_TARGET: the macOS whose wheel tags uv accepts


PLATFORMS: dict[str, Platform] = {
    "macos14-arm64": Platform("macOS 14 arm64", "aarch64-apple-darwin", "14.0"),
    "macos26-arm64": Platform("macOS 26 arm64", "aarch64-apple-darwin", "26.0"),
    "linux-x86_64-glibc2.28": Platform("Linux x86_64 glibc 2.28", "x86_64-manylinux_2_28"),
    "linux-x86_64-glibc2.34": Platform("Linux x86_64 glibc 2.34", "x86_64-manylinux_2_34"),
    "linux-aarch64-glibc2.34": Platform("Linux aarch64 glibc 2.34", "aarch64-manylinux_2_34"),
}
PYTHONS = ("3.12", "3.13")
INSTALL_SETS: dict[str, tuple[str, ...]] = {
    "base": (),
    "coreml": ("coreml",),
    "tflite": ("tflite",),
    "coreai": ("coreai",),
    "coreml,tflite": ("coreml", "tflite"),
    "coreml,coreai": ("coreml", "coreai"),
    "all": ("all",),
}
KEY_PACKAGES = (
    "torch",
    "numpy",
    "onnx",
    "onnxruntime",
    "coremltools",
    "onnx2tf",
    "tensorflow",
    "ai-edge-litert",
    "coreai-core",
    "coreai-torch",
    "coreai-opt",
    "protobuf",
)

OK, OK_UV, OK_PIP, FAIL = "ok", "ok (uv)", "ok (pip)", "✗"
"""Cell statuses: resolves without the override (plain pip can install it), only with it (needs uv),
only without it (uv would fail where pip works), or not at all."""

# What the project promises (README's "Platforms"): install set -> (platforms, installer). "pip" means
# the set resolves without [tool.uv]'s override, so plain pip installs it; "uv" accepts either.
# Both Pythons. Checked by --check (freshly resolved) and by tests/test_platforms.py (the JSON).
_ALL_BUT_AARCH64 = tuple(p for p in PLATFORMS if p != "linux-aarch64-glibc2.34")
_COREAI = ("macos26-arm64", "linux-x86_64-glibc2.34")  # where coreai-core 1.0.0b3 has wheels
CLAIMS: dict[str, tuple[tuple[str, ...], str]] = {
    "base": (tuple(PLATFORMS), "pip"),
    "coreml": (_ALL_BUT_AARCH64, "pip"),
    "tflite": (_ALL_BUT_AARCH64, "pip"),
    "coreml,tflite": (_ALL_BUT_AARCH64, "pip"),
    "coreai": (_COREAI, "pip"),
    "coreml,coreai": (_COREAI, "pip"),
    "all": (_COREAI, "uv"),
}


def claimed_cells() -> list[tuple[str, str, str, str]]:
    """(install set, platform, python, installer) for every promised cell."""
    return [(s, p, py, how) for s, (plats, how) in CLAIMS.items() for p in plats for py in PYTHONS]


def claim_holds(status: str, installer: str) -> bool:
    return status == OK or (installer == "uv" and status == OK_UV)


# --- pyproject.toml -------------------------------------------------------------------------------


def dependency_tables(pyproject: Path = PYPROJECT) -> dict[str, Any]:
    """The parts of pyproject.toml that decide a resolution."""
    data = tomllib.loads(pyproject.read_text())
    project = data.get("project", {})
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": project.get("dependencies", []),
        "optional-dependencies": project.get("optional-dependencies", {}),
        "tool.uv": data.get("tool", {}).get("uv", {}),
    }


def pyproject_fingerprint(pyproject: Path = PYPROJECT) -> str:
    canonical = json.dumps(dependency_tables(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _uv_settings(tool_uv: dict[str, Any], workdir: Path) -> tuple[list[str], list[str]]:
    """[tool.uv] as uv pip compile flags: (flags for both runs, flags for the override run only).

    Both runs pass --no-config, so a developer's own uv.toml cannot tilt the table, and the override is
    the only difference between them. A [tool.uv] key this does not know would silently drop out of
    the resolution, so it is refused instead.
    """
    common: list[str] = []
    override: list[str] = []
    for key, value in tool_uv.items():
        if key in ("override-dependencies", "constraint-dependencies"):
            path = workdir / f"{key}.txt"
            path.write_text("".join(f"{line}\n" for line in value))
            flag = "--override" if key == "override-dependencies" else "--constraint"
            (override if key == "override-dependencies" else common).extend([flag, str(path)])
        elif key in ("prerelease", "resolution", "fork-strategy", "exclude-newer", "index-strategy"):
            common.extend([f"--{key}", str(value)])
        else:
            raise SystemExit(f"resolve_platforms.py does not pass [tool.uv] {key!r} on to uv pip compile; teach _uv_settings() it")
    return common, override


# --- running uv -----------------------------------------------------------------------------------

_SOLVER_FAILURE = "No solution found"
_DROPPED_ENV = (
    "UV_OVERRIDE",
    "UV_CONSTRAINT",
    "UV_PRERELEASE",
    "UV_RESOLUTION",
    "UV_EXCLUDE_NEWER",
    "UV_NO_BINARY",
    "UV_ONLY_BINARY",
    "UV_CONFIG_FILE",
    "MACOSX_DEPLOYMENT_TARGET",
)


class UvError(RuntimeError):
    """uv failed for a reason other than an unsatisfiable resolution (network, usage)."""


def find_uv(explicit: str | None) -> str:
    uv = explicit or shutil.which("uv")
    if not uv:
        raise SystemExit("resolve_platforms.py needs uv on PATH: pip install uv")
    return uv


def uv_version(uv: str) -> str:
    out = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True).stdout.split()
    return out[1] if len(out) > 1 else " ".join(out)


def first_cause(stderr: str) -> str:
    """uv's first explanatory line ('Because X has no wheels ...'), whitespace-collapsed."""
    error = stderr[stderr.find("error:") :] if "error:" in stderr else stderr  # skip uv's warnings
    for line in error.splitlines():
        line = line.strip()
        if line.startswith("cause:"):
            return line.removeprefix("cause:").strip()
    lines = [ln.strip() for ln in error.splitlines() if ln.strip() and not ln.startswith("error:")]
    return lines[0] if lines else error.strip()


def short_reason(cause: str) -> str:
    """A few words for the table: which package lacks a wheel, or uv's sentence cut short."""
    m = re.search(r"Because (\S+?)==(\S+) has no (?:usable wheels|wheels with a matching platform tag)", cause)
    if m:
        return f"no {m.group(1)} {m.group(2)} wheel"
    m = re.search(r"Because ([A-Za-z0-9_.-]+)\S* depends on ([A-Za-z0-9_.-]+)==([^\s,]+)", cause)
    if m:
        return f"{m.group(1)} pins {m.group(2)} {m.group(3)}"
    return cause if len(cause) <= 60 else cause[:57].rstrip() + "..."


def compile_cell(uv: str, extras: tuple[str, ...], platform: Platform, python: str, flags: list[str]) -> dict[str, Any]:
    """One ``uv pip compile``: {'resolves': True, 'pins', 'packages'} or {'resolves': False, 'reason'}."""
    cmd = [
        uv,
        "pip",
        "compile",
        str(PYPROJECT),
        "--no-config",
        "--only-binary",
        ":all:",
        "--python-platform",
        platform.uv_platform,
        "--python-version",
        python,
        "--no-header",
        "--no-annotate",
        "--no-progress",
        "--no-python-downloads",
        *flags,
    ]
    for extra in extras:
        cmd += ["--extra", extra]
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    if platform.macos:
        env["MACOSX_DEPLOYMENT_TARGET"] = platform.macos
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if proc.returncode != 0:
        if _SOLVER_FAILURE not in proc.stderr:
            raise UvError(f"uv failed on {platform.label} / Python {python} / {extras or 'base'}:\n{proc.stderr.strip()}")
        return {"resolves": False, "reason": first_cause(proc.stderr)}
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", proc.stdout, re.M))
    pins = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in pins.items()}
    return {"resolves": True, "packages": len(pins), "pins": {k: pins[k] for k in KEY_PACKAGES if k in pins}}


def combine(pip: dict[str, Any], uv: dict[str, Any]) -> dict[str, Any]:
    """A cell from its two resolutions: without the override (pip) and with it (uv)."""
    if pip["resolves"] and uv["resolves"]:
        status, reason = OK, None
    elif uv["resolves"]:
        status, reason = OK_UV, pip["reason"]
    elif pip["resolves"]:
        status, reason = OK_PIP, uv["reason"]
    else:
        status, reason = FAIL, uv["reason"]
    cell: dict[str, Any] = {"status": status, "reason": reason, "short": short_reason(reason) if reason else None}
    return cell | {"pip": pip, "uv": uv}


def resolve(uv: str, sets: list[str], platforms: list[str], pythons: list[str], jobs: int) -> dict[str, Any]:
    tool_uv = dependency_tables()["tool.uv"]
    with tempfile.TemporaryDirectory(prefix="resolve-platforms-") as tmp:
        common, override = _uv_settings(tool_uv, Path(tmp))
        keys = [(s, p, py) for s in sets for p in platforms for py in pythons]
        jobs_list = [(k, mode) for k in keys for mode in ("pip", "uv")]

        def work(item: tuple[tuple[str, str, str], str]) -> dict[str, Any]:
            (s, p, py), mode = item
            return compile_cell(uv, INSTALL_SETS[s], PLATFORMS[p], py, common + (override if mode == "uv" else []))

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = list(pool.map(work, jobs_list))
    runs = dict(zip(jobs_list, results))
    cells: dict[str, Any] = {}
    for s, p, py in keys:
        cells.setdefault(s, {}).setdefault(p, {})[py] = combine(runs[((s, p, py), "pip")], runs[((s, p, py), "uv")])
    return {
        "generated_by": "python scripts/resolve_platforms.py",
        "uv_version": uv_version(uv),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "pyproject_sha256": pyproject_fingerprint(),
        "override": tool_uv.get("override-dependencies", []),
        "only_binary": ":all:",
        "platforms": {
            k: {"label": PLATFORMS[k].label, "uv_python_platform": PLATFORMS[k].uv_platform, "macosx_deployment_target": PLATFORMS[k].macos}
            for k in platforms
        },
        "pythons": pythons,
        "install_sets": {s: list(INSTALL_SETS[s]) for s in sets},
        "key_packages": list(KEY_PACKAGES),
        "statuses": {
            OK: "resolves without the override: plain pip installs it",
            OK_UV: "resolves only with [tool.uv] override-dependencies: needs uv",
            OK_PIP: "resolves only without the override",
            FAIL: "does not resolve as wheels",
        },
        "cells": cells,
    }


# --- tables ---------------------------------------------------------------------------------------


def set_label(name: str) -> str:
    return "`shvit-mobile`" if name == "base" else f"`[{name}]`"


def format_cell(by_python: dict[str, dict[str, Any]]) -> str:
    """'✓ 3.12, 3.13', '✓ 3.12, 3.13 (uv)', '✗ 3.12, 3.13: no X wheel'; mixed groups joined by '; '."""
    groups: dict[tuple[str, str | None], list[str]] = {}
    for py, cell in by_python.items():
        groups.setdefault((cell["status"], cell["short"] if cell["status"] == FAIL else None), []).append(py)
    parts = []
    for (status, short), pys in groups.items():
        mark = "✗" if status == FAIL else "✓"
        suffix = {OK_UV: " (uv)", OK_PIP: " (pip)"}.get(status, "")
        parts.append(f"{mark} {', '.join(pys)}{suffix}" + (f": {short}" if short else ""))
    return "; ".join(parts)


_SEGMENT = re.compile(r"^(✓|✗) ([0-9., ]+?)( \(uv\)| \(pip\))?(?::.*)?$")


def parse_cell(text: str) -> dict[str, str]:
    """format_cell's inverse, statuses only: {'3.12': 'ok', ...}."""
    out: dict[str, str] = {}
    for segment in text.split("; "):
        m = _SEGMENT.match(segment.strip())
        if not m:
            raise ValueError(f"unreadable platform cell {segment!r}")
        status = FAIL if m.group(1) == "✗" else {" (uv)": OK_UV, " (pip)": OK_PIP}.get(m.group(3) or "", OK)
        for py in m.group(2).split(","):
            out[py.strip()] = status
    return out


def matrix_markdown(result: dict[str, Any]) -> str:
    plats = list(result["platforms"])
    lines = ["| install | " + " | ".join(result["platforms"][p]["label"] for p in plats) + " |", "|---|" + "---|" * len(plats)]
    for s in result["cells"]:
        lines.append(f"| {set_label(s)} | " + " | ".join(format_cell(result["cells"][s][p]) for p in plats) + " |")
    return "\n".join(lines)


def readme_block(result: dict[str, Any]) -> str:
    return "\n".join(
        [
            START,
            matrix_markdown(result),
            "",
            f"✓ resolves as wheels with plain pip; ✓ (uv): only with uv and `[tool.uv]`'s numpy override; "
            f"✗: the first package uv found without a wheel. Resolved by `uv pip compile --only-binary :all:` "
            f"(uv {result['uv_version']}, {result['date'][:10]}); details in `platforms/resolution.json`.",
            END,
        ]
    )


def parse_readme_matrix(text: str) -> dict[str, dict[str, dict[str, str]]]:
    """README's block back to {install set: {platform label: {python: status}}}."""
    if START not in text or END not in text:
        raise LookupError(f"no {START} ... {END} block")
    block = text.split(START, 1)[1].split(END, 1)[0]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.splitlines() if line.strip().startswith("|")]
    header, body = rows[0], [r for r in rows[1:] if not set("".join(r)) <= set("-: ")]
    out: dict[str, dict[str, dict[str, str]]] = {}
    for row in body:
        m = re.fullmatch(r"`(?:shvit-mobile|\[([a-z0-9,]+)\])`", row[0])
        if not m:
            raise ValueError(f"unreadable install set {row[0]!r} in README's platform matrix")
        out[m.group(1) or "base"] = {label: parse_cell(cell) for label, cell in zip(header[1:], row[1:])}
    return out


def write_readme(result: dict[str, Any], readme: Path = README) -> None:
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"{readme.name} has no {START} ... {END} block to fill (add the markers where the table belongs)")
    head, rest = text.split(START, 1)
    readme.write_text(head + readme_block(result) + rest.split(END, 1)[1])


def console_table(result: dict[str, Any]) -> str:
    """Rows: install sets; columns: platform x Python; a failing cell points to its reason below."""
    plats, pys = list(result["platforms"]), result["pythons"]
    notes: list[str] = []
    rows = []
    for s in result["cells"]:
        row = ["base" if s == "base" else f"[{s}]"]
        for p in plats:
            for py in pys:
                cell = result["cells"][s][p][py]
                if cell["status"] == FAIL:
                    if cell["short"] not in notes:
                        notes.append(cell["short"])
                    row.append(f"✗ ({notes.index(cell['short']) + 1})")
                else:
                    row.append(cell["status"])
        rows.append(row)
    labels = [result["platforms"][p]["label"] for p in plats]
    width = max(9, *(len(c) for r in rows for c in r[1:]), *((len(lb) + 1) // len(pys) for lb in labels))
    first = max(len(r[0]) for r in rows)
    group = width * len(pys) + 2 * (len(pys) - 1)
    lines = [
        " " * first + "  " + "  ".join(lb.center(group) for lb in labels),
        "install".ljust(first) + "  " + "  ".join(py.ljust(width) for _ in plats for py in pys),
    ]
    lines += [r[0].ljust(first) + "  " + "  ".join(c.ljust(width) for c in r[1:]) for r in rows]
    lines += [""] + [f"({i}) {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(line.rstrip() for line in lines)


def failed_claims(result: dict[str, Any]) -> list[str]:
    bad = []
    for s, p, py, how in claimed_cells():
        cell = result["cells"].get(s, {}).get(p, {}).get(py)
        if cell is None:
            continue  # filtered out of this run
        if not claim_holds(cell["status"], how):
            why = cell["reason"] or cell["status"]
            bad.append(f"[{s}] on {PLATFORMS[p].label}, Python {py} (with {how}): {cell['status']} — {why}")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a cell CLAIMS promises does not resolve (does not write the JSON)")
    ap.add_argument("--readme", action="store_true", help="print README's platform matrix block instead of the table")
    ap.add_argument("--write-readme", action="store_true", help="replace README.md's block between the platforms markers")
    ap.add_argument("--from-json", action="store_true", help=f"use the recorded {RESULT.relative_to(ROOT)} instead of resolving (offline)")
    ap.add_argument("--platforms", nargs="+", choices=list(PLATFORMS), default=list(PLATFORMS))
    ap.add_argument("--python-versions", nargs="+", choices=list(PYTHONS), default=list(PYTHONS))
    ap.add_argument("--sets", nargs="+", choices=list(INSTALL_SETS), default=list(INSTALL_SETS))
    ap.add_argument("--jobs", type=int, default=4, help="uv processes at once (default 4)")
    ap.add_argument("--uv", help="the uv executable (default: uv on PATH)")
    args = ap.parse_args(argv)
    full = (args.platforms, args.python_versions, args.sets) == (list(PLATFORMS), list(PYTHONS), list(INSTALL_SETS))
    if args.write_readme and not full and not args.from_json:
        ap.error("--write-readme needs the whole matrix: drop --platforms/--python-versions/--sets")

    if args.from_json:
        result = json.loads(RESULT.read_text())
        if result["pyproject_sha256"] != pyproject_fingerprint():
            print(
                f"warning: {RESULT.relative_to(ROOT)} predates pyproject.toml's dependencies; re-run without --from-json", file=sys.stderr
            )
    else:
        uv = find_uv(args.uv)
        try:
            result = resolve(uv, args.sets, args.platforms, args.python_versions, args.jobs)
        except UvError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        if full and not args.check:
            RESULT.parent.mkdir(exist_ok=True)
            RESULT.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
            print(f"wrote {RESULT.relative_to(ROOT)}", file=sys.stderr)
        elif not full and not args.check:
            print(f"(a filtered run: {RESULT.relative_to(ROOT)} left as it was)", file=sys.stderr)

    print(readme_block(result) if args.readme else console_table(result))
    if args.write_readme:
        write_readme(result)
        print(f"updated {README.name}", file=sys.stderr)
    if args.check:
        bad = failed_claims(result)
        for line in bad:
            print(f"claim fails: {line}", file=sys.stderr)
        if bad:
            return 1
        checked = sum(1 for s, p, py, _ in claimed_cells() if py in result["cells"].get(s, {}).get(p, {}))
        print(f"all {checked} claimed cells in this run resolve", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
