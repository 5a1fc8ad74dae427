"""Alembic environment for winmdm.

winmdm runs migrations itself (`winmdm.storage.database.migrate`), handing over an open
connection in `config.attributes["connection"]` so the migration joins the caller's transaction
(and, on PostgreSQL, its advisory lock). The `alembic` command line works too, with
`sqlalchemy.url` set in the ini file or `-x url=...`.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from winmdm.storage.schema import metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things: later revisions rebuild tables in batch mode.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str | None:
    return context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from winmdm.storage.database import create_engine_for

    url = _url()
    if not url:
        raise SystemExit("set sqlalchemy.url or pass -x url=... to run winmdm migrations")
    engine = create_engine_for(url)
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
