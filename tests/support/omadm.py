"""The management half of the Windows device emulator: OMA-DM sessions as Windows runs them.

Package 1 (Alert 1201, Alert 1224, Replace DevInfo) with the MD5 digest Cred over the nonce the
provisioning document's APPSRV AAUTHDATA gave (w7 APPLICATION CSP: APPSRV is the client proving
itself to the server), then one Status per server command and Results for every Get, until the
server answers with nothing but Status. Credentials follow OMA-DM as Microsoft documents it
(oma-dm-protocol-support.md): after 212 no Cred for the rest of the session; after 200 to a
message with a Cred, the Cred again in the next message, over the Chal's NextNonce when there is
one; after 401/407, the package again as a new message (MsgID + 1) with a Cred over the new nonce.
A server message without Final is answered with Alert 1222 (send the next message); a message
of the device that carries MoreData has no Final.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization

from tests.support.device import WindowsDevice
from winmdm.protocol import digest, syncml
from winmdm.protocol.syncml import AlertCode, Cmd, StatusCode

SYNCML = "application/vnd.syncml.dm+xml"


@dataclass
class SessionLog:
    replies: list[syncml.Message] = field(default_factory=list)
    received: list[syncml.Command] = field(default_factory=list)  # every server command

    @property
    def header_codes(self) -> list[int]:
        return [
            int(next(c for c in m.commands if isinstance(c, syncml.Status) and c.cmd == Cmd.SYNC_HDR).data)
            for m in self.replies
        ]


@dataclass
class ManagedDevice:
    """A enrolled WindowsDevice that now talks OMA-DM."""

    device: WindowsDevice
    serial: str = field(default_factory=lambda: "SN" + secrets.token_hex(5).upper())
    nodes: dict[str, str] = field(default_factory=dict)  # the device's CSP tree, LocURI -> value
    answers: dict[str, int] = field(default_factory=dict)  # LocURI -> Status code to answer
    nonce: bytes = b""
    credential: str = ""
    name: str = ""
    # Large objects: the device sends Results data longer than this in chunks (None: never).
    max_chunk: int | None = None
    chunks_received: int = 0
    _incoming: dict[tuple[str, str], str] = field(default_factory=dict)
    _outgoing: list[syncml.Results] = field(default_factory=list)

    def __post_init__(self) -> None:
        enrolled = self.device.enrolled
        assert enrolled is not None, "enroll first"
        app = enrolled.document.find("APPLICATION")
        appsrv = next(a for a in app.all("APPAUTH") if a.value("AAUTHLEVEL") == "APPSRV")
        self.name = appsrv.value("AAUTHNAME")
        self.credential = digest.credential_hash(self.name, appsrv.value("AAUTHSECRET"))
        self.nonce = base64.b64decode(appsrv.value("AAUTHDATA"))
        self.nodes.update(
            {
                "./DevDetail/SwV": self.device.os_version,
                "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber": self.serial,
                "./DevDetail/Ext/Microsoft/DeviceName": self.device.device_name,
                "./DevInfo/Man": "Dell Inc.",
                "./DevInfo/Mod": "XPS 13 9310 2-in-1",
            }
        )

    # -- transport ------------------------------------------------------------------------------
    def client(self, ca: Path, **kwargs) -> httpx.Client:
        """HTTPS with the enrollment certificate, as SSLCLIENTCERTSEARCHCRITERIA selects it."""
        enrolled = self.device.enrolled
        folder = Path(tempfile.mkdtemp(prefix="winmdm-device-"))
        (folder / "cert.pem").write_bytes(enrolled.certificate.public_bytes(serialization.Encoding.PEM))
        (folder / "key.pem").write_bytes(
            enrolled.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(folder / "cert.pem"), str(folder / "key.pem"))
        return httpx.Client(verify=context, timeout=30, **kwargs)

    def post(self, client: httpx.Client, message: syncml.Message) -> syncml.Message:
        url = self.device.enrolled.management_url + "?mode=Maintenance&Platform=WoA"
        response = client.post(
            url,
            content=syncml.build_message(message),
            headers={"Content-Type": SYNCML, "User-Agent": "MSFT OMA DM Client/1.2.0.1"},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(SYNCML)
        return syncml.parse_message(response.content)

    # -- a whole session ------------------------------------------------------------------------
    def session(
        self,
        client: httpx.Client,
        *,
        max_msg_size: int | None = None,
        send_cred: bool = True,
        extra: tuple[syncml.Command, ...] = (),
        max_messages: int = 20,
        session_id: str | None = None,
    ) -> SessionLog:
        log = SessionLog()
        session_id = session_id or secrets.token_hex(2).upper()
        msg_id = 1
        meta = syncml.Meta(max_msg_size=max_msg_size) if max_msg_size else None
        commands: list[syncml.Command] = [
            syncml.Alert(cmd_id=1, data=AlertCode.CLIENT_INITIATED_MGMT),
            syncml.Alert(
                cmd_id=2,
                data=AlertCode.CLIENT_EVENT,
                items=(syncml.Item(meta=syncml.Meta(type="com.microsoft/MDM/LoginStatus"), data="user"),),
            ),
            syncml.Replace(
                cmd_id=3,
                items=tuple(
                    syncml.Item(source=uri, data=value)
                    for uri, value in (
                        ("./DevInfo/DevId", self.device.device_id),
                        ("./DevInfo/Man", "Dell Inc."),
                        ("./DevInfo/Mod", "XPS 13 9310 2-in-1"),
                        ("./DevInfo/DmV", "1.3"),
                        ("./DevInfo/Lang", "en-US"),
                        ("./Vendor/MSFT/DMClient/HWDevID", self.device.hw_dev_id or ""),
                    )
                ),
            ),
            *extra,
        ]
        cred = self._cred() if send_cred else None
        for _ in range(max_messages):
            header = syncml.SyncHdr(
                session_id=session_id,
                msg_id=msg_id,
                target=self.device.enrolled.management_url,
                source=self.device.device_id,
                source_name=self.name,
                cred=cred,
                meta=meta,
            )
            final = not any(i.more_data for c in commands for i in getattr(c, "items", ()))
            reply = self.post(client, syncml.Message(header=header, commands=tuple(commands), final=final))
            log.replies.append(reply)
            hdr_status = next(
                c for c in reply.commands if isinstance(c, syncml.Status) and c.cmd == Cmd.SYNC_HDR
            )
            assert hdr_status.msg_ref == msg_id
            if hdr_status.chal is not None and hdr_status.chal.meta.next_nonce:
                self.nonce = base64.b64decode(hdr_status.chal.meta.next_nonce)
            code = int(hdr_status.data)
            msg_id += 1
            if code in (StatusCode.MISSING_CREDENTIALS, StatusCode.INVALID_CREDENTIALS):
                if (
                    cred is not None
                    and code == StatusCode.INVALID_CREDENTIALS
                    and log.header_codes.count(401) > 1
                ):
                    return log  # give up like Windows after a retry
                cred = self._cred()  # the same package again, proven with the new nonce
                continue
            if code != StatusCode.OK and code != StatusCode.AUTHENTICATION_ACCEPTED:
                return log  # 403, 400: refused
            if code == StatusCode.AUTHENTICATION_ACCEPTED:
                cred = None  # "no further authentication is needed for the remainder of the session"
            elif cred is not None:
                cred = self._cred()  # 200: "the same credential must be sent within the next request"
            server_commands = [c for c in reply.commands if not isinstance(c, syncml.Status)]
            if not server_commands and reply.final:
                return log
            log.received.extend(server_commands)
            commands = self._answer(reply, server_commands)
        raise AssertionError("the session did not end")

    def unenroll(self, client: httpx.Client, **kwargs) -> SessionLog:
        """The user turns MDM off in Settings: Windows sends the 1226 unenrollment alert once
        (disconnecting-from-mdm-unenrollment.md), then forgets the enrollment."""
        return self.session(client, extra=(unenroll_alert(cmd_id=4),), **kwargs)

    def message(
        self,
        client: httpx.Client,
        commands: tuple[syncml.Command, ...],
        *,
        session_id: str = "1",
        msg_id: int = 1,
        cred: bool = True,
        final: bool = True,
    ) -> syncml.Message:
        """One message exactly as given (a test's own sequence), with a Cred over the current
        nonce unless `cred` is False; the Chal's nonce, if any, is taken as Windows takes it."""
        header = syncml.SyncHdr(
            session_id=session_id,
            msg_id=msg_id,
            target=self.device.enrolled.management_url,
            source=self.device.device_id,
            source_name=self.name,
            cred=self._cred() if cred else None,
        )
        reply = self.post(client, syncml.Message(header=header, commands=commands, final=final))
        status = reply.commands[0]
        assert isinstance(status, syncml.Status) and status.cmd == Cmd.SYNC_HDR
        if status.chal is not None and status.chal.meta.next_nonce:
            self.nonce = base64.b64decode(status.chal.meta.next_nonce)
        return reply

    def _cred(self) -> syncml.Cred:
        return syncml.Cred(
            meta=syncml.Meta(format="b64", type="syncml:auth-md5"),
            data=digest.digest(self.credential, self.nonce),
        )

    def _answer(self, reply: syncml.Message, commands: list[syncml.Command]) -> list[syncml.Command]:
        answers: list[syncml.Command] = []
        next_id = iter(range(1, 10_000))
        msg_ref = reply.header.msg_id
        for command in commands:
            answers.extend(self._execute(command, msg_ref, next_id))
        if self._outgoing:  # the server asked for the next message (Alert 1222): next chunk
            chunk = self._outgoing.pop(0)
            answers.append(dataclasses.replace(chunk, cmd_id=next(next_id)))
        elif not reply.final:  # the server's package goes on: ask for its next message
            answers.append(syncml.Alert(cmd_id=next(next_id), data=AlertCode.NEXT_MESSAGE))
        return answers

    def _absorb(self, command: syncml.Command) -> syncml.Command | None:
        """Assemble chunked items (MoreData); None while more chunks are due."""
        items = getattr(command, "items", ())
        if len(items) != 1 or isinstance(command, syncml.Alert):
            return command
        item = items[0]
        key = (command.name, item.target or "")
        if item.more_data:
            self._incoming[key] = self._incoming.get(key, "") + (item.data or "")
            self.chunks_received += 1
            return None
        if key in self._incoming:
            data = self._incoming.pop(key) + (item.data or "")
            return dataclasses.replace(command, items=(dataclasses.replace(item, data=data),))
        return command

    def _results(self, command: syncml.Command, msg_ref: int, results: list[syncml.Item], next_id):
        items = tuple(results)
        if self.max_chunk and len(items) == 1 and len(items[0].data or "") > self.max_chunk:
            data = items[0].data or ""
            pieces = [data[i : i + self.max_chunk] for i in range(0, len(data), self.max_chunk)]
            chunks = [
                syncml.Results(
                    cmd_id=0,
                    msg_ref=msg_ref,
                    cmd_ref=command.cmd_id,
                    items=(
                        syncml.Item(
                            source=items[0].source,
                            data=piece,
                            more_data=n < len(pieces) - 1,
                            meta=syncml.Meta(size=len(data.encode())) if n == 0 else None,
                        ),
                    ),
                )
                for n, piece in enumerate(pieces)
            ]
            self._outgoing.extend(chunks[1:])
            return dataclasses.replace(chunks[0], cmd_id=next(next_id))
        return syncml.Results(cmd_id=next(next_id), msg_ref=msg_ref, cmd_ref=command.cmd_id, items=items)

    def _execute(self, command: syncml.Command, msg_ref: int, next_id) -> list[syncml.Command]:
        out: list[syncml.Command] = []
        code: int = StatusCode.OK
        whole = self._absorb(command)
        if whole is None:
            return [
                syncml.command_status(
                    command, StatusCode.CHUNK_ACCEPTED, cmd_id=next(next_id), msg_ref=msg_ref
                )
            ]
        command = whole
        if isinstance(command, syncml.Atomic | syncml.Sequence):
            inner = [self._execute(child, msg_ref, next_id) for child in command.commands]
            failed = any(int(s.data) >= 300 for group in inner for s in group if isinstance(s, syncml.Status))
            code = (
                StatusCode.ATOMIC_FAILED if failed and isinstance(command, syncml.Atomic) else StatusCode.OK
            )
            out.append(syncml.command_status(command, code, cmd_id=next(next_id), msg_ref=msg_ref))
            for group in inner:
                out.extend(group)
            return out
        results = []
        for item in getattr(command, "items", ()):
            uri = item.target or ""
            code = self.answers.get(uri, code if code != StatusCode.OK else StatusCode.OK)
            if isinstance(command, syncml.Get):
                if uri in self.nodes and uri not in self.answers:
                    results.append(syncml.Item(source=uri, data=self.nodes[uri]))
                elif uri not in self.answers:
                    code = StatusCode.NOT_FOUND
            elif isinstance(command, syncml.Replace | syncml.Add) and uri not in self.answers:
                if isinstance(command, syncml.Add) and uri in self.nodes:
                    code = StatusCode.ALREADY_EXISTS
                else:
                    self.nodes[uri] = item.data or ""
            elif isinstance(command, syncml.Delete) and uri not in self.answers:
                code = StatusCode.OK if self.nodes.pop(uri, None) is not None else StatusCode.NOT_FOUND
        out.append(syncml.command_status(command, code, cmd_id=next(next_id), msg_ref=msg_ref))
        if results:
            out.append(self._results(command, msg_ref, results, next_id))
        return out


def unenroll_alert(cmd_id: int) -> syncml.Alert:
    """Alert 1226 com.microsoft:mdm.unenrollment.userrequest, as the shared vector shows it."""
    return syncml.Alert(
        cmd_id=cmd_id,
        data=AlertCode.GENERIC_ALERT,
        items=(
            syncml.Item(
                meta=syncml.Meta(type="com.microsoft:mdm.unenrollment.userrequest", format="int"),
                data="1",
            ),
        ),
    )
