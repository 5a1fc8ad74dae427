"""A stock osqueryd 5.x on Windows as its tls plugins speak to a server (docs/agent-channel.md).

No osquery binary installs from the registries this project may use (Debian has no osquery
package, PyPI's `osquery` is the Python extension SDK and npm's a client library), so this
emulator stands in for it. It sends what osquery's source sends, byte for byte:

- Enroll (plugins/remote/enroll/tls_enroll.cpp): `enroll_secret` (the file's content, trimmed),
  `host_identifier`, `platform_type` (the PlatformType bits as a decimal string, "2" on
  Windows), then `host_details` with the first row of os_version, osquery_info, platform_info
  and system_info (a std::set, so in that order), every value a string, columns sorted (a Row
  is a std::map). No Authorization header: there is no node key yet.
- Every later request (osquery/remote/utility.h TLSRequestHelper::go) adds `node_key` to the
  body and `Authorization: NodeKey <key>`. JSON::addCopy (osquery/utils/json/json.cpp) removes a
  key before adding it, and rapidjson's RemoveMember(MemberIterator) moves the last member into
  the gap (rapidjson/document.h: "may reorder the object members"): the logger
  (plugins/logger/tls_logger.cpp), which sets node_key first, so sends `data`, `log_type`,
  `node_key` in that order.
- The distributed write (osquery/distributed/distributed.cpp) is `queries`, `statuses`,
  `messages`, `stats`, then `node_key`.
- Compact JSON (rapidjson's Writer), UTF-8, `Content-Type` and `Accept: application/json`,
  `User-Agent: osquery/<version>`; a reply with `"node_invalid": true` makes it forget its node
  key and enroll again at the next request; the HTTP status is not looked at.
- TLS 1.2 only, with osquery's cipher list (osquery/remote/transports/tls.h).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

VERSION = "5.12.1"
WINDOWS_PLATFORM_TYPE = "2"
OSQUERY_CIPHERS = (
    "ECDH+AESGCM:DH+AESGCM:ECDH+AES256:DH+AES256:ECDH+AES128:DH+AES:ECDH+3DES:DH+3DES:"
    "RSA+AESGCM:RSA+AES:RSA+3DES:!aNULL:!MD5:!CBC:!SHA"
)
MDM_DEVICE_ID_KEY = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Provisioning\\OMADM\\MDMDeviceID"

# The --*_tls_endpoint flags an admin sets for winmdm (the paths Fleet serves).
FLAGS = {
    "enroll_tls_endpoint": "/api/osquery/enroll",
    "config_tls_endpoint": "/api/osquery/config",
    "logger_tls_endpoint": "/api/osquery/log",
    "distributed_tls_read_endpoint": "/api/osquery/distributed/read",
    "distributed_tls_write_endpoint": "/api/osquery/distributed/write",
}


def osquery_tls_context(server_certs: Path) -> ssl.SSLContext:
    """What --tls_server_certs and osquery's TLS client allow: TLS 1.2, its ciphers."""
    context = ssl.create_default_context(cafile=str(server_certs))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(OSQUERY_CIPHERS)
    return context


