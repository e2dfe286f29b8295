"""Helpers for the demo-app tests: Swift and Kotlin parsers, constants read from generated sources, the CLI in-process."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import tree_sitter_kotlin
import tree_sitter_swift
from tree_sitter import Language, Node, Parser

from convert.cli.demo import main as demo_main
from mobile_demo.output import STAGING_PREFIX

SWIFT = Parser(Language(tree_sitter_swift.language()))
KOTLIN = Parser(Language(tree_sitter_kotlin.language()))
ANDROID_SOURCES = "app/src/main/java/com/example/shvitdemo"


def syntax_problems(parser: Parser, path: Path) -> list[str]:
    """Every ERROR or MISSING node, as 'file:line:col type'."""
    tree = parser.parse(path.read_bytes())
    found: list[str] = []

    def walk(node: Node) -> None:
        if node.is_error or node.is_missing:
            found.append(
                f"{path.name}:{node.start_point[0] + 1}:{node.start_point[1] + 1} {'MISSING' if node.is_missing else 'ERROR'} {node.type}"
            )
        for child in node.children:
            walk(child)

    walk(tree.root_node)
    if tree.root_node.has_error and not found:
        found.append(f"{path.name}: has_error")
    return found


def nodes(node: Node, kind: str) -> Iterator[Node]:
    if node.type == kind:
        yield node
    for child in node.children:
        yield from nodes(child, kind)


def decode_literal(text: str) -> str | int | float | bool:
    """A Swift/Kotlin literal as written by a person: strings with \\", \\\\, \\$, \\n, \\u{..}/\\uXXXX escapes, numbers, booleans."""
    if text.startswith('"'):
        body = text[1:-1]
        body = re.sub(r"\\u\{([0-9a-fA-F]+)\}|\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1) or m.group(2), 16)), body)
        return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), body)
    if text in ("true", "false"):
        return text == "true"
    number = text.rstrip("fF")
    return float(number) if any(c in number for c in ".eE") else int(number)


def swift_constants(path: Path) -> dict[str, str | int | float | bool]:
    """``static let NAME = literal`` declarations of a Swift file, through tree-sitter."""
    source = path.read_bytes()
    constants: dict[str, str | int | float | bool] = {}
    for decl in nodes(SWIFT.parse(source).root_node, "property_declaration"):
        name, value = decl.child_by_field_name("name"), decl.child_by_field_name("value")
        if (
            name is not None
            and value is not None
            and value.type in ("line_string_literal", "integer_literal", "real_literal", "boolean_literal")
        ):
            constants[name.text.decode()] = decode_literal(value.text.decode())
    return constants


def kotlin_constants(path: Path) -> dict[str, str | int | float | bool]:
    """``val NAME = literal`` (and ``Enum.ENTRY``) declarations of a Kotlin file, through tree-sitter."""
    tree = KOTLIN.parse(path.read_bytes())
    constants: dict[str, str | int | float | bool] = {}
    for decl in nodes(tree.root_node, "property_declaration"):
        names = [c for c in decl.children if c.type == "variable_declaration"]
        values = [c for c in decl.children if c.type not in ("modifiers", "variable_declaration", "val", "var", "=")]
        if names and values:
            value = values[-1]
            text = value.text.decode()
            if value.type == "navigation_expression":
                constants[names[0].text.decode()] = text.rsplit(".", 1)[1]
            elif value.type in ("string_literal", "number_literal", "float_literal", "unary_expression") or text in ("true", "false"):
                constants[names[0].text.decode()] = decode_literal(text)
    return constants


def run_demo_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        demo_main(args)
    captured = capsys.readouterr()
    return int(exit_info.value.code), captured.out, captured.err


def one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(STAGING_PREFIX)) if parent.exists() else []
