"""osquery's Windows `registry` table, reproduced in SQLite for running policies on Linux.

osquery's SQL is SQLite's; its `registry` table is virtual: for each query it lists the keys named
by the `key` constraint and makes one row per subkey and per value of each
(osquery/tables/system/windows/registry.cpp, genRegistry -> expandRegistryGlobs -> queryKey), then
SQLite applies the WHERE clause to those rows. `RegistryTable.rows_for(sql)` does the same from an
in-memory registry, so the rows a policy sees here are the rows osquery would give it.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from contextlib import closing
from dataclasses import dataclass, field

# Columns of osquery's specs/windows/registry.table; `key` is collate_nocase there as well.
SCHEMA = (
    "CREATE TABLE registry (key TEXT COLLATE NOCASE, path TEXT, name TEXT, type TEXT, data TEXT, "
    "mtime BIGINT)"
)
HIVES = (
    "HKEY_CLASSES_ROOT",
    "HKEY_CURRENT_CONFIG",
    "HKEY_CURRENT_USER",
    "HKEY_CURRENT_USER_LOCAL_SETTINGS",
    "HKEY_LOCAL_MACHINE",
    "HKEY_PERFORMANCE_DATA",
    "HKEY_PERFORMANCE_NLSTEXT",
    "HKEY_PERFORMANCE_TEXT",
    "HKEY_USERS",
)
SEP = "\\"
MAX_DEPTH = 32  # osquery's kRegMaxRecursiveDepth
_KEY_CONSTRAINT = re.compile(r"\bkey\s*(=|LIKE)\s*'((?:[^']|'')*)'", re.IGNORECASE)

Value = tuple[str, object]  # (REG_* type, value)


def _data(reg_type: str, value: object) -> str:
    """The `data` column as registry.cpp renders it."""
    if reg_type in ("REG_DWORD", "REG_QWORD"):
        return str(int(value))  # decimal text
    if reg_type == "REG_MULTI_SZ":
        return ",".join(value)  # type: ignore[arg-type]
    if reg_type == "REG_BINARY":
        return bytes(value).hex().upper()  # type: ignore[arg-type]
    if reg_type == "REG_NONE":
        return "(zero-length binary value)"
    return str(value)


@dataclass
class RegistryTable:
    """A registry: full key path -> {value name: (type, value)}. Parents exist implicitly."""

    keys: Mapping[str, Mapping[str, Value]]
    mtime: int = 1_760_000_000
    _by_lower: dict[str, str] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        for path in self.keys:
            parts = path.split(SEP)
            for depth in range(1, len(parts) + 1):
                ancestor = SEP.join(parts[:depth])
                self._by_lower.setdefault(ancestor.lower(), ancestor)

    def exists(self, key: str) -> bool:
        return key.lower() in self._by_lower

    def subkeys(self, key: str) -> list[str]:
        prefix = key.lower() + SEP
        names = {
            real[len(prefix) :].split(SEP)[0]
            for lower, real in self._by_lower.items()
            if lower.startswith(prefix)
        }
        return sorted(names)

    def key_rows(self, key: str) -> list[dict[str, object]]:
        """queryKey: a row per subkey (type 'subkey', empty data), then a row per value."""
        if not self.exists(key):
            return []  # ERROR_FILE_NOT_FOUND: skipped
        rows: list[dict[str, object]] = [
            {
                "key": key,
                "path": key + SEP + name,
                "name": name,
                "type": "subkey",
                "data": "",
                "mtime": self.mtime,
            }
            for name in self.subkeys(key)
        ]
        real = self._by_lower[key.lower()]
        for name, (reg_type, value) in self.keys.get(real, {}).items():
            rows.append(
                {
                    "key": key,
                    "path": key + SEP + name,
                    "name": name or "(Default)",
                    "type": reg_type,
                    "data": _data(reg_type, value),
                    "mtime": self.mtime,
                }
            )
        return rows

    def expand(self, pattern: str) -> set[str]:
        """expandRegistryGlobs: '%' in an element lists subkeys there; a final '%%' recurses."""
        elements = pattern.split(SEP)
        if len(elements) == 1 and elements[0].endswith("%%"):
            return self._recursive(set(HIVES))
        keys = set(HIVES) if "%" in elements[0] else {elements[0]}
        for index, element in enumerate(elements[1:], start=1):
            if element.endswith("%%") and index == len(elements) - 1:
                return self._recursive(keys)
            if "%" in element:
                keys = {k + SEP + child for k in keys for child in self.subkeys(k)}
            else:
                keys = {k + SEP + element for k in keys}
        return keys

    def _recursive(self, keys: set[str]) -> set[str]:
        found = set(keys)
        frontier = set(keys)
        for _ in range(MAX_DEPTH):
            frontier = {k + SEP + child for k in frontier for child in self.subkeys(k)} - found
            if not frontier:
                break
            found |= frontier
        return found

    def rows_for(self, sql: str) -> list[dict[str, object]]:
        """The rows osquery generates for the `key` constraints of `sql` (hive roots if none)."""
        keys: set[str] = set()
        constraints = key_constraints(sql)
        for operator, value in constraints:
            keys |= self.expand(value) if operator.upper() == "LIKE" else {value}
        if not constraints:
            keys = set(HIVES)
        return [row for key in sorted(keys) for row in self.key_rows(key)]


def key_constraints(sql: str) -> list[tuple[str, str]]:
    """The `key = '...'` and `key LIKE '...'` constraints written in a query."""
    return [(op, value.replace("''", "'")) for op, value in _KEY_CONSTRAINT.findall(sql)]


def run_osquery_sql(sql: str, registry: RegistryTable) -> list[tuple[object, ...]]:
    """Run `sql` in SQLite over the registry rows osquery would generate for it."""
    with closing(sqlite3.connect(":memory:")) as db:
        db.execute(SCHEMA)
        db.executemany(
            "INSERT INTO registry VALUES (:key, :path, :name, :type, :data, :mtime)",
            registry.rows_for(sql),
        )
        return db.execute(sql).fetchall()
