"""EnterpriseDesktopAppManagement MSI (protocol.md §9): the MsiInstallJob winmdm builds has the
structure of the documented sample, the sample's job reads back, and the LocURIs and the
install-result alert are read as the vectors show them."""

from __future__ import annotations

import dataclasses

import pytest
from lxml import etree

from tests.vectors import vector
from winmdm.errors import MalformedMessage
from winmdm.protocol import syncml
from winmdm.protocol.csp import msi

PRODUCT = "{6F7CB29F-1319-4816-B345-0856916EB801}"
VECTOR_URI = (
    "./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/"
    "%7B6F7CB29F-1319-4816-B345-0856916EB801%7D/DownloadInstall"
)
VECTOR_JOB = msi.MsiInstallJob(
    id="{9BD4F7CD-880A-40B5-B74C-1BEECB51E596}",
    version="1.0.0",
    content_urls=("http://bcl-w2k12r2-vm/testapps/msi/Orca/Orca.msi", "https://dp2.com/packages/myApp.msi"),
    file_hash="4525065777EF18B9444ABF71DD4B48E5F64F4F0E1E029995FB8DA441CDE4296E",
    command_line="/quiet",
    timeout=5,
    retry_count=3,
    retry_interval=5,
)


def _vector_commands() -> tuple[syncml.Command, ...]:
    return syncml.parse_commands(vector("syncml/syncml_msi_install_device.xml"))


def _vector_job_element() -> etree._Element:
    root = etree.fromstring(vector("syncml/syncml_msi_install_device.xml"))
    return next(e for e in root.iter() if etree.QName(e).localname == "MsiInstallJob")


def _shape(element: etree._Element) -> tuple:
    """Names (namespace dropped), attributes, stripped text and children, recursively."""
    return (
        etree.QName(element).localname,
        dict(element.attrib),
        (element.text or "").strip(),
        tuple(_shape(c) for c in element if isinstance(c.tag, str)),
    )


def test_built_job_has_the_structure_of_the_documented_sample() -> None:
    built = etree.fromstring(msi.build_job(VECTOR_JOB).encode())
    assert _shape(built) == _shape(_vector_job_element())


def test_the_samples_job_parses() -> None:
    exec_command = _vector_commands()[1]
    assert isinstance(exec_command, syncml.Exec)
    assert msi.parse_job(exec_command.items[0].data) == VECTOR_JOB


def test_job_round_trips_with_download_from_aad() -> None:
    job = msi.MsiInstallJob(
        id=PRODUCT, version="2.1", content_urls=("https://a.example/x.msi",), file_hash="AB" * 32
    )
    assert msi.parse_job(msi.build_job(job)) == job
    aad = dataclasses.replace(job, download_from_aad=True)
    text = msi.build_job(aad)
    assert "<DownloadFromAad>1</DownloadFromAad></Enforcement>" in text
    assert msi.parse_job(text) == aad


def test_job_text_is_escaped_where_it_must_be() -> None:
    job = msi.MsiInstallJob(
        id=PRODUCT,
        version="1.0",
        content_urls=("https://a.example/x.msi?a=1&b=<2>",),
        file_hash="00" * 32,
        command_line='/quiet PROP="a & b"',
    )
    text = msi.build_job(job)
    assert "a=1&amp;b=&lt;2&gt;" in text and "a &amp; b" in text
    assert msi.parse_job(text) == job


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("<Other/>", "expected MsiInstallJob"),
        ("<MsiInstallJob><Product/></MsiInstallJob>", "needs an id"),
        ('<MsiInstallJob id="x"><Product Version="1"/></MsiInstallJob>', "ContentURLList"),
        (
            '<MsiInstallJob id="x"><Product Version="1"><Download><ContentURLList/></Download>'
            "<Validation><FileHash>AA</FileHash></Validation><Enforcement><TimeOut>soon</TimeOut>"
            "</Enforcement></Product></MsiInstallJob>",
            "TimeOut must be a whole number",
        ),
        ('<!DOCTYPE x [<!ENTITY a "b">]><MsiInstallJob/>', "DTD"),
    ],
)
def test_bad_jobs_say_what_is_wrong(text, problem) -> None:
    with pytest.raises(MalformedMessage, match=problem):
        msi.parse_job(text)


