"""design.md §3: protocol/ imports nothing of winmdm but errors, and no I/O, clock or uuid."""

from __future__ import annotations

import ast
from pathlib import Path

import winmdm.protocol

PROTOCOL = Path(winmdm.protocol.__file__).parent
FORBIDDEN_MODULES = {"socket", "httpx", "requests", "uuid", "random", "secrets", "time", "sqlalchemy", "os"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_protocol_imports_only_errors_of_winmdm() -> None:
    modules = sorted(PROTOCOL.rglob("*.py"))
    assert len(modules) >= 8
    for module in modules:
        for name in _imports(module):
            if name.startswith("winmdm"):
                assert name == "winmdm.errors" or name.startswith("winmdm.protocol"), f"{module.name}: {name}"
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{module.name} imports {name}"


def test_protocol_never_reads_the_clock() -> None:
    for module in PROTOCOL.rglob("*.py"):
        source = module.read_text()
        for call in ("datetime.now(", "datetime.utcnow(", "date.today("):
            assert call not in source, f"{module.name} calls {call}"
