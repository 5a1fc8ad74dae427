"""Commands admins send to hosts: raw SyncML, reboot, wipe, unenroll (MS-MDM; Reboot, RemoteWipe
and DMClient CSPs). Queued for the next management session; results kept with the device's reply."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from winmdm.domain.management import Command, CommandKind, HostCommand
from winmdm.errors import InvalidInput, NotFound
from winmdm.protocol import syncml
from winmdm.services.inventory import INVENTORY_GETS
from winmdm.services.syncml_input import parse_admin_syncml
from winmdm.storage.protocols import Storage

if TYPE_CHECKING:
    from winmdm.metrics import Metrics

REBOOT_URI = "./Device/Vendor/MSFT/Reboot/RebootNow"
WIPE_URIS = {
    False: "./Device/Vendor/MSFT/RemoteWipe/doWipe",
    True: "./Device/Vendor/MSFT/RemoteWipe/doWipeProtected",
}


def unenroll_uri(provider_id: str) -> str:
    return f"./Vendor/MSFT/DMClient/Provider/{provider_id}/Unenroll"


class CommandService:
    def __init__(
        self,
        *,
        storage: Storage,
        clock: Callable[[], datetime],
        provider_id: str = "winmdm",
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        metrics: Metrics | None = None,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._provider_id = provider_id
        self._random = random_bytes
        self._metrics = metrics

    def run_syncml(self, host_ids: Sequence[int], text: str, *, actor: str | None) -> Command:
        """An admin's own SyncML; several top-level commands run in order (wrapped in a Sequence)."""
        commands = parse_admin_syncml(text)
        command = commands[0] if len(commands) == 1 else syncml.Sequence(cmd_id=1, commands=commands)
        return self._queue(CommandKind.RAW, command, host_ids, actor)

    def reboot(self, host_id: int, *, actor: str | None) -> Command:
        return self._queue(CommandKind.REBOOT, _exec(REBOOT_URI), [host_id], actor)

    def wipe(self, host_id: int, *, protected: bool, actor: str | None) -> Command:
        kind = CommandKind.WIPE_PROTECTED if protected else CommandKind.WIPE
        return self._queue(kind, _exec(WIPE_URIS[protected]), [host_id], actor)

    def unenroll(self, host_id: int, *, actor: str | None) -> Command:
        """DMClient Unenroll Exec (MS-MDE2 §2.2.9.3): Data is the provider id."""
        return self._queue(
            CommandKind.UNENROLL,
            _exec(unenroll_uri(self._provider_id), data=self._provider_id),
            [host_id],
            actor,
        )

    def refetch(self, host_id: int, *, actor: str | None) -> Command:
        """Read the host's inventory again: the Get of DevDetail/DevInfo the first session sends
        (services/inventory.py), so the device's Results update the host as they did then."""
        get = syncml.Get(cmd_id=1, items=tuple(syncml.Item(target=uri) for uri in INVENTORY_GETS))
        return self._queue(CommandKind.INVENTORY, get, [host_id], actor, context={"refetch": True})

    def result(self, host_id: int, command_uuid: str) -> HostCommand:
        with self._storage.transaction() as tx:
            found = tx.commands.get(host_id, command_uuid)
        if found is None:
            raise NotFound(f"host {host_id} has no command {command_uuid}")
        return found

    def results(self, command_uuid: str) -> list[HostCommand]:
        """Every host's delivery of the command, with the device's answer once it came."""
        with self._storage.transaction() as tx:
            found = tx.commands.deliveries(command_uuid)
        if not found:
            raise NotFound(f"no command {command_uuid}")
        return found

    def _queue(
        self,
        kind: CommandKind,
        command: syncml.Command,
        host_ids: Sequence[int],
        actor: str | None,
        *,
        context: dict[str, Any] | None = None,
    ) -> Command:
        if not host_ids:
            raise InvalidInput("choose at least one host", field="host_ids")
        now = self._clock()
        wanted = list(dict.fromkeys(host_ids))
        with self._storage.transaction() as tx:
            created = tx.commands.create(
                kind,
                syncml.build_fragment(command).decode("utf-8"),
                at=now,
                uuid=str(uuid.UUID(bytes=self._random(16), version=4)),
                actor=actor,
                context=context,
            )
            # A new command is queued once for every host that exists: fewer means an unknown
            # host, named by one lookup per host only then (raising rolls the command back).
            if tx.commands.enqueue(created.id, wanted, now) < len(wanted):
                missing = next(h for h in wanted if tx.hosts.get(h) is None)
                raise NotFound(f"no host with id {missing}")
            tx.activities.add(
                f"command_{kind.value}",
                at=now,
                actor=actor,
                # One host: the activity is that host's too (its page lists it).
                host_id=host_ids[0] if len(host_ids) == 1 else None,
                details={"command_uuid": created.uuid, "host_ids": list(host_ids)},
            )
        if self._metrics is not None:  # counted once committed
            self._metrics.queued(kind, len(wanted))
        return created


def _exec(uri: str, *, data: str | None = None) -> syncml.Exec:
    meta = syncml.Meta(format="chr", type="text/plain") if data is not None else None
    return syncml.Exec(cmd_id=1, items=(syncml.Item(target=uri, meta=meta, data=data),))