def test_install_command_is_add_then_exec_of_download_install_in_a_sequence() -> None:
    command = msi.install_command(PRODUCT, VECTOR_JOB)
    assert isinstance(command, syncml.Sequence)
    add, exec_command = command.commands
    vector_add, vector_exec = _vector_commands()
    assert isinstance(add, syncml.Add) and add.items == vector_add.items
    assert isinstance(exec_command, syncml.Exec)
    assert exec_command.items[0].target == VECTOR_URI == vector_exec.items[0].target
    assert exec_command.items[0].meta == syncml.Meta(format="xml", type="text/plain")
    assert vector_exec.items[0].meta == exec_command.items[0].meta
    # Through the codec and back, as the command queue stores it.
    again = syncml.parse_fragment(syncml.build_fragment(command))
    assert msi.parse_job(again.commands[1].items[0].data) == VECTOR_JOB


def test_locuris() -> None:
    assert msi.download_install_uri(PRODUCT) == VECTOR_URI
    assert msi.status_uri(PRODUCT).endswith("/MSI/%7B6F7CB29F-1319-4816-B345-0856916EB801%7D/Status")
    assert msi.last_error_uri(PRODUCT).endswith("%7D/LastError")
    get = msi.status_command(PRODUCT)
    assert [i.target.rsplit("/", 1)[1] for i in get.items] == ["Status", "LastError", "LastErrorDesc"]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (VECTOR_URI, (PRODUCT, "DownloadInstall")),
        (VECTOR_URI.replace("%7B", "{").replace("%7D", "}").lower(), None),  # ./device is not ./Device
        (
            "./Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/{6f7cb29f-1319-4816-b345-0856916eb801}/Status",
            (PRODUCT, "Status"),
        ),
        ("./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/%7BX%7D/Status/Extra", None),
        ("./Device/Vendor/MSFT/Policy/Config/X/Y", None),
    ],
)
def test_parse_node(uri, expected) -> None:
    assert msi.parse_node(uri) == expected


def test_the_install_result_alert_vector_reads_as_success() -> None:
    alert = syncml.parse_fragment(vector("syncml/syncml_alert_msi_install_result.xml"))
    result = msi.read_install_alert(alert)
    assert result == msi.InstallResult(product_code="{AF9257BA-6BBD-4624-AA9B-0182D50292C3}", code=0)
    assert result.succeeded


@pytest.mark.parametrize(
    ("data", "code", "text"),
    [
        ("-2147023293", -2147023293, "0x80070643"),
        ("0x80070643", 0x80070643, "0x80070643"),
        ("1603", 1603, "1603"),
    ],
)
def test_failure_codes(data, code, text) -> None:
    alert = syncml.Alert(
        cmd_id=4,
        data=syncml.AlertCode.GENERIC_ALERT,
        items=(
            syncml.Item(
                source=VECTOR_URI, meta=syncml.Meta(type=msi.INSTALL_ALERT_TYPE, format="int"), data=data
            ),
        ),
    )
    result = msi.read_install_alert(alert)
    assert result is not None and result.code == code and not result.succeeded
    assert msi.describe_code(result.code) == text


def test_other_alerts_are_not_install_results() -> None:
    login = syncml.Alert(
        cmd_id=2,
        data=syncml.AlertCode.CLIENT_EVENT,
        items=(syncml.Item(meta=syncml.Meta(type="com.microsoft/MDM/LoginStatus"), data="user"),),
    )
    assert msi.read_install_alert(login) is None
    bad = syncml.Alert(
        cmd_id=2,
        data=syncml.AlertCode.GENERIC_ALERT,
        items=(syncml.Item(source=VECTOR_URI, meta=syncml.Meta(type=msi.INSTALL_ALERT_TYPE), data="oops"),),
    )
    with pytest.raises(MalformedMessage, match="not a number"):
        msi.read_install_alert(bad)


def test_install_statuses() -> None:
    assert msi.InstallStatus(70).installed
    assert msi.InstallStatus(60).failed and msi.InstallStatus(30).failed
    assert [s for s in msi.InstallStatus if s.installed or s.failed] == [30, 60, 70]
    assert msi.InstallStatus(48).description == "pending user session"
