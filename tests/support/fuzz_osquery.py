"""osquery's TLS remote API in the fuzzer (tests/support/fuzz.py; docs/agent-channel.md).

Seeds are what the osquery emulator (tests/support/osquery_agent.py) sent, byte for byte, while
enrolling agents and living through config, log and distributed rounds (a live query, policies,
winmdm's MDM DeviceID query). Inputs keep a valid enroll secret and a live agent's node key (in
the body, the `Authorization: NodeKey` header, both or neither) most of the time, so mutations
get past authentication into the code behind it: the key and secret themselves varied, then
endpoint-aware changes (unknown query names, rows that are not lists of objects, statuses that
are not integers, an agent proving a real MDM DeviceID), or JSON mutated by structure
(tests/support/fuzz_json.py), then sometimes as bytes, gzip (valid and broken), over the size
limit, or under another Content-Type.

Every answer must be osquery's shape ("Limits and errors"): JSON with a boolean `node_invalid`
that is true exactly on a 401, an `error` string on every refusal, no secret or node key echoed;
and the status the input calls for when that is known (a valid request 200, a body over the
limit 413, a broken gzip stream 400, a wrong key 401), else one of 200, 400, 401, 413.
"""

from __future__ import annotations

import copy
import gzip
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.support.fuzz_json import Json, JsonMutator
from tests.support.osquery_agent import FLAGS, VERSION, OsqueryAgent
from winmdm.runtime import Runtime
from winmdm.services.osquery import (
    LIVE_QUERY_PREFIX,
    MDM_DEVICE_ID_QUERY,
    POLICY_PREFIX,
    node_key_hash,
)
from winmdm.web.osquery_routes import SMALL_BODY

SERVER = "https://mdm.corp.example"
PATHS = {
    "enroll": FLAGS["enroll_tls_endpoint"],
    "config": FLAGS["config_tls_endpoint"],
    "log": FLAGS["logger_tls_endpoint"],
    "read": FLAGS["distributed_tls_read_endpoint"],
    "write": FLAGS["distributed_tls_write_endpoint"],
}
ENDPOINT_OF = {path: name for name, path in PATHS.items()}
WEIGHTS = {"enroll": 2, "config": 1, "log": 3, "read": 1, "write": 4}
ANY = frozenset({200, 400, 401, 413})
OK, BAD, INVALID, TOO_LARGE = frozenset({200}), frozenset({400}), frozenset({401}), frozenset({413})
LIVE_SQL = "SELECT name, version FROM programs;"
POLICY_SQL = "SELECT 1 FROM registry WHERE key = 'HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies';"
CONTENT_TYPES = [
    "", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
    "application/json; charset=utf-16", "application/xml", "application/json, application/json",
]  # fmt: skip
# (MDM DeviceID, SMBIOS serial) of the PCs the fuzzer enrolled in MDM.
MdmDevices = Callable[[], list[tuple[str, str]]]
# (status, content type, body) -> what is wrong with the answer, or None.
Check = Callable[[int, str, bytes], str | None]


@dataclass
class Draft:
    """One input on its way: the parsed body, the headers, what the answer must be."""

    endpoint: str
    body: Json
    headers: dict[str, str]
    expect: frozenset[int] = OK
    hidden: list[str] = field(default_factory=list)
    why: list[str] = field(default_factory=list)  # the changes made, named in a problem


@dataclass
class Request:
    """An input for fuzz.py to send as a Case: `check` judges the answer, `note` says why."""

    path: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    check: Check
    note: str


