"""The project's promises about itself: CI runs README's test command, README lists every CLI flag."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _fenced_commands() -> list[str]:
    return [line.strip() for block in re.findall(r"```bash\n(.*?)```", README, re.S) for line in block.splitlines() if line.strip()]


def test_ci_runs_exactly_the_readme_test_command() -> None:
    commands = _fenced_commands()
    test_command = next(c for c in commands if "pytest" in c)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test_command in ci_lines


def test_ci_installs_with_the_readme_install_command() -> None:
    install = next(c for c in _fenced_commands() if "pip install" in c and "[all,test]" in c)
    ci = (ROOT / ".ci" / "run").read_text()
    for part in install.split("&&"):
        assert part.strip() in ci


def _commands() -> list:
    from convert.cli.bench import bench_command
    from convert.cli.check import check_command
    from convert.cli.convert import convert_command
    from convert.cli.demo import android_command, ios_command

    return [convert_command, check_command, bench_command, ios_command, android_command]


@pytest.mark.parametrize("index", range(5))
def test_readme_documents_every_flag(index: int) -> None:
    command = _commands()[index]
    toy = sys.modules.get("toy_target")  # a plugin test registered it while the commands were first built
    plugin_flags = {o.flag for o in toy.TARGET.options} if toy else set()
    flags = {opt for p in command.params for opt in p.opts if opt.startswith("--") and opt != "--help"} - plugin_flags
    missing = sorted(f for f in flags if f"`{f}" not in README)
    assert not missing, f"README lacks {missing} of {command.name}"


def test_every_benchmark_readme_cites_exists() -> None:
    """README quotes figures "from `benchmarks/X.py`": each such script is in the repo to reproduce them."""
    cited = set(re.findall(r"benchmarks/([\w.]+\.py)", README))
    assert cited, "README cites no benchmark"
    missing = sorted(name for name in cited if not (ROOT / "benchmarks" / name).is_file())
    assert not missing, f"README cites missing benchmarks {missing}"


def test_readme_int8_prose_quotes_only_measured_tables() -> None:
    """Every percentage in README's int8 prose appears in a table a benchmark prints (no hand-measured figures)."""
    start = README.index("The stand-in rows are the trained SHViT-S1")
    section = README[start : README.index("## Platforms", start)]
    prose = "\n".join(line for line in section.splitlines() if not line.startswith("|"))
    tables = "\n".join(line for line in README.splitlines() if line.startswith("|"))
    unbacked = sorted(f for f in re.findall(r"\d+\.\d+%", prose) if f not in tables)
    assert not unbacked, f"README's int8 prose quotes figures no table shows: {unbacked}"


def test_ci_runs_the_readme_lint_command_before_the_tests() -> None:
    lint = next(c for c in _fenced_commands() if "ruff check" in c)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert lint in ci_lines and "mypy" in lint
    assert ci_lines.index(lint) < next(i for i, line in enumerate(ci_lines) if "pytest" in line)
