"""The driver-level SELECT of the check-in (storage/sql_driver.py) gives exactly what SQLAlchemy's
own execution gives, and fails the way any statement fails, on both databases."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from tests.storage.test_contract import T0
from winmdm.domain.models import EnrollmentKind, MDMStatus
from winmdm.errors import InvalidInput
from winmdm.storage.schema import hosts
from winmdm.storage.sql import SQLStorage
from winmdm.storage.sql_driver import DriverStatement

_BY_SERIAL = (
    sa.select(hosts, sa.literal(MDMStatus.PENDING, hosts.c.mdm_status.type).label("literal_status"))
    .where(hosts.c.serial == sa.bindparam("serial", type_=sa.Text), hosts.c.mdm_status != MDMStatus.OFF)
    .order_by(hosts.c.id)
    .limit(5)
)


def test_rows_are_what_sqlalchemy_returns(storage: SQLStorage) -> None:
    with storage.transaction() as tx:
        conn = tx.connection
        for n, status in enumerate((MDMStatus.ON, MDMStatus.OFF, MDMStatus.PENDING)):
            conn.execute(
                hosts.insert().values(
                    uuid=f"u{n}",
                    display_name=f"PC-{n} é",
                    serial="SER-1",
                    mdm_status=status,
                    enrollment_kind=EnrollmentKind.MANUAL if n else None,
                    created_at=T0,
                    updated_at=T0 + timedelta(microseconds=n),
                    last_seen_at=None if n else T0 + timedelta(days=1),
                )
            )
        driver = DriverStatement(_BY_SERIAL)
        expected = [list(row) for row in conn.execute(_BY_SERIAL, {"serial": "SER-1"})]
        assert driver.rows(conn, {"serial": "SER-1"}) == expected
        assert len(expected) == 2 and expected[0][-1] is MDMStatus.PENDING
        assert expected[0][list(_BY_SERIAL.selected_columns.keys()).index("updated_at")] == T0
        assert driver.rows(conn, {"serial": "nobody"}) == []


def test_a_value_the_database_cannot_hold_is_refused_like_any_statement(storage: SQLStorage) -> None:
    with pytest.raises(InvalidInput), storage.transaction() as tx:
        DriverStatement(_BY_SERIAL).rows(tx.connection, {"serial": "bad \ud800"})


def test_a_driver_error_is_sqlalchemys_error(storage: SQLStorage) -> None:
    broken = DriverStatement(sa.select(sa.column("nothing")).select_from(sa.table("no_such_table")))
    with pytest.raises(sa.exc.DBAPIError), storage.transaction() as tx:
        broken.rows(tx.connection, {})


def test_a_write_changes_what_sqlalchemy_would_and_counts_its_rows(storage: SQLStorage) -> None:
    seen = (
        hosts.update()
        .where(hosts.c.serial == sa.bindparam("match", type_=sa.Text))
        .values(last_seen_at=sa.bindparam("at", type_=hosts.c.last_seen_at.type))
    )
    per_dialect = DriverStatement(lambda dialect: seen if dialect in ("sqlite", "postgresql") else None)
    with storage.transaction() as tx:
        conn = tx.connection
        for n in range(3):
            conn.execute(
                hosts.insert().values(
                    uuid=f"w{n}",
                    display_name="PC",
                    serial="S",
                    mdm_status=MDMStatus.OFF,
                    created_at=T0,
                    updated_at=T0,
                )
            )
        assert per_dialect.execute(conn, {"match": "S", "at": T0 + timedelta(hours=1), "unused": 1}) == 3
        assert DriverStatement(seen).execute(conn, {"match": "none", "at": T0}) == 0
        stored = conn.execute(sa.select(hosts.c.last_seen_at).where(hosts.c.serial == "S")).scalars().all()
        assert stored == [T0 + timedelta(hours=1)] * 3
