"""The agent package: one MSI every newly enrolled host installs through the
EnterpriseDesktopAppManagement CSP (design.md §1 "after enrollment", protocol.md §9).

The admin sets it as an uploaded MSI (winmdm serves it behind a signed, expiring link) or as an
https URL with its SHA-256. Per host the status goes pending -> installing (the device accepted
the Exec) -> installed or failed, from the device's install-result alert or, when none came, from
a Get of the job's Status and LastError in the next session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from winmdm.domain.management import (
    AgentPackage,
    AgentStatus,
    CommandKind,
    CommandState,
    HostAgent,
    HostCommand,
)
from winmdm.domain.models import Host
from winmdm.errors import AuthorizationFailed, InvalidInput, MalformedMessage, NotFound
from winmdm.pki.secret_key import load_or_create_secret_key
from winmdm.protocol import syncml
from winmdm.protocol.csp import msi
from winmdm.storage.protocols import Storage, Transaction

if TYPE_CHECKING:
    from winmdm.metrics import Metrics

log = logging.getLogger("winmdm.agent")

KEY_FILE = "agent-download.key"
DOWNLOAD_PREFIX = "/agent/"
DOWNLOAD_SUFFIX = ".msi"  # some download stacks name the cached file after the URL
LINK_LIFETIME = timedelta(hours=24)
# Windows Installer files are OLE compound files; this is their signature.
_MSI_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
_SHA256 = re.compile(r"[0-9A-Fa-f]{64}")
_EXPIRES = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit also takes "²" and "١"
_VERSION = re.compile(r"^\d{1,5}(\.\d{1,5}){0,3}$")
_MAX_ARGS = 1024
_MAX_URL = 2048


def load_or_create_key(data_dir: Path) -> bytes:
    """The HMAC key of download links (`agent-download.key`), made on first start."""
    return load_or_create_secret_key(data_dir / KEY_FILE, if_lost="download links already sent stop working")


class AgentService:
    """Admin side (set_package, package, host_status), download links, and the session hooks."""

    def __init__(
        self,
        storage: Storage,
        clock: Callable[[], datetime],
        signing_key: bytes,
        server_url: str,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        link_lifetime: timedelta = LINK_LIFETIME,
        metrics: Metrics | None = None,
    ) -> None:
        if len(signing_key) < 32:
            raise ValueError("the download signing key must be at least 32 bytes")
        self._storage = storage
        self._clock = clock
        self._key = signing_key
        self._base_url = server_url.rstrip("/")
        self._random = random_bytes
        self._lifetime = link_lifetime
        self._metrics = metrics

    # -- admin -----------------------------------------------------------------------------------
    def set_package(
        self,
        product_code: str,
        version: str,
        install_args: str,
        *,
        content: bytes | None = None,
        url: str | None = None,
        sha256: str | None = None,
        actor: str | None,
    ) -> AgentPackage:
        """Replace the agent package. Hosts enrolled from now on get it (existing hosts keep theirs)."""
        product_code = _product_code(product_code)
        version = (version or "").strip()
        if not _VERSION.match(version):
            raise InvalidInput(
                f"version {version!r} is not an MSI ProductVersion: use numbers and dots, e.g. 1.2.3",
                field="version",
            )
        install_args = _install_args(install_args)
        if content is not None and url is not None:
            raise InvalidInput("give either an uploaded MSI or a URL with its SHA-256, not both", field="url")
        if content is None and url is None:
            raise InvalidInput("upload the MSI, or give a URL and its SHA-256", field="content")
        if content is not None:
            if not content.startswith(_MSI_MAGIC):
                raise InvalidInput(
                    "the upload is not an MSI: Windows Installer files start with the OLE "
                    "compound-file signature D0 CF 11 E0 A1 B1 1A E1",
                    field="content",
                )
            digest = hashlib.sha256(content).hexdigest()
            if sha256 is not None and _sha256(sha256) != digest:
                raise InvalidInput(
                    f"sha256 does not match the uploaded file (its SHA-256 is {digest}); "
                    "leave sha256 out for uploads, winmdm computes it",
                    field="sha256",
                )
        else:
            url = _url(url or "")
            if sha256 is None or not sha256.strip():
                raise InvalidInput(
                    "sha256 is required with a URL: the SHA-256 of the MSI as 64 hex characters, "
                    "which Windows checks after the download",
                    field="sha256",
                )
            digest = _sha256(sha256)
        package = AgentPackage(
            product_code=product_code,
            version=version,
            sha256=digest,
            install_args=install_args,
            url=url,
            content=content,
            updated_at=self._clock(),
        )
        with self._storage.transaction() as tx:
            tx.agent.set_package(package)
            tx.activities.add(
                "agent_package_set",
                at=package.updated_at,
                actor=actor,
                details={
                    "product_code": product_code,
                    "version": version,
                    "sha256": digest,
                    "source": "upload" if content is not None else "url",
                    "url": url,
                },
            )
        return package

    def package(self) -> AgentPackage | None:
        with self._storage.transaction() as tx:
            return tx.agent.get_package()

    def host_status(self, host_id: int) -> HostAgent | None:
        with self._storage.transaction() as tx:
            return tx.agent.host_status(host_id)

    # -- signed download links -------------------------------------------------------------------
    def download_url(self, sha256: str, now: datetime) -> str:
        """`<server>/agent/<sha256>.<expires>.<hmac>.msi`: names the file, expires after the link
        lifetime (24 h by default), and is signed with the data dir's key."""
        expires = int((now + self._lifetime).timestamp())
        payload = f"{sha256}.{expires}"
        return f"{self._base_url}{DOWNLOAD_PREFIX}{payload}.{self._sign(payload)}{DOWNLOAD_SUFFIX}"

    def download(self, token: str) -> AgentPackage:
        """The package a link names, with its content. AuthorizationFailed when the link was
        altered or has expired; NotFound when the package it names is no longer the agent."""
        parts = token.split(".")
        if len(parts) != 3 or not _SHA256.fullmatch(parts[0]) or not _EXPIRES.fullmatch(parts[1]):
            raise AuthorizationFailed("This download link is not valid.")
        payload = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(payload).encode(), parts[2].encode()):
            raise AuthorizationFailed("This download link is not valid.")
        expires = datetime.fromtimestamp(int(parts[1]), UTC)
        if self._clock() >= expires:
            raise AuthorizationFailed(
                "This download link has expired; winmdm sends a new one with each install."
            )
        package = self.package()
        if package is None or package.sha256 != parts[0] or package.content is None:
            raise NotFound("No agent package matches this download link.")
        return package

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    # -- session hooks (services.management.SessionHooks) ----------------------------------------
    def first_session(self, tx: Transaction, host: Host, now: datetime) -> None:
        """Queue the install, unless this host already has this package (same job id: re-enrollment)."""
        package = tx.agent.get_package()
        if package is None:
            return
        current = tx.agent.host_status(host.id)
        install = tx.commands.get(host.id, current.command_uuid) if current and current.command_uuid else None
        if (
            current is not None
            and install is not None
            and install.command.context.get("sha256") == package.sha256
        ):
            if current.status is AgentStatus.INSTALLED:
                # Installed before: confirm on the device rather than reinstall (the PC may be reset).
                self._queue_status(tx, host.id, install, now, purpose="verify")
                return
            if current.status in (AgentStatus.PENDING, AgentStatus.INSTALLING):
                return  # still queued, or the device is running that job
        self._queue_install(tx, host.id, package, now)

    def replied(self, tx: Transaction, host_id: int, command: HostCommand, now: datetime) -> None:
        if command.command.kind is CommandKind.AGENT_INSTALL:
            self._install_replied(tx, host_id, command, now)
        elif command.command.kind is CommandKind.AGENT_STATUS:
            self._status_replied(tx, host_id, command, now)

    def alerted(self, tx: Transaction, host: Host, alert: syncml.Alert, now: datetime) -> None:
        try:
            result = msi.read_install_alert(alert)
        except MalformedMessage as exc:
            log.warning("host %s sent an unreadable install result: %s", host.id, exc.message)
            return
        current = tx.agent.host_status(host.id)
        if current is None or current.command_uuid is None:
            return
        if result is None:
            # Package 1 of every session carries Alert 1224 (protocol.md decision 5): a new session.
            # A job still running without its result alert: ask the device for its Status.
            if current.status is AgentStatus.INSTALLING:
                install = tx.commands.get(host.id, current.command_uuid)
                if install is not None and not self._status_outstanding(tx, host.id, install.command.uuid):
                    self._queue_status(tx, host.id, install, now, purpose="poll")
            return
        install = tx.commands.get(host.id, current.command_uuid)
        if install is None or install.command.context.get("product_code") != result.product_code:
            return  # a result for another MSI (not winmdm's agent)
        if result.succeeded:
            self._set(tx, host.id, AgentStatus.INSTALLED, None, current, now)
        else:
            error = f"{msi.describe_code(result.code)}: the device reported that the install failed"
            self._set(tx, host.id, AgentStatus.FAILED, error, current, now)

    # -- rules ---------------------------------------------------------------------------------
    def _install_replied(self, tx: Transaction, host_id: int, command: HostCommand, now: datetime) -> None:
        current = tx.agent.host_status(host_id)
        if current is None or current.command_uuid != command.command.uuid:
            return  # an older install; the host has moved on
        if current.status is not AgentStatus.PENDING:
            return  # the device already reported the result
        code = next((r.code for r in command.replies if r.cmd == syncml.Cmd.EXEC), None)
        if code in (syncml.StatusCode.OK, syncml.StatusCode.ACCEPTED):
            self._set(tx, host_id, AgentStatus.INSTALLING, None, current, now)
            return
        uri = msi.download_install_uri(command.command.context.get("product_code", ""))
        answered = code if code is not None else command.status_code
        self._set(
            tx, host_id, AgentStatus.FAILED, f"the device answered {answered} to Exec of {uri}", current, now
        )

    def _status_replied(self, tx: Transaction, host_id: int, command: HostCommand, now: datetime) -> None:
        context = command.command.context
        current = tx.agent.host_status(host_id)
        if current is None or current.command_uuid != context.get("install_uuid"):
            return
        verifying = context.get("purpose") == "verify"
        if not (
            current.status is AgentStatus.INSTALLING
            or (verifying and current.status is AgentStatus.INSTALLED)
        ):
            return  # the result alert came first
        values: dict[str, str] = {}
        for reply in command.replies:
            for uri, data in reply.items:
                node = msi.parse_node(uri)
                if node is not None and data is not None:
                    values[node[1]] = data.strip()
        text = values.get("Status")
        if text is None:
            if verifying:  # the device has no such job any more (reset PC): install again
                package = tx.agent.get_package()
                if package is not None:
                    self._queue_install(tx, host_id, package, now)
                return
            uri = msi.status_uri(context.get("product_code", ""))
            error = f"the device has no install job: Get of {uri} answered {command.status_code}"
            self._set(tx, host_id, AgentStatus.FAILED, error, current, now)
            return
        try:
            status = msi.InstallStatus(int(text))
        except ValueError:
            log.warning("host %s reported an unknown MSI job Status %r", host_id, text)
            return
        if status.installed:
            self._set(tx, host_id, AgentStatus.INSTALLED, None, current, now)
        elif status.failed:
            self._set(tx, host_id, AgentStatus.FAILED, _status_error(status, values), current, now)
        else:
            self._set(tx, host_id, AgentStatus.INSTALLING, None, current, now)

    def _queue_install(self, tx: Transaction, host_id: int, package: AgentPackage, now: datetime) -> None:
        url = package.url or self.download_url(package.sha256, now)
        job = msi.MsiInstallJob(
            id=package.product_code,  # protocol.md §9: the product code; the same id is never reinstalled
            version=package.version,
            content_urls=(url,),
            file_hash=package.sha256.upper(),
            command_line=package.install_args,
        )
        created = tx.commands.create(
            CommandKind.AGENT_INSTALL,
            syncml.build_fragment(msi.install_command(package.product_code, job)).decode("utf-8"),
            at=now,
            uuid=self._uuid(),
            context={
                "product_code": package.product_code,
                "sha256": package.sha256,
                "version": package.version,
            },
        )
        self._counted(CommandKind.AGENT_INSTALL, tx.commands.enqueue(created.id, [host_id], now))
        tx.agent.set_host_status(
            host_id, AgentStatus.PENDING, last_error=None, command_uuid=created.uuid, at=now
        )

    def _queue_status(
        self, tx: Transaction, host_id: int, install: HostCommand, now: datetime, *, purpose: str
    ) -> None:
        product_code = install.command.context.get("product_code", "")
        created = tx.commands.create(
            CommandKind.AGENT_STATUS,
            syncml.build_fragment(msi.status_command(product_code)).decode("utf-8"),
            at=now,
            uuid=self._uuid(),
            context={"install_uuid": install.command.uuid, "product_code": product_code, "purpose": purpose},
        )
        self._counted(CommandKind.AGENT_STATUS, tx.commands.enqueue(created.id, [host_id], now))

    def _counted(self, kind: CommandKind, hosts: int) -> None:
        """Metrics: commands queued (counted in the transaction that queues them)."""
        if self._metrics is not None:
            self._metrics.queued(kind, hosts)

    @staticmethod
    def _status_outstanding(tx: Transaction, host_id: int, install_uuid: str) -> bool:
        return any(
            q.command.kind is CommandKind.AGENT_STATUS
            and q.command.context.get("install_uuid") == install_uuid
            and q.state is not CommandState.DONE
            for q in tx.commands.list_for_host(host_id, limit=50)
        )

    @staticmethod
    def _set(
        tx: Transaction,
        host_id: int,
        status: AgentStatus,
        last_error: str | None,
        current: HostAgent,
        now: datetime,
    ) -> None:
        if current.status is status and current.last_error == last_error:
            return  # no change: keep updated_at as when the status last changed
        tx.agent.set_host_status(
            host_id, status, last_error=last_error, command_uuid=current.command_uuid, at=now
        )

    def _uuid(self) -> str:
        return str(uuid.UUID(bytes=self._random(16), version=4))