class OsqueryFuzz:
    """Agents enrolled with the emulator, their seeds, and inputs built from them."""

    def __init__(self, app: Starlette, runtime: Runtime, rng: random.Random, mdm_devices: MdmDevices) -> None:
        self.app, self.runtime, self.random = app, runtime, rng
        self.mdm_devices = mdm_devices
        self.json = JsonMutator(rng)
        assert runtime.bulk is not None
        team = runtime.teams.create("Fuzzed agents", actor=None)
        self.secrets = [runtime.bulk.create(team.id).secret, runtime.bulk.create(None).secret]
        old = runtime.teams.create("Rotated", actor=None).id
        self.revoked = runtime.bulk.create(old).secret
        runtime.bulk.rotate(old)
        runtime.policies.create("Fuzzed global", POLICY_SQL, None)
        runtime.policies.create("Fuzzed team", POLICY_SQL, team.id)
        self.seeds: dict[str, list[Json]] = {name: [] for name in PATHS}
        self.agents: list[OsqueryAgent] = []
        self.bomb = gzip.compress(b" " * (runtime.config.max_body_bytes + 2))
        self._enroll_agents(3)
        assert all(self.seeds.values()), "the emulator's agents did not use every endpoint"

    # -- agents -----------------------------------------------------------------------------------
    def _new_agent(self) -> OsqueryAgent:
        agent = OsqueryAgent(
            enroll_secret=self.random.choice(self.secrets),
            hardware_uuid=str(uuid.UUID(int=self.random.getrandbits(128))).upper(),
            serial=f"FZ{self.random.getrandbits(32):08X}",
            hostname=f"DESKTOP-{self.random.getrandbits(24):06X}",
        )
        devices = self.mdm_devices()
        if devices and self.random.random() < 0.5:  # the same PC as an MDM enrollment
            agent.mdm_device_id, agent.serial = self.random.choice(devices)
        agent.answers = {LIVE_SQL: [{"name": "7-Zip", "version": "24.08"}], POLICY_SQL: [{"1": "1"}]}
        return agent

    def _enroll_agents(self, count: int) -> None:
        """Agents living through what a real one does; the first ones' requests become seeds."""
        with TestClient(self.app, base_url=SERVER) as client:
            for _ in range(count):
                agent = self._new_agent()
                agent.enroll(client)
                agent.config(client)
                agent.log(client, "status", [_status_line(agent)])
                agent.log(client, "result", [_result_line(agent)])
                self.runtime.live_queries.run(self._host_id(agent), LIVE_SQL)
                agent.distributed_round(client)
                for sent in agent.sent:
                    seeds = self.seeds[ENDPOINT_OF[sent.path]]
                    if len(seeds) < 12:
                        seeds.append(json.loads(sent.body))
                self.agents.append(agent)

    def _host_id(self, agent: OsqueryAgent) -> int:
        with self.runtime.storage.transaction() as tx:
            node = tx.osquery_nodes.by_key_hash(node_key_hash(agent.node_key or ""))
            assert node is not None, "the emulator's agent did not enroll"
            return node.host_id

    def _live_agents(self) -> list[OsqueryAgent]:
        with self.runtime.storage.transaction() as tx:
            self.agents = [
                a
                for a in self.agents
                if a.node_key and tx.osquery_nodes.by_key_hash(node_key_hash(a.node_key))
            ]
        if len(self.agents) < 2:  # merges replaced their nodes: new ones keep the deep paths reachable
            self._enroll_agents(2)
        return self.agents

    # -- inputs -----------------------------------------------------------------------------------
    def request(self) -> Request:
        """The next input: path, headers, body, and the check of its answer."""
        endpoint = self.random.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
        agent = self.random.choice(self._live_agents())
        draft = self._draft(endpoint, agent)
        pick = self.random.random()
        if pick < 0.2:
            self._vary_credentials(draft, agent)
        elif pick < 0.45:
            self._vary_meaning(draft, agent)
        elif pick < 0.9:
            draft.body = self.json.mutate(draft.body)
            draft.expect = ANY
            draft.why.append("structure")
        body = self._vary_bytes(draft, self.json.encode(draft.body))
        if self.random.random() < 0.1:
            draft.headers["content-type"] = self.random.choice(CONTENT_TYPES)  # osquery's is ignored
        headers = [(k.encode(), v.encode("utf-8", "surrogatepass")) for k, v in draft.headers.items()]
        return Request(PATHS[endpoint], headers, body, _expectation(draft), ", ".join(draft.why) or "as sent")

    def _draft(self, endpoint: str, agent: OsqueryAgent) -> Draft:
        """A request exactly as the agent's osquery would send it (valid: 200)."""
        body = copy.deepcopy(self.random.choice(self.seeds[endpoint]))
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": f"osquery/{VERSION}",
        }
        hidden = [*self.secrets, self.revoked]
        if endpoint == "enroll":
            self._identity(body, agent)
        else:
            body["node_key"] = agent.node_key
            headers["authorization"] = f"NodeKey {agent.node_key}"
            hidden.append(agent.node_key or "")
        return Draft(endpoint, body, headers, hidden=hidden)

    def _identity(self, body: Json, agent: OsqueryAgent) -> None:
        """An enrolling PC: a new one, the agent's own again, or one claiming an MDM PC's serial."""
        system = body["host_details"]["system_info"]
        pick = self.random.random()
        if pick < 0.5:
            system["uuid"] = str(uuid.UUID(int=self.random.getrandbits(128))).upper()
            system["hardware_serial"] = f"FZ{self.random.getrandbits(32):08X}"
        elif pick < 0.8:
            system["uuid"], system["hardware_serial"] = agent.hardware_uuid, agent.serial
        elif devices := self.mdm_devices():
            system["hardware_serial"] = self.random.choice(devices)[1]
        body["enroll_secret"] = self.random.choice(self.secrets)

    # -- credentials ------------------------------------------------------------------------------
    def _vary_credentials(self, draft: Draft, agent: OsqueryAgent) -> None:
        if draft.endpoint == "enroll":
            self._vary_secret(draft)
            return
        key, body, headers = agent.node_key or "", draft.body, draft.headers
        other = self.random.choice(self.agents).node_key or ""
        wrong = [
            5,
            None,
            [],
            {},
            True,
            "",
            key + "\x00",
            key + "\ud800",
            "\ud800",
            key[:-1],
            "A" * 300,
            key.lower(),
        ]
        pick = self.random.randrange(10)
        draft.why.append(f"credentials {pick}")
        if pick == 0:  # the header alone
            del body["node_key"]
        elif pick == 1:  # the body alone
            del headers["authorization"]
        elif pick == 2:  # neither
            del body["node_key"], headers["authorization"]
            draft.expect = INVALID
        elif pick == 3:  # the body's key wins over the header's
            body["node_key"] = self.random.choice(wrong)
            draft.expect = INVALID
        elif pick == 4:
            headers["authorization"] = "NodeKey not-a-key"
        elif pick == 5:  # another live agent's key: that agent's request
            body["node_key"], headers["authorization"] = other, f"NodeKey {other}"
            draft.hidden.append(other)
        elif pick == 6:
            del body["node_key"]
            headers["authorization"] = self.random.choice(
                [f"Bearer {key}", "NodeKey", "NodeKey ", f"Basic {key}", f"NodeKey{key}", "NodeKey x"]
            )
            draft.expect = INVALID
        elif pick == 7:
            del body["node_key"]
            headers["authorization"] = f"NodeKey   {key}  "
        elif pick == 8:  # HTTP auth schemes are case-insensitive; osquery writes "NodeKey"
            del body["node_key"]
            headers["authorization"] = f"nodekey {key}"
            draft.expect = OK | INVALID
        else:
            body["node_key"] = self.random.choice(wrong)
            del headers["authorization"]
            draft.expect = INVALID

    def _vary_secret(self, draft: Draft) -> None:
        secret = self.random.choice(self.secrets)
        pick = self.random.randrange(5)
        draft.why.append(f"secret {pick}")
        if pick == 0:  # the secret file's whitespace
            draft.body["enroll_secret"] = self.random.choice(["\n", " ", "\r\n", "\t"]) + secret + "\n"
        elif pick == 1:  # enrolling sends no key; a stale one in the header changes nothing
            draft.headers["authorization"] = "NodeKey stale"
        else:
            wrong = [
                self.revoked,
                secret[:-1],
                secret + "x",
                "",
                "  ",
                "\ud800",
                secret + "\ud800",
                "s" * 300,
            ]
            wrong += [None, 5, [secret], {"secret": secret}, True]
            if self.random.random() < 0.2:
                del draft.body["enroll_secret"]
            else:
                draft.body["enroll_secret"] = self.random.choice(wrong)
            draft.expect = INVALID

    # -- meaning ----------------------------------------------------------------------------------
    def _vary_meaning(self, draft: Draft, agent: OsqueryAgent) -> None:
        body = draft.body
        if draft.endpoint == "enroll":
            details = body["host_details"]
            pick = self.random.randrange(4)
            draft.why.append(f"details {pick}")
            if pick == 0:
                body["host_details"] = self.json.hostile()
                draft.expect = ANY
            elif pick == 1:
                details[self.random.choice(list(details))] = self.random.choice(
                    [[], "x", 1, None, [{"a": 1}]]
                )
                draft.expect = OK | BAD
            elif pick == 2:  # values of other types than osquery's strings: not stored
                row = details[self.random.choice(list(details))]
                for column in self.random.sample(list(row), min(len(row), 4)):
                    row[column] = self.json.hostile()
                draft.expect = ANY  # a huge value may pass the size limit
            else:
                body["platform_type"] = self.random.choice(
                    ["", "0", "-1", "99999999999999999999", 2, None, "٢"]
                )
        elif draft.endpoint == "log":
            self._vary_log(draft)
        elif draft.endpoint == "write":
            self._vary_write(draft, agent)
        else:  # config, read: osquery sends the key alone
            draft.why.append("extra key")
            body[self.random.choice(["queries", "schedule", "x", ""])] = self.json.hostile()
            draft.expect = ANY

    def _vary_log(self, draft: Draft) -> None:
        body = draft.body
        pick = self.random.randrange(4)
        draft.why.append(f"log {pick}")
        if pick == 0:
            body["log_type"] = self.random.choice(["", "x", "STATUS", "status\x00", None, 1, ["status"], {}])
            draft.expect = BAD
        elif pick == 1:
            body["data"] = self.random.choice([{}, "line", 5, None, True, {"0": {}}])
            draft.expect = BAD
        elif pick == 2:  # lines are counted, not read
            body["data"] = [self.json.hostile() for _ in range(self.random.randint(1, 5))]
            draft.expect = ANY
        else:
            body["data"] = body["data"] * self.random.randint(100, 2000)

    def _vary_write(self, draft: Draft, agent: OsqueryAgent) -> None:
        body = draft.body
        queries, statuses, messages = body["queries"], body["statuses"], body["messages"]
        names = list(queries) or [MDM_DEVICE_ID_QUERY]
        pick = self.random.randrange(10)
        draft.why.append(f"write {pick}")
        if pick == 0:  # names winmdm never gave: ignored
            for _ in range(self.random.randint(1, 600)):
                name = self.random.choice(["", "x", "\ud800", "\x00", "9" * 30, "pack_x_y", "é"])
                name = self.random.choice([LIVE_QUERY_PREFIX, POLICY_PREFIX, ""]) + name
                queries[name], statuses[name] = [{"a": "1"}], self.random.choice([0, 1, -5])
        elif pick == 1:  # rows that are not a list ({} counts as no rows)
            rows = self.random.choice([{}, {"a": "1"}, "rows", 5, True])
            queries[self.random.choice(names)] = rows
            draft.expect = BAD if rows else OK
        elif pick == 2:  # a list of anything but objects: refused for a live query
            queries[self.random.choice(names)] = [
                self.json.hostile() for _ in range(self.random.randint(1, 4))
            ]
            draft.expect = ANY
        elif pick == 3:  # a status that is not an integer
            statuses[self.random.choice(names)] = self.random.choice(
                ["0", 0.0, 1.5, True, False, [], {}, None]
            )
            draft.expect = BAD
        elif pick == 4:
            statuses[self.random.choice(names)] = self.random.choice([2**31, -(2**31) - 1, 2**70, -(2**70)])
        elif pick == 5:  # messages and stats are free text: kept bounded, or not read
            messages[self.random.choice(names)] = self.random.choice(
                [None, 5, [], "m" * 70_000, "\x00\ud800"]
            )
            body["stats"] = self.random.choice([None, [], "x", {"q": {"wall_time_ms": "x"}}])
        elif pick == 6:  # a fresh live query answered with odd rows, many of them
            name = f"{LIVE_QUERY_PREFIX}{self.runtime.live_queries.run(self._host_id(agent), LIVE_SQL).id}"
            cells = ["", "\x00", "\ud800", "é€😀", "c" * 5000, 1, 1.5, True, None, [], {}, 2**70]
            rows = [
                {self.random.choice(["a", "", "\x00", "\ud800", "k" * 200]): self.random.choice(cells)}
                for _ in range(self.random.randint(1, 1500))
            ]
            queries[name], statuses[name], messages[name] = rows, 0, "ran"
        elif pick == 7:  # the MDM DeviceID of a real enrollment: this agent proves it is that PC
            devices = self.mdm_devices()
            data = self.random.choice(devices)[0] if devices else "none"
            queries[MDM_DEVICE_ID_QUERY] = [
                {"data": self.random.choice([data, data, "", 5, None, data.lower()])}
            ]
            statuses[MDM_DEVICE_ID_QUERY] = self.random.choice([0, 0, 1])
        elif pick == 8:  # only a status, or only rows
            if self.random.random() < 0.5:
                statuses.pop(self.random.choice(names), None)
            else:
                queries.clear()
        else:
            body[self.random.choice(["queries", "statuses", "messages"])] = self.random.choice(
                [[], "x", 5, True]
            )
            draft.expect = BAD

    # -- bytes, encodings, sizes ------------------------------------------------------------------
    def _vary_bytes(self, draft: Draft, body: bytes) -> bytes:
        """The serialised body as sent: as is, or changed as bytes, encoded, or made too large."""
        limit = (
            SMALL_BODY
            if draft.endpoint in ("enroll", "config", "read")
            else self.runtime.config.max_body_bytes
        )
        inflated = len(body) > limit
        sent = self._transform(draft, body, limit)
        if len(sent) > limit:  # refused on its length, before anything is read
            draft.expect = TOO_LARGE
        elif inflated:  # compressed or cut below the limit: may still inflate over it
            draft.expect = draft.expect | TOO_LARGE
        return sent

    def _transform(self, draft: Draft, body: bytes, limit: int) -> bytes:
        pick = self.random.random()
        headers = draft.headers
        if pick < 0.06:  # bytes osquery would never write
            draft.why.append("bytes")
            draft.expect = ANY
            return _mutate_bytes(self.random, body)
        if pick < 0.08:  # the text cut short
            draft.why.append("cut")
            draft.expect = BAD
            return body[: self.random.randrange(len(body))]
        if pick < 0.1:  # json.loads reads UTF-16 and UTF-32 too, with or without a BOM
            try:
                text = body.decode("utf-8", "surrogatepass")
            except UnicodeDecodeError:
                return body
            codec = self.random.choice(["utf-16-le", "utf-16-be", "utf-16", "utf-32", "utf-8-sig"])
            draft.why.append(codec)
            draft.expect = draft.expect | BAD
            return text.encode(codec, "surrogatepass")
        if pick < 0.12:  # over the limit
            draft.why.append("over the limit")
            return body + b" " * max(0, limit + 1 - len(body) + self.random.randrange(1000))
        if pick < 0.2:  # osquery's --logger_tls_compress
            draft.why.append("gzip")
            headers["content-encoding"] = self.random.choice(["gzip", "gzip", "GZIP", " gzip "])
            return gzip.compress(body)
        if pick < 0.25:
            headers["content-encoding"] = "gzip"
            return self._broken_gzip(draft, body)
        if pick < 0.27:
            headers["content-encoding"] = self.random.choice(
                ["br", "deflate", "x-gzip", "gzip, gzip", "zstd"]
            )
            draft.why.append("encoding")
            draft.expect = BAD
            return gzip.compress(body) if self.random.random() < 0.5 else body
        if pick < 0.28:
            draft.why.append("identity")
            headers["content-encoding"] = "identity"
        return body

    def _broken_gzip(self, draft: Draft, body: bytes) -> bytes:
        packed = gzip.compress(body)
        pick = self.random.randrange(8)
        draft.why.append(f"broken gzip {pick}")
        sent_as_is, draft.expect = draft.expect, BAD
        if pick == 0:  # more than the limit once inflated
            draft.expect = TOO_LARGE
            return self.bomb
        if pick == 1:
            return b"\x00" + packed[1:]  # not a gzip header
        if pick == 2:  # the stream cut inside its deflate data
            return packed[: self.random.randrange(10, max(11, len(packed) - 8))]
        if pick == 3:  # the CRC-32 and size trailer cut off: not the whole stream
            return packed[: len(packed) - self.random.randint(1, 8)]
        if pick == 4:  # a wrong CRC-32
            return packed[:-8] + bytes([packed[-8] ^ 0xFF]) + packed[-7:]
        if pick == 5:  # gzip of gzip: the inflated body is not JSON
            return gzip.compress(packed)
        if pick == 6:  # the body itself, not compressed
            return body
        draft.expect = sent_as_is | BAD  # bytes after the stream (or a second member): lenient or not
        return packed + self.random.choice([b"\x00", b"garbage", packed])


