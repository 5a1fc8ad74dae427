"""Statements on the check-in's hot path run on the database driver's cursor, not through
SQLAlchemy's execution: the one read of every management message (sql_device_state.py) and
its write (SessionStore.save_answered).

For these (the read has 71 columns over five tables) SQLAlchemy's execution and row building
cost more than SQLite's own work (measured in benchmarks/README.md). What SQLAlchemy does well stays
SQLAlchemy's: the statement is written and compiled by it (once per dialect), the parameters
and the values go through its type processors (the same conversions as any other read), and a
driver error goes through the connection's own error handling (`handle_error` hooks,
disconnect detection, pool invalidation) before it is raised as SQLAlchemy's error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

Processor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    positions: tuple[str, ...] | None  # parameter order for positional paramstyles (SQLite's ?)
    defaults: dict[str, Any]  # values bound in the statement itself (literals, LIMIT)
    binds: tuple[tuple[str, Processor], ...]  # the parameters that need converting
    results: tuple[Processor | None, ...]  # one per selected column


def _compile(statement: sa.Executable, dialect: Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    binds: list[tuple[str, Processor]] = []
    for bind, name in compiled.bind_names.items():  # anonymous binds by their rendered name
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            binds.append((name, processor))
    selected = statement.selected_columns if isinstance(statement, sa.Select) else ()
    results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in selected)
    return _Compiled(
        sql=compiled.string,
        positions=tuple(compiled.positiontup or ()) if compiled.positional else None,
        defaults=dict(compiled.construct_params(_check=False)),
        binds=tuple(binds),
        results=results,
    )


class DriverStatement:
    """A statement, or a builder of one per dialect name (an upsert needs the dialect's INSERT).

    `rows(conn, params)`: a SELECT's rows as lists of converted values, in column order;
    `execute(conn, params)`: any other statement, answering how many rows it changed."""

    def __init__(self, statement: sa.Executable | Callable[[str], sa.Executable]) -> None:
        self._statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            built = self._statement(dialect.name) if callable(self._statement) else self._statement
            compiled = self._compiled[dialect.name] = _compile(built, dialect)
        return compiled

    def rows(self, conn: Connection, params: Mapping[str, Any]) -> list[list[Any]]:
        compiled = self.compiled(conn.dialect)
        fetched, _ = _run(conn, compiled, params, fetch=True)
        results = compiled.results
        return [
            [v if p is None or v is None else p(v) for p, v in zip(results, row, strict=True)]
            for row in fetched
        ]

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> int:
        return _run(conn, self.compiled(conn.dialect), params, fetch=False)[1]


def _run(
    conn: Connection, compiled: _Compiled, params: Mapping[str, Any], *, fetch: bool
) -> tuple[list[Any], int]:
    values = {**compiled.defaults, **params}
    for name, processor in compiled.binds:
        values[name] = processor(values[name])
    bound: Any = values if compiled.positions is None else tuple(values[n] for n in compiled.positions)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        # Cursor listeners see it as any statement (tests and benchmarks count statements).
        for listener in conn.dispatch.before_cursor_execute:
            listener(conn, cursor, compiled.sql, bound, None, False)
        cursor.execute(compiled.sql, bound)
        return (cursor.fetchall() if fetch else []), cursor.rowcount
    except Exception as exc:
        # The connection's own handling: hooks, disconnects, SQLAlchemy's exception types.
        conn._handle_dbapi_exception(exc, compiled.sql, bound, cursor, None)
        raise
    finally:
        cursor.close()