def _status_error(status: msi.InstallStatus, values: dict[str, str]) -> str:
    parts = [f"Status {int(status)} ({status.description})"]
    last_error = values.get("LastError")
    if last_error:
        try:
            parts.append(f"LastError {msi.describe_code(int(last_error, 0))}")
        except ValueError:
            parts.append(f"LastError {last_error}")
    if values.get("LastErrorDesc"):
        parts.append(values["LastErrorDesc"])
    return "; ".join(parts)


def _product_code(value: str) -> str:
    value = (value or "").strip()
    if not msi.PRODUCT_CODE.match(value):
        raise InvalidInput(
            f"product code {value!r} is not an MSI ProductCode: a GUID in braces, "
            "e.g. {6F7CB29F-1319-4816-B345-0856916EB801}",
            field="product_code",
        )
    return value.upper()


def _install_args(value: str) -> str:
    value = (value or "").strip()
    if len(value) > _MAX_ARGS:
        raise InvalidInput(
            f"install arguments are {len(value)} characters; the limit is {_MAX_ARGS}", field="install_args"
        )
    if any(ord(c) < 32 for c in value):
        raise InvalidInput(
            "install arguments must be one line without control characters", field="install_args"
        )
    return value


def _url(value: str) -> str:
    value = value.strip()
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        parts = None
    if parts is None or parts.scheme.lower() != "https" or not parts.hostname:
        raise InvalidInput(
            f"url {value!r} must be an https:// URL with a host name (Windows downloads the MSI from it)",
            field="url",
        )
    if len(value) > _MAX_URL or any(c.isspace() or ord(c) < 32 for c in value):
        raise InvalidInput(f"url must be at most {_MAX_URL} characters without spaces", field="url")
    return value


def _sha256(value: str) -> str:
    value = value.strip()
    if not _SHA256.fullmatch(value):
        raise InvalidInput(
            f"sha256 {value!r} is not a SHA-256: it must be 64 hexadecimal characters", field="sha256"
        )
    return value.lower()