def _mutate_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 5)):
        if not out:
            break
        at = rng.randrange(len(out))
        op = rng.randrange(4)
        if op == 0:
            out[at] = rng.randrange(256)
        elif op == 1:
            del out[at : at + rng.randint(1, 50)]
        elif op == 2:
            out[at:at] = rng.choice(
                [b"\x00", b"\xff", b"\xef\xbb\xbf", b"\\ud800", b'"', b"{", b"]", b",", b"\\"]
            )
        else:
            out[at:at] = out[at : at + rng.randint(1, 200)]
    return bytes(out)


def _expectation(draft: Draft) -> Check:
    """The check of one answer: osquery's JSON shape and the status the input calls for."""
    expect, wanted, why = draft.expect, sorted(draft.expect), ", ".join(draft.why) or "as sent"
    secrets = [h.encode() for h in draft.hidden if h]

    def check(status: int, content_type: str, body: bytes) -> str | None:
        shown = f"{body[:160]!r} ({why})"
        if status not in expect:
            return f"HTTP {status}, expected {wanted}: {shown}"
        if not content_type.startswith("application/json"):
            return f"HTTP {status} as {content_type!r}, not JSON: {shown}"
        try:
            answer = json.loads(body)
        except ValueError:
            return f"HTTP {status}: the body is not JSON: {shown}"
        if not isinstance(answer, dict) or answer.get("node_invalid") is not (status == 401):
            return f"HTTP {status}: node_invalid must be {status == 401}: {shown}"
        if status != 200 and not isinstance(answer.get("error"), str):
            return f"HTTP {status} without an error string: {shown}"
        if any(s in body for s in secrets):
            return f"HTTP {status}: the answer shows a secret or node key"
        return None

    return check


def _status_line(agent: OsqueryAgent) -> dict[str, Json]:
    """A status log line as osquery's tls logger sends it (glog fields, strings)."""
    return {
        "hostIdentifier": agent.hostname,
        "calendarTime": "Fri Dec  4 10:00:00 2026 UTC",
        "unixTime": "1796378400",
        "severity": "0",
        "filename": "tls.cpp",
        "line": "255",
        "message": "TLS/HTTPS POST request to URI: https://mdm.corp.example:8443/api/osquery/config",
        "version": VERSION,
    }


def _result_line(agent: OsqueryAgent) -> dict[str, Json]:
    """A differential result line of a scheduled query."""
    return {
        "name": "pack/winmdm/programs",
        "hostIdentifier": agent.hostname,
        "calendarTime": "Fri Dec  4 10:00:00 2026 UTC",
        "unixTime": 1796378400,
        "epoch": 0,
        "counter": 1,
        "numerics": False,
        "columns": {"name": "7-Zip", "version": "24.08"},
        "action": "added",
    }
