"""The agent package through the whole app in-process, on SQLite and PostgreSQL: the admin sets
the MSI, newly enrolled hosts get Add + Exec of an MsiInstallJob in their first session, the
status follows the device's alerts and its Status/LastError nodes, and winmdm's own download
link is signed and expires."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

import pytest

from tests.services.conftest import SERVER, TENANT
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from winmdm.domain.management import AgentStatus, CommandKind, CommandState
from winmdm.errors import InvalidInput
from winmdm.protocol import syncml
from winmdm.protocol.csp import msi
from winmdm.protocol.syncml import StatusCode
from winmdm.runtime import Runtime, build
from winmdm.services.agent import KEY_FILE

PRODUCT = "{A427C0AA-E2D5-40DF-ACE8-0D726A6BE096}"
URL = "https://downloads.corp.example/agent/agent-1.2.3.msi"
SHA = "4525065777ef18b9444abf71dd4b48e5f64f4f0e1e029995fb8da441cde4296e"
MSI_BYTES = bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 504 + b"winmdm agent"
DOWNLOAD_INSTALL = msi.download_install_uri(PRODUCT)
STATUS = msi.status_uri(PRODUCT)
LAST_ERROR = msi.last_error_uri(PRODUCT)
LAST_ERROR_DESC = msi.last_error_desc_uri(PRODUCT)


@dataclass
class MsiDevice(ManagedDevice):
    """The emulator plus the MSI CSP: Exec of .../DownloadInstall answers `exec_code` (202:
    accepted, installing in the background) and keeps the job it carried."""

    exec_code: int = StatusCode.ACCEPTED
    jobs: list[msi.MsiInstallJob] = field(default_factory=list)

    def _execute(self, command, msg_ref, next_id):
        if isinstance(command, syncml.Exec) and (command.items[0].target or "").endswith("/DownloadInstall"):
            self.jobs.append(msi.parse_job(command.items[0].data))
            return [syncml.command_status(command, self.exec_code, cmd_id=next(next_id), msg_ref=msg_ref)]
        return super()._execute(command, msg_ref, next_id)

    def set_job(self, status: int, last_error: str = "0", desc: str | None = None) -> None:
        self.nodes[STATUS] = str(status)
        self.nodes[LAST_ERROR] = last_error
        if desc is not None:
            self.nodes[LAST_ERROR_DESC] = desc


def install_alert(
    data: str, *, product: str = PRODUCT, code: int = syncml.AlertCode.GENERIC_ALERT
) -> syncml.Alert:
    """As the vector shows it: Source LocURI with the product id not encoded."""
    return syncml.Alert(
        cmd_id=4,
        data=code,
        items=(
            syncml.Item(
                source=f"./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/{product}/DownloadInstall",
                meta=syncml.Meta(type=msi.INSTALL_ALERT_TYPE, format="int", mark="informational"),
                data=data,
            ),
        ),
    )


@pytest.fixture
def enroll(client, entra, clock):
    def make(device: WindowsDevice | None = None) -> MsiDevice:
        device = device or WindowsDevice()
        device.enroll(
            client,
            SERVER + "/EnrollmentServer/Discovery.svc",
            email="alice@corp.example",
            token=entra.token(tenant_id=TENANT, audience=SERVER, issued_at=clock.now),
        )
        return MsiDevice(device)

    return make


def _host_id(runtime: Runtime, managed: ManagedDevice) -> int:
    with runtime.storage.transaction() as tx:
        return tx.enrollments.find_active_by_device_id(managed.device.device_id).host_id


def _status(runtime: Runtime, managed: ManagedDevice):
    return runtime.agent.host_status(_host_id(runtime, managed))


def _kinds(runtime: Runtime, managed: ManagedDevice) -> list[CommandKind]:
    host_id = _host_id(runtime, managed)
    with runtime.storage.transaction() as tx:
        return [q.command.kind for q in reversed(tx.commands.list_for_host(host_id))]


def _set_url_package(runtime: Runtime) -> None:
    runtime.agent.set_package(
        PRODUCT, "1.2.3", "/quiet /norestart", url=URL, sha256=SHA.upper(), actor="admin"
    )


def _installing(runtime, client, enroll) -> MsiDevice:
    _set_url_package(runtime)
    managed = enroll()
    managed.session(client)
    assert _status(runtime, managed).status is AgentStatus.INSTALLING
    return managed


# -- the admin sets the package ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field_name", "problem"),
    [
        ({"url": "http://downloads.corp.example/a.msi"}, "url", "must be an https:// URL"),
        ({"url": "https:///a.msi"}, "url", "with a host name"),
        ({"url": "https://[fe80::1/a.msi"}, "url", "with a host name"),
        ({"url": "ftp://downloads.corp.example/a.msi"}, "url", "https://"),
        ({"url": "https://downloads.corp.example/a b.msi"}, "url", "without spaces"),
        ({"sha256": None}, "sha256", "sha256 is required with a URL"),
        ({"sha256": "abc123"}, "sha256", "64 hexadecimal characters"),
        ({"sha256": "g" * 64}, "sha256", "64 hexadecimal characters"),
        ({"sha256": SHA + "00"}, "sha256", "64 hexadecimal characters"),
        ({"product_code": "A427C0AA-E2D5-40DF-ACE8-0D726A6BE096"}, "product_code", "GUID in braces"),
        ({"product_code": "{not-a-guid}"}, "product_code", "GUID in braces"),
        ({"version": ""}, "version", "numbers and dots"),
        ({"version": "1.2-beta"}, "version", "numbers and dots"),
        ({"install_args": "/quiet\nREBOOT=1"}, "install_args", "one line"),
        ({"url": None, "sha256": None}, "content", "upload the MSI, or give a URL"),
        ({"content": MSI_BYTES}, "url", "not both"),
    ],
)
def test_package_input_is_validated(runtime, kwargs, field_name, problem) -> None:
    values = {
        "product_code": PRODUCT,
        "version": "1.2.3",
        "install_args": "/quiet",
        "url": URL,
        "sha256": SHA,
    }
    values.update(kwargs)
    with pytest.raises(InvalidInput, match=problem) as error:
        runtime.agent.set_package(
            values.pop("product_code"),
            values.pop("version"),
            values.pop("install_args"),
            actor=None,
            **values,
        )
    assert error.value.field == field_name
    assert runtime.agent.package() is None


@pytest.mark.parametrize(
    ("content", "sha256", "field_name", "problem"),
    [
        (b"MZ\x90\x00 not an msi", None, "content", "not an MSI"),
        (MSI_BYTES, SHA, "sha256", "does not match the uploaded file"),
    ],
)
def test_uploads_are_validated(runtime, content, sha256, field_name, problem) -> None:
    with pytest.raises(InvalidInput, match=problem) as error:
        runtime.agent.set_package(PRODUCT, "1.0", "/quiet", content=content, sha256=sha256, actor=None)
    assert error.value.field == field_name


def test_a_package_is_stored_normalised_with_an_activity(runtime) -> None:
    _set_url_package(runtime)
    package = runtime.agent.package()
    assert (package.product_code, package.sha256, package.url, package.content) == (PRODUCT, SHA, URL, None)
    uploaded = runtime.agent.set_package(
        PRODUCT.lower(),
        "2.0",
        " /qn ",
        content=MSI_BYTES,
        sha256=hashlib.sha256(MSI_BYTES).hexdigest(),
        actor="me",
    )
    assert uploaded.product_code == PRODUCT and uploaded.install_args == "/qn" and uploaded.url is None
    assert runtime.agent.package().content == MSI_BYTES
    with runtime.storage.transaction() as tx:
        activities = [a for a in tx.activities.list() if a.type == "agent_package_set"]
    assert [(a.actor, a.details["source"]) for a in activities] == [("me", "upload"), ("admin", "url")]
    assert activities[1].details["sha256"] == SHA and activities[1].details["url"] == URL


def test_the_download_key_is_made_once_and_private(runtime) -> None:
    path = runtime.config.data_dir / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(path.read_bytes()) == 32
    again = build(runtime.config, with_tls=False)
    try:
        assert path.read_bytes() == again.agent._key == runtime.agent._key
    finally:
        again.close()


# -- delivery and status -------------------------------------------------------------------------
def test_a_new_host_gets_add_then_exec_in_its_first_session(runtime, client, enroll) -> None:
    _set_url_package(runtime)
    managed = enroll()
    log = managed.session(client)
    sequences = [c for c in log.received if isinstance(c, syncml.Sequence)]
    assert len(sequences) == 1
    add, exec_command = sequences[0].commands
    assert isinstance(add, syncml.Add) and add.items[0].target == DOWNLOAD_INSTALL
    assert isinstance(exec_command, syncml.Exec) and exec_command.items[0].target == DOWNLOAD_INSTALL
    assert DOWNLOAD_INSTALL.startswith("./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/%7BA427C0AA")
    assert exec_command.items[0].meta == syncml.Meta(format="xml", type="text/plain")
    (job,) = managed.jobs
    assert job.id == PRODUCT and job.version == "1.2.3"
    assert job.content_urls == (URL,)
    assert job.file_hash == SHA.upper()
    assert job.command_line == "/quiet /norestart"
    assert (job.timeout, job.retry_count, job.retry_interval) == (10, 3, 5)
    status = _status(runtime, managed)
    assert status.status is AgentStatus.INSTALLING and status.last_error is None
    host_id = _host_id(runtime, managed)
    with runtime.storage.transaction() as tx:
        install = tx.commands.get(host_id, status.command_uuid)
    assert install.command.kind is CommandKind.AGENT_INSTALL and install.state is CommandState.DONE


def test_status_is_pending_until_the_device_accepts_the_exec(runtime, client, enroll) -> None:
    _set_url_package(runtime)
    managed = enroll()
    # Package 1 only: the session breaks before the device answers anything.
    header = syncml.SyncHdr(
        session_id="0A",
        msg_id=1,
        target=managed.device.enrolled.management_url,
        source=managed.device.device_id,
        source_name=managed.name,
        cred=managed._cred(),
    )
    reply = managed.post(client, syncml.Message(header=header, commands=(syncml.Alert(cmd_id=1, data=1201),)))
    assert any(isinstance(c, syncml.Sequence) for c in reply.commands)
    assert _status(runtime, managed).status is AgentStatus.PENDING
    managed.nonce = base64.b64decode(reply.commands[0].chal.meta.next_nonce)
    managed.session(client)  # delivered again, accepted
    assert _status(runtime, managed).status is AgentStatus.INSTALLING
    assert len(managed.jobs) == 1


def test_an_existing_node_does_not_block_the_exec(runtime, client, enroll) -> None:
    _set_url_package(runtime)
    managed = enroll()
    managed.nodes[DOWNLOAD_INSTALL] = ""  # left from an earlier job: the Add answers 418
    managed.session(client)
    host_id, status = _host_id(runtime, managed), _status(runtime, managed)
    with runtime.storage.transaction() as tx:
        install = tx.commands.get(host_id, status.command_uuid)
    codes = {r.cmd: r.code for r in install.replies}
    assert codes == {"Sequence": 200, "Add": 418, "Exec": 202}
    assert _status(runtime, managed).status is AgentStatus.INSTALLING


def test_a_refused_exec_fails_the_install(runtime, client, enroll) -> None:
    _set_url_package(runtime)
    managed = enroll()
    managed.exec_code = StatusCode.COMMAND_FAILED
    managed.session(client)
    status = _status(runtime, managed)
    assert status.status is AgentStatus.FAILED
    assert status.last_error == f"the device answered 500 to Exec of {DOWNLOAD_INSTALL}"


@pytest.mark.parametrize("alert_code", [syncml.AlertCode.GENERIC_ALERT, syncml.AlertCode.CLIENT_EVENT])
def test_a_success_alert_marks_it_installed(runtime, client, enroll, alert_code) -> None:
    managed = _installing(runtime, client, enroll)
    managed.set_job(70)
    managed.session(client, extra=(install_alert("0", code=alert_code),))
    status = _status(runtime, managed)
    assert status.status is AgentStatus.INSTALLED and status.last_error is None
    # Nothing more to do: no reinstall, no further Get.
    assert managed.session(client).received == []
    assert len(managed.jobs) == 1


@pytest.mark.parametrize(("data", "shown"), [("-2147023293", "0x80070643"), ("1603", "1603")])
def test_a_failure_alert_marks_it_failed_with_the_code(runtime, client, enroll, data, shown) -> None:
    managed = _installing(runtime, client, enroll)
    managed.set_job(60, data)
    managed.session(client, extra=(install_alert(data),))
    status = _status(runtime, managed)
    assert status.status is AgentStatus.FAILED
    assert status.last_error == f"{shown}: the device reported that the install failed"


def test_an_alert_for_another_msi_changes_nothing(runtime, client, enroll) -> None:
    managed = _installing(runtime, client, enroll)
    managed.set_job(50)
    other = "{11111111-2222-3333-4444-555555555555}"
    managed.session(client, extra=(install_alert("1603", product=other),))
    assert _status(runtime, managed).status is AgentStatus.INSTALLING


@pytest.mark.parametrize(
    ("node_status", "last_error", "desc", "expected", "error"),
    [
        (70, "0", None, AgentStatus.INSTALLED, None),
        (
            60,
            "-2147023293",
            "Fatal error during installation.",
            AgentStatus.FAILED,
            "Status 60 (enforcement failed); LastError 0x80070643; Fatal error during installation.",
        ),
        (30, "-2145844844", None, AgentStatus.FAILED, "Status 30 (download failed); LastError 0x80190194"),
        (50, "0", None, AgentStatus.INSTALLING, None),
    ],
)
def test_without_an_alert_the_next_session_reads_status_and_last_error(
    runtime, client, enroll, node_status, last_error, desc, expected, error
) -> None:
    managed = _installing(runtime, client, enroll)
    managed.set_job(node_status, last_error, desc)
    log = managed.session(client)  # no alert came
    gets = [c for c in log.received if isinstance(c, syncml.Get)]
    assert [i.target for i in gets[0].items] == [STATUS, LAST_ERROR, LAST_ERROR_DESC]
    status = _status(runtime, managed)
    assert (status.status, status.last_error) == (expected, error)


def test_a_running_job_is_polled_each_session_until_it_ends(runtime, client, enroll) -> None:
    managed = _installing(runtime, client, enroll)
    managed.set_job(20)
    managed.session(client)
    assert _status(runtime, managed).status is AgentStatus.INSTALLING
    managed.set_job(70)
    log = managed.session(client)
    assert [type(c).__name__ for c in log.received] == ["Get"]
    assert _status(runtime, managed).status is AgentStatus.INSTALLED
    assert managed.session(client).received == []  # done: no more polling
    assert _kinds(runtime, managed).count(CommandKind.AGENT_STATUS) == 2


def test_a_job_the_device_does_not_know_fails(runtime, client, enroll) -> None:
    managed = _installing(runtime, client, enroll)
    managed.session(client)  # no Status node at all: Get answers 404
    status = _status(runtime, managed)
    assert status.status is AgentStatus.FAILED
    assert status.last_error == f"the device has no install job: Get of {STATUS} answered 404"


# -- the signed download -------------------------------------------------------------------------
def test_an_uploaded_msi_is_served_behind_a_signed_expiring_link(runtime, client, enroll, clock) -> None:
    runtime.agent.set_package(PRODUCT, "1.2.3", "/quiet", content=MSI_BYTES, actor="admin")
    managed = enroll()
    managed.session(client)
    (job,) = managed.jobs
    assert job.file_hash == hashlib.sha256(MSI_BYTES).hexdigest().upper()
    (url,) = job.content_urls
    assert url.startswith(SERVER + "/agent/") and url.endswith(".msi")
    response = client.get(url)
    assert response.status_code == 200
    assert response.content == MSI_BYTES
    assert response.headers["content-type"] == "application/x-msi"

    path = urlsplit(url).path
    token = path.removeprefix("/agent/").removesuffix(".msi")
    sha, expires, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other_sha = "0" * 64
    for tampered in (
        f"{sha}.{expires}.{flipped}",
        f"{sha}.{int(expires) + 3600}.{signature}",  # a longer life, same signature
        f"{other_sha}.{expires}.{signature}",
        f"{sha}.{expires}",
        "nonsense",
        f"{sha}.{expires}.{signature}é",
        f"{sha}.\u0661\u0662.{signature}",  # Arabic-Indic digits: str.isdigit() says yes
        f"{sha}.{expires}\u00b2.{signature}",
        f"{sha}.{'9' * 40}.{signature}",
    ):
        refused = client.get(f"/agent/{tampered}.msi")
        assert refused.status_code == 403, tampered
        assert refused.text == "This download link is not valid."

    clock.advance(timedelta(hours=23, minutes=59))
    assert client.get(url).status_code == 200
    clock.advance(timedelta(minutes=1))
    expired = client.get(url)
    assert expired.status_code == 403 and "expired" in expired.text


def test_a_link_to_a_replaced_package_is_not_found(runtime, client, enroll) -> None:
    runtime.agent.set_package(PRODUCT, "1.2.3", "/quiet", content=MSI_BYTES, actor=None)
    managed = enroll()
    managed.session(client)
    url = managed.jobs[0].content_urls[0]
    runtime.agent.set_package(PRODUCT, "1.2.4", "/quiet", content=MSI_BYTES + b"v2", actor=None)
    gone = client.get(url)
    assert gone.status_code == 404 and gone.text == "No agent package matches this download link."
    _set_url_package(runtime)  # an external URL now: winmdm serves nothing
    assert client.get(url).status_code == 404


# -- which hosts get it --------------------------------------------------------------------------
def test_hosts_enrolled_later_also_get_it_and_earlier_hosts_do_not(runtime, client, enroll) -> None:
    before = enroll()
    before.session(client)
    _set_url_package(runtime)
    assert before.session(client).received == []
    assert _status(runtime, before) is None
    later = [enroll(), enroll()]
    for managed in later:
        managed.session(client)
        assert len(managed.jobs) == 1 and managed.jobs[0].content_urls == (URL,)
        assert _status(runtime, managed).status is AgentStatus.INSTALLING
    assert before.jobs == []


def test_no_package_no_install(runtime, client, enroll) -> None:
    managed = enroll()
    log = managed.session(client)
    assert not any(isinstance(c, syncml.Sequence) for c in log.received)
    assert _status(runtime, managed) is None
    assert CommandKind.AGENT_INSTALL not in _kinds(runtime, managed)


def test_reenrollment_does_not_reinstall_an_installed_agent(runtime, client, enroll) -> None:
    managed = _installing(runtime, client, enroll)
    managed.set_job(70)
    managed.session(client, extra=(install_alert("0"),))
    installed = _status(runtime, managed)
    assert installed.status is AgentStatus.INSTALLED

    host_id = _host_id(runtime, managed)
    managed.unenroll(client)  # the user turns MDM off, then on again: the same PC enrolls again
    again = enroll(managed.device)
    assert _host_id(runtime, again) == host_id
    again.set_job(70)  # the job is still on the device
    log = again.session(client)
    assert not any(isinstance(c, syncml.Sequence) for c in log.received)
    assert again.jobs == []
    status = _status(runtime, again)
    assert (status.status, status.command_uuid, status.updated_at) == (
        AgentStatus.INSTALLED,
        installed.command_uuid,
        installed.updated_at,
    )
    assert _kinds(runtime, again).count(CommandKind.AGENT_INSTALL) == 1


def test_reenrollment_of_a_reset_pc_installs_again(runtime, client, enroll) -> None:
    managed = _installing(runtime, client, enroll)
    managed.session(client, extra=(install_alert("0"),))
    assert _status(runtime, managed).status is AgentStatus.INSTALLED
    managed.unenroll(client)  # turned off before the reset
    again = enroll(managed.device)  # a fresh emulator: no MSI job on it
    again.session(client)
    assert len(again.jobs) == 1
    assert _status(runtime, again).status is AgentStatus.INSTALLING
    assert _kinds(runtime, again).count(CommandKind.AGENT_INSTALL) == 2


def test_reenrollment_retries_a_failed_install(runtime, client, enroll) -> None:
    managed = _installing(runtime, client, enroll)
    managed.session(client, extra=(install_alert("1603"),))
    assert _status(runtime, managed).status is AgentStatus.FAILED
    host_id = _host_id(runtime, managed)
    managed.unenroll(client)
    again = enroll(managed.device)
    assert _host_id(runtime, again) == host_id
    again.session(client)
    assert len(again.jobs) == 1
    status = _status(runtime, again)
    assert status.status is AgentStatus.INSTALLING and status.last_error is None
