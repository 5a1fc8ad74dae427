"""What a test needs to see commands reach devices through real servers: a device that remembers
every Get it carried out, and the count of raw commands devices have answered.

Shared by the crash-safety test (a server killed mid-session) and the multi-instance test (two
servers taking turns within sessions): both count deliveries on the device's side and answers on
the database's side, and compare.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from tests.support.omadm import ManagedDevice
from winmdm.domain.management import CommandKind, CommandState
from winmdm.protocol import syncml
from winmdm.storage import SQLStorage
from winmdm.storage.schema import commands, host_commands


class RecordingDevice(ManagedDevice):
    """Remembers every Get it carried out, also in sessions a server's death cut short."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.executed: list[str] = []

    def post(self, client, message):
        time.sleep(0.02)  # a PC on a network: sessions take time, so servers find some in flight
        return super().post(client, message)

    def _execute(self, command, msg_ref, next_id):
        if isinstance(command, syncml.Get):
            self.executed.extend(item.target or "" for item in command.items)
        return super()._execute(command, msg_ref, next_id)


def raw_commands_done(storage: SQLStorage) -> int:
    """Raw commands the devices answered, over every host (one query: polled while devices run)."""
    query = (
        sa.select(sa.func.count())
        .select_from(host_commands.join(commands, host_commands.c.command_id == commands.c.id))
        .where(host_commands.c.state == CommandState.DONE, commands.c.kind == CommandKind.RAW)
    )
    with storage.transaction() as tx:
        return tx.connection.execute(query).scalar_one()