def compact(value: Any) -> bytes:
    """rapidjson's Writer: no spaces, UTF-8 as is."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass
class Sent:
    path: str
    headers: dict[str, str]
    body: bytes
    response: httpx.Response


@dataclass
class OsqueryAgent:
    """One Windows PC's osqueryd. `enroll_secret` is the content of --enroll_secret_path."""

    enroll_secret: str
    hardware_uuid: str = "4C4C4544-0042-3510-8052-B4C04F4B4E32"
    serial: str = "5BKRW13"
    hostname: str = "DESKTOP-7F3K2QX"
    mdm_device_id: str | None = None  # the registry's DeviceClientId once MDM is on
    node_key: str | None = None
    flags: dict[str, str] = field(default_factory=lambda: dict(FLAGS))
    sent: list[Sent] = field(default_factory=list)
    # Extra tables for live queries: SQL -> rows.
    answers: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    # --- what osquery reads of its own PC ------------------------------------------------

    def host_details(self) -> dict[str, dict[str, str]]:
        rows = {
            "os_version": {
                "arch": "64-bit",
                "build": "22631",
                "codename": "Microsoft Windows 11 Pro",
                "install_date": "1733300000",
                "major": "10",
                "minor": "0",
                "name": "Microsoft Windows 11 Pro",
                "patch": "",
                "platform": "windows",
                "platform_like": "windows",
                "revision": "4602",
                "version": "10.0.22631",
            },
            "osquery_info": {
                "build_distro": "10",
                "build_platform": "windows",
                "config_hash": "",
                "config_valid": "0",
                "extensions": "inactive",
                "instance_id": "b0b3a4e2-51f2-4c1e-9a55-3f0e8f8d8a11",
                "pid": "4312",
                "platform_mask": "2",
                "start_time": "1733390000",
                "uuid": self.hardware_uuid,
                "version": VERSION,
                "watcher": "4300",
            },
            "platform_info": {
                "date": "08/14/2024",
                "extra": "",
                "firmware_type": "uefi",
                "revision": "1.28",
                "vendor": "Dell Inc.",
                "version": "DELL   - 1072009",
            },
            "system_info": {
                "board_model": "0KWVT8",
                "board_serial": "/5BKRW13/CNWS20048C00LZ/",
                "board_vendor": "Dell Inc.",
                "board_version": "A00",
                "computer_name": self.hostname,
                "cpu_brand": "13th Gen Intel(R) Core(TM) i7-1365U",
                "cpu_logical_cores": "12",
                "cpu_microcode": "",
                "cpu_physical_cores": "10",
                "cpu_sockets": "1",
                "cpu_subtype": "-1",
                "cpu_type": "x86_64",
                "emulated_cpu_type": "",
                "hardware_model": "Latitude 7440",
                "hardware_serial": self.serial,
                "hardware_vendor": "Dell Inc.",
                "hardware_version": "-1",
                "hostname": self.hostname,
                "local_hostname": self.hostname,
                "physical_memory": "34359738368",
                "uuid": self.hardware_uuid,
            },
        }
        return {table: dict(sorted(row.items())) for table, row in rows.items()}

    def run_sql(self, sql: str) -> tuple[list[dict[str, str]], int, str]:
        """(rows, status, message) for the few tables this PC knows; else SQLite's error 1."""
        normalized = " ".join(sql.split()).rstrip(";").lower()
        if "from registry" in normalized and "mdmdeviceid" in normalized:
            if self.mdm_device_id is None:
                return [], 0, ""
            return [{"data": self.mdm_device_id}], 0, ""
        for table in ("system_info", "os_version", "osquery_info", "platform_info"):
            if normalized == f"select * from {table}":
                return [self.host_details()[table]], 0, ""
        if sql in self.answers:
            return self.answers[sql], 0, ""
        return [], 1, f"no such table: {normalized.rpartition('from ')[2].split(' ')[0]}"

    # --- the tls plugins --------------------------------------------------------------------

    def _post(self, client: httpx.Client, endpoint: str, body: bytes, *, with_key: bool) -> dict[str, Any]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"osquery/{VERSION}",
        }
        if with_key and self.node_key:
            headers["Authorization"] = f"NodeKey {self.node_key}"
        path = self.flags[endpoint]
        response = client.post(path, content=body, headers=headers)
        self.sent.append(Sent(path, headers, body, response))
        answer = response.json()
        if answer.get("node_invalid") is True:
            self.node_key = None  # clearNodeKey(): enroll again next time
        return answer

    def enroll_body(self) -> bytes:
        return compact(
            {
                "enroll_secret": self.enroll_secret.strip(),
                "host_identifier": self.hostname,
                "platform_type": WINDOWS_PLATFORM_TYPE,
                "host_details": self.host_details(),
            }
        )

    def enroll(self, client: httpx.Client) -> dict[str, Any]:
        answer = self._post(client, "enroll_tls_endpoint", self.enroll_body(), with_key=False)
        key = answer.get("node_key")
        if isinstance(key, str) and key:
            self.node_key = key
        return answer

    def _ensure_key(self, client: httpx.Client) -> None:
        if not self.node_key:  # getNodeKey(): enroll when no key is stored
            self.enroll(client)

    def config(self, client: httpx.Client) -> dict[str, Any]:
        self._ensure_key(client)
        return self._post(
            client, "config_tls_endpoint", compact({"node_key": self.node_key or ""}), with_key=True
        )

    def log(self, client: httpx.Client, log_type: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        self._ensure_key(client)
        body = compact({"data": lines, "log_type": log_type, "node_key": self.node_key or ""})
        return self._post(client, "logger_tls_endpoint", body, with_key=True)

    def distributed_read(self, client: httpx.Client) -> dict[str, Any]:
        self._ensure_key(client)
        return self._post(
            client, "distributed_tls_read_endpoint", compact({"node_key": self.node_key or ""}), with_key=True
        )

    def distributed_write(
        self, client: httpx.Client, results: dict[str, tuple[list[dict[str, str]], int, str]]
    ) -> dict[str, Any]:
        body = {
            "queries": {name: rows for name, (rows, _, _) in results.items()},
            "statuses": {name: status for name, (_, status, _) in results.items()},
            "messages": {name: message for name, (_, _, message) in results.items()},
            "stats": {
                name: {"wall_time_ms": 3, "user_time": 0, "system_time": 15, "memory": 0} for name in results
            },
            "node_key": self.node_key or "",
        }
        return self._post(client, "distributed_tls_write_endpoint", compact(body), with_key=True)

    def distributed_round(
        self, client: httpx.Client, run: Callable[[str], tuple[list[dict[str, str]], int, str]] | None = None
    ) -> dict[str, str]:
        """One distributed interval: read, run every query, write the results. Returns the
        queries that were read."""
        answer = self.distributed_read(client)
        queries = answer.get("queries") or {}
        if queries:
            self.distributed_write(
                client, {name: (run or self.run_sql)(sql) for name, sql in queries.items()}
            )
        return queries
