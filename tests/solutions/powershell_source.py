"""PowerShell source parsed by the tree-sitter PowerShell grammar, for the script checks on Linux.

PowerShell itself does not install from the registries here (docs/solutions/windows/README.md);
`tree-sitter-powershell` (PyPI, airbus-cert/tree-sitter-powershell) is a full grammar of the
language: statements, blocks, the four kinds of string, comments, operators. A script it parses
without ERROR or MISSING nodes is well formed to that grammar; what it calls is not checked.
"""

from __future__ import annotations

import functools

import tree_sitter_powershell
from tree_sitter import Language, Node, Parser, Tree

STRING_TYPES = frozenset({"string_literal"})
COMMENT_TYPES = frozenset({"comment"})


class SourceError(ValueError):
    """The source is not well formed to the grammar, or a looked-for part is not there."""


@functools.cache
def _parser() -> Parser:
    return Parser(Language(tree_sitter_powershell.language()))


def parse(source: str) -> Tree:
    return _parser().parse(source.encode("utf-8"))


def _walk(node: Node):
    yield node
    for child in node.children:
        yield from _walk(child)


def syntax_errors(source: str) -> list[str]:
    """Where the grammar could not parse the source: "line N: ..." per ERROR or MISSING node."""
    problems = []
    for node in _walk(parse(source).root_node):
        line = node.start_point[0] + 1
        if node.is_missing:
            problems.append(f"line {line}: missing {node.type!r}")
        elif node.type == "ERROR":
            problems.append(f"line {line}: cannot parse {node.text.decode('utf-8', 'replace')[:60]!r}")
    return problems


def check(source: str) -> None:
    """Raise SourceError with every syntax error the grammar found."""
    problems = syntax_errors(source)
    if problems:
        raise SourceError("; ".join(problems))


def node_types(source: str) -> set[str]:
    return {node.type for node in _walk(parse(source).root_node)}


def code_of(source: str) -> str:
    """The code with every string literal replaced by '' and every comment by a space."""
    data = source.encode("utf-8")
    out: list[bytes] = []
    position = 0
    for node in _outermost(parse(source).root_node, STRING_TYPES | COMMENT_TYPES):
        out.append(data[position : node.start_byte])
        out.append(b"''" if node.type in STRING_TYPES else b" ")
        position = node.end_byte
    out.append(data[position:])
    return b"".join(out).decode("utf-8")


def _outermost(node: Node, types: frozenset[str]):
    """Nodes of `types` in document order, not descending into one found."""
    if node.type in types:
        yield node
        return
    for child in node.children:
        yield from _outermost(child, types)


def block_after(source: str, marker: str) -> str:
    """The source inside the first {...} block that opens at or after `marker` (braces
    excluded): a function's body, an if's or a switch branch's statement block."""
    data = source.encode("utf-8")
    position = data.find(marker.encode("utf-8"))
    if position < 0:
        raise SourceError(f"{marker!r} not found")
    for node in _walk(parse(source).root_node):
        if node.type == "{" and node.start_byte >= position:
            siblings = node.parent.children if node.parent is not None else []
            closers = [s for s in siblings if s.type == "}" and s.start_byte > node.start_byte]
            if not closers:
                raise SourceError(f"the block after {marker!r} has no closing brace")
            return data[node.end_byte : closers[-1].start_byte].decode("utf-8")
    raise SourceError(f"no block after {marker!r}")
