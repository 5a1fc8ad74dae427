"""EnterpriseDesktopAppManagement CSP, MSI part (protocol.md §9): install an MSI with an
MsiInstallJob, read the job's Status and LastError, and the install-result alert.

Pure: values in, SyncML commands and XML text out. The caller picks job ids, URLs and hashes.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

from lxml import etree

from winmdm.errors import MalformedMessage
from winmdm.protocol import syncml, xml

MSI_ROOT = "./Device/Vendor/MSFT/EnterpriseDesktopAppManagement/MSI"
INSTALL_ALERT_TYPE = "Reversed-Domain-Name:com.microsoft.mdm.win32csp_install"
PRODUCT_CODE = re.compile(
    r"^\{[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\}$"
)
# ./Device/Vendor/... or ./Vendor/... (no prefix = device), product id URI-encoded or not.
_NODE = re.compile(
    r"^\./(?:Device/)?Vendor/MSFT/EnterpriseDesktopAppManagement/MSI/(?P<product>[^/]+)/(?P<leaf>[^/]+)$"
)


class InstallStatus(enum.IntEnum):
    """Values of `.../MSI/<id>/Status` (protocol.md §9)."""

    INITIALIZED = 10
    DOWNLOAD_IN_PROGRESS = 20
    PENDING_DOWNLOAD_RETRY = 25
    DOWNLOAD_FAILED = 30
    DOWNLOAD_COMPLETED = 40
    PENDING_USER_SESSION = 48
    ENFORCEMENT_IN_PROGRESS = 50
    PENDING_ENFORCEMENT_RETRY = 55
    ENFORCEMENT_FAILED = 60
    ENFORCEMENT_COMPLETED = 70

    @property
    def installed(self) -> bool:
        return self is InstallStatus.ENFORCEMENT_COMPLETED

    @property
    def failed(self) -> bool:
        return self in (InstallStatus.DOWNLOAD_FAILED, InstallStatus.ENFORCEMENT_FAILED)

    @property
    def description(self) -> str:
        return self.name.lower().replace("_", " ")


@dataclass(frozen=True, slots=True)
class MsiInstallJob:
    """The MsiInstallJob document an Exec of `.../DownloadInstall` carries."""

    id: str  # the job id; the same id sent again does not reinstall
    version: str  # Product Version
    content_urls: tuple[str, ...]
    file_hash: str  # SHA-256, hex
    command_line: str = "/quiet"
    timeout: int = 10  # minutes msiexec may run
    retry_count: int = 3
    retry_interval: int = 5  # minutes
    download_from_aad: bool | None = None


@dataclass(frozen=True, slots=True)
class InstallResult:
    """What a win32csp_install alert reports: 0 is success, else an HRESULT or msiexec code."""

    product_code: str
    code: int

    @property
    def succeeded(self) -> bool:
        return self.code == 0


# -- LocURIs -----------------------------------------------------------------------------------
def product_uri(product_code: str) -> str:
    """`./Device/.../MSI/%7B...%7D`: the product id URI-encoded (protocol.md §8, `{` -> %7B)."""
    return f"{MSI_ROOT}/{quote(product_code, safe='')}"


def download_install_uri(product_code: str) -> str:
    return product_uri(product_code) + "/DownloadInstall"


def status_uri(product_code: str) -> str:
    return product_uri(product_code) + "/Status"


def last_error_uri(product_code: str) -> str:
    return product_uri(product_code) + "/LastError"


def last_error_desc_uri(product_code: str) -> str:
    return product_uri(product_code) + "/LastErrorDesc"


def parse_node(loc_uri: str) -> tuple[str, str] | None:
    """(product code, leaf) of an MSI node LocURI, encoded or not; None for any other LocURI."""
    match = _NODE.match(loc_uri.strip())
    if match is None:
        return None
    return unquote(match["product"]).upper(), match["leaf"]


# -- the job document --------------------------------------------------------------------------
def build_job(job: MsiInstallJob) -> str:
    """MsiInstallJob XML text (no declaration), elements in the order of the CSP's schema."""
    root = etree.Element("MsiInstallJob", id=job.id)
    product = etree.SubElement(root, "Product", Version=job.version)
    urls = etree.SubElement(etree.SubElement(product, "Download"), "ContentURLList")
    for url in job.content_urls:
        etree.SubElement(urls, "ContentURL").text = url
    etree.SubElement(etree.SubElement(product, "Validation"), "FileHash").text = job.file_hash
    enforcement = etree.SubElement(product, "Enforcement")
    etree.SubElement(enforcement, "CommandLine").text = job.command_line
    etree.SubElement(enforcement, "TimeOut").text = str(job.timeout)
    etree.SubElement(enforcement, "RetryCount").text = str(job.retry_count)
    etree.SubElement(enforcement, "RetryInterval").text = str(job.retry_interval)
    if job.download_from_aad is not None:
        etree.SubElement(enforcement, "DownloadFromAad").text = "1" if job.download_from_aad else "0"
    return etree.tostring(root, encoding="unicode")


