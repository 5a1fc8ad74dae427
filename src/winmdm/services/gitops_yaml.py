"""Strict reading of GitOps YAML: one document of mappings, lists and plain values, with the line
of every key, so an error names file, line and key (docs/gitops.md).

PyYAML's node tree keeps `start_mark`; values are taken from the nodes, never constructed, so no
tag, anchor, alias or merge key can make a file mean more than it shows: they are refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from winmdm.errors import InvalidInput

MAX_FILE_BYTES = 1024 * 1024
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"


@dataclass(frozen=True, slots=True)
class Location:
    """Where a value is written: `default.yml:12: controls.windows_migration_enabled`."""

    file: str
    line: int  # from 1; 0 is the file as a whole
    key: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line > 0 else self.file
        return f"{where}: {self.key}" if self.key else where


class GitOpsFileError(InvalidInput):
    """A GitOps file is wrong; the message starts with file, line and key."""

    def __init__(self, location: Location, problem: str) -> None:
        super().__init__(f"{location}: {problem}", field=location.key or None)
        self.location = location
        self.problem = problem


def read_bounded(path: Path) -> bytes:
    """At most one byte over the limit: a wrong path (a disk image, /dev/zero) fails at once."""
    with path.open("rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


def read_text(path_shown: str, data: bytes) -> str:
    if len(data) > MAX_FILE_BYTES:
        raise GitOpsFileError(
            Location(path_shown, 1), f"the file is over the limit of {MAX_FILE_BYTES} bytes"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise GitOpsFileError(Location(path_shown, line), "the file is not UTF-8 text") from None


class Node:
    """A YAML node with its file and key path; typed accessors raise GitOpsFileError."""

    def __init__(self, node: yaml.Node | None, file: str, key: str, line: int) -> None:
        self.node = node
        self.file = file
        self.key = key
        self.line = line if node is None else node.start_mark.line + 1

    def at(self, key: str | None = None) -> Location:
        return Location(self.file, self.line, self.key if key is None else key)

    def fail(self, problem: str) -> GitOpsFileError:
        return GitOpsFileError(self.at(), problem)

    @property
    def is_null(self) -> bool:
        return self.node is None or (isinstance(self.node, yaml.ScalarNode) and self.node.tag == _NULL)

    def _kind(self) -> str:
        if isinstance(self.node, yaml.MappingNode):
            return "a mapping"
        if isinstance(self.node, yaml.SequenceNode):
            return "a list"
        if self.is_null:
            return "empty"
        if self.node.tag == _BOOL:
            return f"true/false ({self.node.value})"
        return repr(self.node.value)

    def mapping(self, allowed: tuple[str, ...], *, null_ok: bool = True) -> dict[str, Node]:
        """The entries (absent keys are not in the dict); unknown or repeated keys are refused."""
        if self.is_null and null_ok:
            return {}
        if not isinstance(self.node, yaml.MappingNode):
            raise self.fail(f"must be a mapping of {', '.join(allowed)}, not {self._kind()}")
        entries: dict[str, Node] = {}
        for key_node, value_node in self.node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _NULL:
                raise GitOpsFileError(Location(self.file, line, self.key), "keys must be plain names")
            name = key_node.value
            path = f"{self.key}.{name}" if self.key else name
            if name not in allowed:
                raise GitOpsFileError(
                    Location(self.file, line, path), f"unknown key; allowed here: {', '.join(allowed)}"
                )
            if name in entries:
                raise GitOpsFileError(
                    Location(self.file, line, path), f"given twice (also on line {entries[name].line})"
                )
            child = Node(value_node, self.file, path, line)
            child.line = line  # the key's line: where a reader looks for the setting
            entries[name] = child
        return entries

    def items(self) -> Iterator[Node]:
        if self.is_null:
            return
        if not isinstance(self.node, yaml.SequenceNode):
            raise self.fail(f"must be a list (entries starting with -), not {self._kind()}")
        for index, item in enumerate(self.node.value):
            yield Node(item, self.file, f"{self.key}[{index}]", item.start_mark.line + 1)

    def boolean(self) -> bool:
        node = self.node
        if not isinstance(node, yaml.ScalarNode) or node.tag != _BOOL:
            raise self.fail(f"must be true or false, not {self._kind()}")
        return yaml.SafeLoader.bool_values[node.value.lower()]

    def text(self) -> str:
        """A plain value as written (so `version: 1.10` stays "1.10"); true/false and empty refused."""
        node = self.node
        if not isinstance(node, yaml.ScalarNode) or self.is_null or node.tag == _BOOL:
            raise self.fail(f"must be text, not {self._kind()} (quote it if it is meant as text)")
        if not node.value.strip():
            raise self.fail("is empty")
        return node.value


def parse(file: str, text: str) -> Node:
    """The file's single document as a Node (null when the file is empty)."""
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            mark = event.start_mark
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise GitOpsFileError(
                    Location(file, mark.line + 1),
                    "anchors and aliases (& and *) are not supported in GitOps files; write the value out",
                )
            if isinstance(event, yaml.NodeEvent) and getattr(event, "tag", None) is not None:
                raise GitOpsFileError(
                    Location(file, mark.line + 1),
                    f"YAML tags ({event.tag}) are not supported in GitOps files; write plain values",
                )
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise GitOpsFileError(Location(file, line), f"not valid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise GitOpsFileError(Location(file, 1), f"not valid YAML: {exc}") from None
    return Node(root, file, "", 1)
