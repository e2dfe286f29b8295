"""The project's shape: no import cycles among packages and sub-packages, CLI modules as leaves.

Read from the source with ``ast`` (function-level imports count: a lazy import is still a
dependency); imports under ``if TYPE_CHECKING:`` are annotations, not dependencies. A package's
``__init__`` may re-export its children (a facade), so its own imports are not edges.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shvit", "calib", "convert", "mobile_demo")
CLI_MODULES = frozenset(
    {"convert.cli", "convert.cli.convert", "convert.cli.common", "convert.cli.check", "convert.cli.bench", "convert.cli.demo"}
)
"""The commands and their shared plumbing: nothing but a command may import these."""
ENTRY_MODULES = CLI_MODULES | {"convert.process"}
"""Where process-wide changes (signal handlers, import blocks, interpreter flags) may live."""
PROCESS_WIDE = {
    "tempfile.tempdir assignment": re.compile(r"tempfile\.tempdir\s*="),
    "sys.modules assignment": re.compile(r"sys\.modules\[[^\]]+\]\s*="),
    "socket patching": re.compile(r"socket\.[\w.]+\s*=[^=]"),
    "ctypes": re.compile(r"^\s*(import|from) ctypes", re.M),
    "signal handler": re.compile(r"signal\.signal\("),
}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> tuple[dict[str, set[str]], dict[str, Path]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}, modules


def _package_of(name: str, modules: dict[str, Path]) -> str:
    return name if modules[name].name == "__init__.py" else name.rpartition(".")[0]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_every_command_lives_in_the_cli_package() -> None:
    assert CLI_MODULES == {name for name in _modules() if name == "convert.cli" or name.startswith("convert.cli.")}


def test_nothing_but_a_command_imports_a_cli_module() -> None:
    graph, _ = _graph()
    offenders = sorted(
        f"{importer} → {imported}"
        for importer, imported_set in graph.items()
        if importer not in CLI_MODULES
        for imported in imported_set
        if imported in CLI_MODULES
    )
    assert offenders == []


def test_no_import_cycle_among_modules() -> None:
    graph, modules = _graph()
    facades = {name for name, path in modules.items() if path.name == "__init__.py"}
    edges = {name: {i for i in imported if i not in facades} for name, imported in graph.items() if name not in facades}
    assert _cycles(edges) == []


def test_no_import_cycle_among_packages() -> None:
    graph, modules = _graph()
    edges: dict[str, set[str]] = defaultdict(set)
    for importer, imported_set in graph.items():
        if importer in ENTRY_MODULES or modules[importer].name == "__init__.py":
            continue
        for imported in imported_set:
            a, b = _package_of(importer, modules), _package_of(imported, modules)
            if a != b:
                edges[a].add(b)
    assert _cycles(dict(edges)) == [], dict(edges)


def test_the_checker_sees_a_planted_cycle(tmp_path: Path) -> None:
    """The cycle finder itself: a two-package loop is reported, a chain is not."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}}) == []


def test_library_modules_change_nothing_process_wide() -> None:
    """A notebook, a server or a thread pool can call the library: only entry points touch the process."""
    offenders = sorted(
        f"{name}: {what}"
        for name, path in _modules().items()
        if name not in ENTRY_MODULES
        for what, pattern in PROCESS_WIDE.items()
        if pattern.search(path.read_text(encoding="utf-8"))
    )
    assert offenders == []


FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
PLACEHOLDER = re.compile(r"\{[a-z_][a-z0-9_]*(=[^{}]*)?\}")
LOG_CALLS = frozenset({"log", "debug", "info", "warning", "error", "warn"})


def _message_texts(tree: ast.AST) -> list[tuple[int, str]]:
    """The literal text of every message an error or a log line carries (f-string parts included)."""
    texts = set()
    for node in ast.walk(tree):
        calls = []
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            calls.append(node.exc)
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in LOG_CALLS or name.endswith("Error"):
                calls.append(node)
        for call in calls:
            for argument in call.args[:1]:
                for part in ast.walk(argument):
                    if isinstance(part, ast.Constant) and isinstance(part.value, str):
                        texts.add((part.lineno, part.value))
    return sorted(texts)


def test_library_messages_are_plain_text_without_flags_or_placeholders() -> None:
    """A message reads the same from Python and from a command: flags are the CLI's to add (``--calib:``), so library
    errors and log lines neither spell a flag nor carry a template."""
    found = [
        f"{module}:{line}: {text!r}"
        for module, path in _modules().items()
        if module not in CLI_MODULES
        for line, text in _message_texts(ast.parse(path.read_text()))
        if FLAG.search(text) or PLACEHOLDER.search(text)
    ]
    assert not found, "\n".join(found)