def parse_job(data: str | bytes) -> MsiInstallJob:
    """Read an MsiInstallJob (through the hardened parser); MalformedMessage says what is missing."""
    root = xml.parse(data.encode("utf-8") if isinstance(data, str) else data)
    if xml.local(root) != "MsiInstallJob":
        raise MalformedMessage(f"expected MsiInstallJob, found {xml.local(root)}")
    job_id = xml.attr(root, "id")
    product = xml.child(root, "Product")
    if not job_id or product is None:
        raise MalformedMessage("MsiInstallJob needs an id attribute and a Product element")
    urls = xml.path(product, "Download", "ContentURLList")
    file_hash = xml.text(xml.path(product, "Validation", "FileHash"))
    enforcement = xml.child(product, "Enforcement")
    if urls is None or not file_hash or enforcement is None:
        raise MalformedMessage(
            "MsiInstallJob Product needs Download/ContentURLList, Validation/FileHash, Enforcement"
        )
    aad = xml.text(xml.child(enforcement, "DownloadFromAad"))
    return MsiInstallJob(
        id=job_id,
        version=xml.attr(product, "Version") or "",
        content_urls=tuple(xml.text(u) or "" for u in xml.children(urls, "ContentURL")),
        file_hash=file_hash,
        command_line=xml.text(xml.child(enforcement, "CommandLine")) or "",
        timeout=_int(enforcement, "TimeOut"),
        retry_count=_int(enforcement, "RetryCount"),
        retry_interval=_int(enforcement, "RetryInterval"),
        download_from_aad=None if aad is None else aad == "1",
    )


def _int(parent: xml.Element, name: str) -> int:
    value = xml.text(xml.child(parent, name))
    try:
        return int(value or "")
    except ValueError:
        raise MalformedMessage(f"MsiInstallJob Enforcement/{name} must be a whole number") from None


# -- SyncML commands ---------------------------------------------------------------------------
def install_command(product_code: str, job: MsiInstallJob) -> syncml.Sequence:
    """Add the DownloadInstall node, then Exec it with the job (protocol.md §9).

    A Sequence, not the Atomic the documentation samples use: in an Atomic, the Add answering 418
    (the node exists from an earlier job, e.g. after re-enrollment) fails the whole Atomic and
    rolls back, so the Exec never runs. A Sequence runs both in order; 418 on the Add is harmless.
    """
    uri = download_install_uri(product_code)
    return syncml.Sequence(
        cmd_id=1,
        commands=(
            syncml.Add(cmd_id=2, items=(syncml.Item(target=uri),)),
            syncml.Exec(
                cmd_id=3,
                items=(
                    syncml.Item(
                        target=uri,
                        meta=syncml.Meta(format="xml", type="text/plain"),
                        data=build_job(job),
                    ),
                ),
            ),
        ),
    )


def status_command(product_code: str) -> syncml.Get:
    """Get Status, LastError and LastErrorDesc of the product's job."""
    uris = (status_uri(product_code), last_error_uri(product_code), last_error_desc_uri(product_code))
    return syncml.Get(cmd_id=1, items=tuple(syncml.Item(target=uri) for uri in uris))


def read_install_alert(alert: syncml.Alert) -> InstallResult | None:
    """The result a 1224/1226 win32csp_install alert reports, or None if it is another alert."""
    for item in alert.items:
        if item.meta is None or item.meta.type != INSTALL_ALERT_TYPE:
            continue
        node = parse_node(item.source or item.target or "")
        if node is None or node[1] != "DownloadInstall":
            continue
        try:
            code = _code(item.data or "")
        except ValueError:
            raise MalformedMessage(f"install result alert Data {item.data!r} is not a number") from None
        return InstallResult(product_code=node[0], code=code)
    return None


def _code(text: str) -> int:
    text = text.strip()
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def describe_code(code: int) -> str:
    """An install result as people read it: HRESULTs in hex, msiexec exit codes in decimal."""
    if code < 0 or code > 0xFFFF:
        return f"0x{code & 0xFFFFFFFF:08X}"
    return str(code)
