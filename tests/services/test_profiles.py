"""Configuration profiles through the whole app in-process, on SQLite and PostgreSQL: upload rules,
delivery in one Atomic, verification by Get, failures per LocURI, 418 resent as Replace, teams,
removal, and statuses that do not flap."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.services.conftest import SERVER, TENANT
from tests.support.device import WindowsDevice
from tests.support.omadm import ManagedDevice
from winmdm.domain.management import ProfileStatus
from winmdm.errors import Conflict, InvalidInput, NotFound
from winmdm.protocol import syncml
from winmdm.protocol.syncml import StatusCode
from winmdm.runtime import Runtime
from winmdm.storage.schema import hosts, teams

START = "./Device/Vendor/MSFT/Policy/Config/Update/ActiveHoursStart"
END = "./Device/Vendor/MSFT/Policy/Config/Update/ActiveHoursEnd"
COOKIES = "./Device/Vendor/MSFT/Policy/Config/Browser/AllowCookies"
APPLIST = "./User/Vendor/MSFT/Policy/Config/Start/HideAppList"


def _item(uri: str, value: str | None, fmt: str = "int") -> str:
    meta = f'<Meta><Format xmlns="syncml:metinf">{fmt}</Format></Meta>' if value is not None else ""
    data = f"<Data>{value}</Data>" if value is not None else ""
    return f"<Item><Target><LocURI>{uri}</LocURI></Target>{meta}{data}</Item>"


def replace(uri: str, value: str | None = "1", fmt: str = "int", cmd_id: int = 1) -> str:
    return f"<Replace><CmdID>{cmd_id}</CmdID>{_item(uri, value, fmt)}</Replace>"


def add(uri: str, value: str | None = "1", fmt: str = "int", cmd_id: int = 1) -> str:
    return f"<Add><CmdID>{cmd_id}</CmdID>{_item(uri, value, fmt)}</Add>"


PROFILE = replace(START, "8") + replace(END, "17", cmd_id=2) + add(COOKIES, "2", cmd_id=3)


@dataclass
class Device(ManagedDevice):
    """The emulator, plus: a probe called whenever a Get arrives (to see the server's state
    mid-session), and CSPs that store another value than the one written (None: nothing)."""

    probe: Callable[[], object] | None = None
    probed: list[object] = field(default_factory=list)
    rewrites: dict[str, str | None] = field(default_factory=dict)
    get_answers: dict[str, int] = field(default_factory=dict)  # codes for Get only (write-only nodes)

    def _execute(self, command, msg_ref, next_id):
        if self.probe is not None and isinstance(command, syncml.Get | syncml.Atomic):
            self.probed.append(self.probe())
        uris = [item.target for item in getattr(command, "items", ())]
        forced = {u: self.get_answers[u] for u in uris if u in self.get_answers}
        if isinstance(command, syncml.Get) and forced:
            self.answers.update(forced)
            try:
                return super()._execute(command, msg_ref, next_id)
            finally:
                for uri in forced:
                    del self.answers[uri]
        out = super()._execute(command, msg_ref, next_id)
        if isinstance(command, syncml.Add | syncml.Replace):
            for item in command.items:
                if item.target in self.rewrites:
                    value = self.rewrites[item.target]
                    if value is None:
                        self.nodes.pop(item.target, None)
                    else:
                        self.nodes[item.target] = value
        return out


@pytest.fixture
def enroll(client, entra) -> Callable[..., Device]:
    def make(email: str = "alice@corp.example") -> Device:
        device = WindowsDevice()
        device.enroll(
            client,
            SERVER + "/EnrollmentServer/Discovery.svc",
            email=email,
            token=entra.token(tenant_id=TENANT, audience=SERVER),
        )
        return Device(device)

    return make


def _host_id(runtime: Runtime, managed: ManagedDevice) -> int:
    with runtime.storage.transaction() as tx:
        return tx.enrollments.find_active_by_device_id(managed.device.device_id).host_id


def _status(runtime: Runtime, host_id: int, profile_id: int) -> tuple[ProfileStatus, str | None]:
    rows = [r for r in runtime.profiles.host_profiles(host_id) if r.profile_id == profile_id]
    assert len(rows) == 1, rows
    return rows[0].status, rows[0].detail


def _uris(command: syncml.Command) -> list[str]:
    if isinstance(command, syncml.Atomic | syncml.Sequence):
        return [uri for child in command.commands for uri in _uris(child)]
    return [item.target for item in command.items]


def _runs(values: list[object]) -> list[object]:
    """Consecutive repeats collapsed: the statuses a host went through."""
    return [v for n, v in enumerate(values) if n == 0 or values[n - 1] != v]


def _atomics(received: list[syncml.Command]) -> list[syncml.Atomic]:
    return [c for c in received if isinstance(c, syncml.Atomic)]


def _new_team(runtime: Runtime, name: str) -> int:
    with runtime.storage.transaction() as tx:
        return tx.connection.execute(
            teams.insert().values(name=name, created_at=runtime.profiles._clock())
        ).inserted_primary_key[0]


def _set_host(runtime: Runtime, host_id: int, **values) -> None:
    with runtime.storage.transaction() as tx:
        tx.connection.execute(hosts.update().where(hosts.c.id == host_id).values(**values))


# -- upload -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the SyncML is empty"),
        ("<Replace>", "the SyncML is not valid"),
        (
            f"<Get><CmdID>1</CmdID>{_item(START, None)}</Get>",
            "command 1 (Get): Get is not allowed here; use Add, Replace, Atomic",
        ),
        (
            f"<Atomic><CmdID>1</CmdID>{replace(START, cmd_id=2)}"
            f"<Delete><CmdID>3</CmdID>{_item(END, None)}</Delete></Atomic>",
            "command 1 (Atomic), command 2 (Delete): Delete is not allowed here",
        ),
        (
            f"<Exec><CmdID>1</CmdID>{_item('./Device/Vendor/MSFT/Reboot/RebootNow', None)}</Exec>",
            "command 1 (Exec): Exec is not allowed here",
        ),
        (
            replace("./Vendor/MSFT/Policy/Config/Update/ActiveHoursStart"),
            "command 1 (Replace): LocURI './Vendor/MSFT/Policy/Config/Update/ActiveHoursStart' "
            "must start with ./Device/ or ./User/",
        ),
        (
            replace(START) + replace("/Device/Vendor/MSFT/X", cmd_id=2),
            "command 2 (Replace): LocURI '/Device/Vendor/MSFT/X' is not valid (it must start with ./",
        ),
        (
            replace("./Device/Vendor/MSFT/Policy//X"),
            "command 1 (Replace): LocURI './Device/Vendor/MSFT/Policy//X' is not valid",
        ),
        (
            f"<Atomic><CmdID>1</CmdID><Atomic><CmdID>2</CmdID>{replace(START, cmd_id=3)}</Atomic></Atomic>",
            "command 1 (Atomic), command 1 (Atomic): an Atomic inside an Atomic is not supported by Windows",
        ),
        (
            add(COOKIES) + replace(COOKIES, cmd_id=2),
            f"command 2 (Replace): LocURI '{COOKIES}' is already set by command 1 (Add)",
        ),
        (
            replace("./Device/Vendor/MSFT/DMClient/Provider/winmdm/Poll/NumberOfFirstRetries"),
            "is managed by winmdm (DMClient keeps the device enrolled)",
        ),
        ("<Replace><CmdID>1</CmdID><Item><Data>1</Data></Item></Replace>", "an Item has no Target LocURI"),
        ("<Replace><CmdID>1</CmdID></Replace>", "command 1 (Replace) has no Item"),
        ("<Atomic><CmdID>1</CmdID></Atomic>", "command 1 (Atomic) is empty"),
    ],
)
def test_upload_says_what_is_wrong_and_where(runtime, text, message) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as error:
        runtime.profiles.add_profile(None, "Update", text, actor="admin@corp.example")
    assert error.value.field == "syncml"
    assert runtime.profiles.list_profiles(None) == []


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "the profile name is empty"),
        ("   ", "the profile name is empty"),
        ("x" * 256, "the profile name is 256 characters long; the limit is 255"),
    ],
)
def test_profile_names_are_1_to_255_characters(runtime, name, message) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as error:
        runtime.profiles.add_profile(None, name, PROFILE, actor=None)
    assert error.value.field == "name"
    assert runtime.profiles.add_profile(None, "x" * 255, PROFILE, actor=None).name == "x" * 255


def test_duplicate_names_conflict_within_a_team_only(runtime) -> None:
    first = runtime.profiles.add_profile(None, "Update", PROFILE, actor="admin")
    with pytest.raises(Conflict, match='a profile named "Update" already exists in No team'):
        runtime.profiles.add_profile(None, "Update", replace(START), actor="admin")
    team = _new_team(runtime, "Finance")
    in_team = runtime.profiles.add_profile(team, "Update", PROFILE, actor="admin")
    assert in_team.team_id == team and first.team_id is None
    assert [p.id for p in runtime.profiles.list_profiles(None)] == [first.id]
    with pytest.raises(NotFound, match="team 424242 does not exist"):
        runtime.profiles.add_profile(424242, "Update", PROFILE, actor="admin")
    with runtime.storage.transaction() as tx:
        created = [a for a in tx.activities.list() if a.type == "created_windows_profile"]
    assert [(a.actor, a.details["profile_name"], a.details["team_id"]) for a in created] == [
        ("admin", "Update", team),
        ("admin", "Update", None),
    ]


# -- delivery and verification ----------------------------------------------------------------------
def test_first_session_delivers_the_team_profiles_in_one_atomic_then_verifies(
    runtime, client, enroll
) -> None:
    profile = runtime.profiles.add_profile(
        None, "Update", PROFILE + replace(APPLIST, "1", cmd_id=4), actor="a"
    )
    managed = enroll()
    host_id = _host_id(runtime, managed)
    managed.probe = lambda: _status(runtime, host_id, profile.id)[0]
    log = managed.session(client)

    atomics = _atomics(log.received)
    assert len(atomics) == 1
    assert [type(c).__name__ for c in atomics[0].commands] == ["Replace", "Replace", "Add", "Replace"]
    assert _uris(atomics[0]) == [START, END, COOKIES, APPLIST]
    verify = log.received[log.received.index(atomics[0]) + 1]
    assert isinstance(verify, syncml.Sequence) and _uris(verify) == [START, END, COOKIES, APPLIST]
    assert all(isinstance(c, syncml.Get) for c in verify.commands)
    # The Atomic arrived while pending; the Get while verifying (the device had accepted it).
    assert _runs(managed.probed) == [ProfileStatus.PENDING, ProfileStatus.VERIFYING]
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.VERIFIED, None)
    assert (managed.nodes[START], managed.nodes[END], managed.nodes[COOKIES]) == ("8", "17", "2")


def test_a_profile_queued_before_the_first_session_is_sent_once(runtime, client, enroll) -> None:
    managed = enroll()  # enrolled, first session not yet run: the host is pending
    host_id = _host_id(runtime, managed)
    profile = runtime.profiles.add_profile(None, "Update", PROFILE, actor=None)
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.PENDING, None)
    log = managed.session(client)
    assert len(_atomics(log.received)) == 1
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.VERIFIED, None)


def test_device_errors_fail_the_profile_with_codes_per_locuri(runtime, client, enroll) -> None:
    profile = runtime.profiles.add_profile(None, "Update", PROFILE, actor=None)
    managed = enroll()
    managed.answers[END] = StatusCode.NOT_FOUND
    managed.answers[COOKIES] = StatusCode.COMMAND_NOT_ALLOWED
    host_id = _host_id(runtime, managed)
    log = managed.session(client)
    assert len(_atomics(log.received)) == 1
    assert not any(END in _uris(c) for c in log.received if not isinstance(c, syncml.Atomic))  # no Get
    failed = (ProfileStatus.FAILED, f"{END}: 404 not found\n{COOKIES}: 405 command not allowed")
    assert _status(runtime, host_id, profile.id) == failed
    for _ in range(2):  # nothing new from the device: it stays failed, nothing is resent
        assert managed.session(client).received == []
        assert _status(runtime, host_id, profile.id) == failed


def test_a_get_that_reads_other_values_fails_verification(runtime, client, enroll) -> None:
    text = (
        replace(START, "8")
        + replace(END, "17", cmd_id=2)
        + replace(
            "./Device/Vendor/MSFT/Policy/Config/Search/AllowIndexingEncryptedStoresOrItems", "True", "bool", 3
        )
    )
    profile = runtime.profiles.add_profile(None, "Update", text, actor=None)
    managed = enroll()
    # The CSP clamps one value and forgets another; it reports a bool in lower case (same value).
    managed.rewrites = {
        START: "6",
        END: None,
        "./Device/Vendor/MSFT/Policy/Config/Search/AllowIndexingEncryptedStoresOrItems": "true",
    }
    host_id = _host_id(runtime, managed)
    managed.session(client)
    assert _status(runtime, host_id, profile.id) == (
        ProfileStatus.FAILED,
        f"{START}: expected '8', the device has '6'\n{END}: 404 not found",
    )


def test_write_only_nodes_count_as_verified(runtime, client, enroll) -> None:
    secret = "./Device/Vendor/MSFT/Policy/Config/Example/Secret"
    profile = runtime.profiles.add_profile(
        None, "Secret", replace(secret, "s3cret", "chr") + replace(START, "8", cmd_id=2), actor=None
    )
    managed = enroll()
    managed.get_answers[secret] = StatusCode.COMMAND_NOT_ALLOWED  # the CSP never reads it back
    host_id = _host_id(runtime, managed)
    managed.session(client)
    assert managed.nodes[secret] == "s3cret"
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.VERIFIED, None)


def test_a_late_answer_to_an_older_delivery_changes_nothing(runtime, client, enroll) -> None:
    profile = runtime.profiles.add_profile(None, "Update", PROFILE, actor=None)
    managed = enroll()
    managed.answers[END] = StatusCode.NOT_FOUND
    host_id = _host_id(runtime, managed)
    managed.session(client)
    old = runtime.profiles.host_profiles(host_id)[0]
    assert old.status is ProfileStatus.FAILED
    # The CSP is fixed and the profile delivered again: verified.
    del managed.answers[END]
    with runtime.storage.transaction() as tx:
        runtime.profiles.first_session(tx, tx.hosts.get(host_id), runtime.profiles._clock())
    managed.session(client)
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.VERIFIED, None)
    # The failed answer to the first delivery, seen again, does not move it back.
    with runtime.storage.transaction() as tx:
        stale = tx.commands.get(host_id, old.command_uuid)
        runtime.profiles.replied(tx, host_id, stale, runtime.profiles._clock())
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.VERIFIED, None)


def test_418_on_add_is_resent_as_replace_then_verified(runtime, client, enroll) -> None:
    profile = runtime.profiles.add_profile(None, "Update", PROFILE, actor=None)
    managed = enroll()
    managed.nodes[COOKIES] = "0"  # set before winmdm managed the PC
    host_id = _host_id(runtime, managed)
    managed.probe = lambda: _status(runtime, host_id, profile.id)[0]
    log = managed.session(client)
    first, second = _atomics(log.received)
    assert [type(c).__name__ for c in first.commands] == ["Replace", "Replace", "Add"]
    assert [type(c).__name__ for c in second.commands] == ["Replace", "Replace", "Replace"]
    assert _uris(second) == [START, END, COOKIES]
    assert ProfileStatus.FAILED not in managed.probed
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.VERIFIED, None)
    assert managed.nodes[COOKIES] == "2"


def test_418_is_resent_only_once(runtime, client, enroll) -> None:
    profile = runtime.profiles.add_profile(None, "Update", add(COOKIES, "2"), actor=None)
    managed = enroll()
    managed.answers[COOKIES] = StatusCode.ALREADY_EXISTS  # even to Replace: a broken CSP
    host_id = _host_id(runtime, managed)
    log = managed.session(client)
    assert len(_atomics(log.received)) == 2
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.FAILED, f"{COOKIES}: 418 already exists")


# -- teams ------------------------------------------------------------------------------------------
def test_a_new_profile_reaches_enrolled_hosts_of_its_team_only(runtime, client, enroll) -> None:
    alice, bob = enroll("alice@corp.example"), enroll("bob@corp.example")
    alice.session(client)
    bob.session(client)
    alice_id, bob_id = _host_id(runtime, alice), _host_id(runtime, bob)
    team = _new_team(runtime, "Finance")
    _set_host(runtime, alice_id, team_id=team)

    in_team = runtime.profiles.add_profile(team, "Update", PROFILE, actor=None)
    assert [r.profile_id for r in runtime.profiles.host_profiles(bob_id)] == []
    assert _atomics(bob.session(client).received) == []
    assert _uris(_atomics(alice.session(client).received)[0]) == [START, END, COOKIES]
    assert _status(runtime, alice_id, in_team.id) == (ProfileStatus.VERIFIED, None)

    no_team = runtime.profiles.add_profile(None, "Apps", replace(APPLIST, "1"), actor=None)
    assert _uris(_atomics(bob.session(client).received)[0]) == [APPLIST]
    assert alice.session(client).received == []
    assert [r.profile_id for r in runtime.profiles.host_profiles(alice_id)] == [in_team.id]
    assert [r.profile_id for r in runtime.profiles.host_profiles(bob_id)] == [no_team.id]

    _set_host(runtime, bob_id, mdm_status="off")  # unenrolled hosts get nothing
    runtime.profiles.add_profile(None, "Later", replace(START, "9"), actor=None)
    assert [r.profile_id for r in runtime.profiles.host_profiles(bob_id)] == [no_team.id]


# -- removal ----------------------------------------------------------------------------------------
def test_removal_deletes_added_nodes_and_then_the_host_status(runtime, client, enroll) -> None:
    profile = runtime.profiles.add_profile(None, "Update", PROFILE, actor=None)
    managed = enroll()
    host_id = _host_id(runtime, managed)
    managed.session(client)
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.VERIFIED, None)

    runtime.profiles.remove_profile(profile.id, actor="admin@corp.example")
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.REMOVING, 'removing "Update"')
    assert runtime.profiles.list_profiles(None) == []
    log = managed.session(client)
    assert len(log.received) == 1 and isinstance(log.received[0], syncml.Delete)
    assert _uris(log.received[0]) == [COOKIES]  # only what it Added; Replace settings cannot go
    assert COOKIES not in managed.nodes and managed.nodes[START] == "8"
    assert runtime.profiles.host_profiles(host_id) == []
    with runtime.storage.transaction() as tx:
        deleted = tx.activities.list(limit=1)[0]
    assert (deleted.type, deleted.actor, deleted.details["profile_name"]) == (
        "deleted_windows_profile",
        "admin@corp.example",
        "Update",
    )
    with pytest.raises(NotFound, match=f"no profile with id {profile.id}"):
        runtime.profiles.remove_profile(profile.id, actor=None)
    assert runtime.profiles.add_profile(None, "Update", PROFILE, actor=None).name == "Update"  # name free


def test_removal_before_delivery_leaves_nothing_behind(runtime, client, enroll) -> None:
    managed = enroll()
    managed.session(client)
    host_id = _host_id(runtime, managed)
    profile = runtime.profiles.add_profile(
        None, "Cookies", add(COOKIES, "2") + add(END, "17", cmd_id=2), actor=None
    )
    runtime.profiles.remove_profile(profile.id, actor=None)
    log = managed.session(client)
    # Never sent: the delivery is dropped, and there is nothing on the device to delete.
    assert log.received == []
    assert COOKIES not in managed.nodes and END not in managed.nodes
    assert runtime.profiles.host_profiles(host_id) == []


def test_removal_after_delivery_deletes_children_first(runtime, client, enroll) -> None:
    managed = enroll()
    managed.session(client)
    host_id = _host_id(runtime, managed)
    profile = runtime.profiles.add_profile(
        None, "Cookies", add(COOKIES, "2") + add(END, "17", cmd_id=2), actor=None
    )
    managed.session(client)
    assert COOKIES in managed.nodes
    runtime.profiles.remove_profile(profile.id, actor=None)
    log = managed.session(client)
    assert [type(c).__name__ for c in log.received] == ["Sequence"]
    assert _uris(log.received[0]) == [END, COOKIES]
    assert COOKIES not in managed.nodes and END not in managed.nodes
    assert runtime.profiles.host_profiles(host_id) == []
    assert managed.session(client).received == []


def test_removing_a_replace_only_profile_sends_nothing(runtime, client, enroll) -> None:
    profile = runtime.profiles.add_profile(None, "Hours", replace(START, "8"), actor=None)
    managed = enroll()
    host_id = _host_id(runtime, managed)
    managed.session(client)
    runtime.profiles.remove_profile(profile.id, actor=None)
    assert runtime.profiles.host_profiles(host_id) == []
    assert managed.session(client).received == []


# -- no flapping ------------------------------------------------------------------------------------
def test_statuses_do_not_flap(runtime, client, enroll) -> None:
    profile = runtime.profiles.add_profile(None, "Update", PROFILE, actor=None)
    managed = enroll()
    host_id = _host_id(runtime, managed)
    managed.session(client)
    verified = runtime.profiles.host_profiles(host_id)
    assert verified[0].status is ProfileStatus.VERIFIED
    for _ in range(3):
        assert managed.session(client).received == []
        assert runtime.profiles.host_profiles(host_id) == verified  # same row, not rewritten

    # Delivered again (as after a re-enrollment): it stays verified throughout, 418 and all.
    with runtime.storage.transaction() as tx:
        runtime.profiles.first_session(tx, tx.hosts.get(host_id), runtime.profiles._clock())
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.VERIFIED, None)
    managed.probe = lambda: _status(runtime, host_id, profile.id)[0]
    log = managed.session(client)
    assert len(_atomics(log.received)) == 2  # the Add met 418 and went again as Replace
    assert set(managed.probed) == {ProfileStatus.VERIFIED}
    assert _status(runtime, host_id, profile.id) == (ProfileStatus.VERIFIED, None)


def test_unknown_hosts_and_profiles(runtime) -> None:
    with pytest.raises(NotFound, match="no host with id 999999"):
        runtime.profiles.host_profiles(999_999)
    with pytest.raises(NotFound, match="no profile with id 999999"):
        runtime.profiles.get_profile(999_999)


def test_a_profile_too_big_for_one_message_is_refused(runtime) -> None:
    big = (
        "<Replace><CmdID>1</CmdID><Item><Target><LocURI>./Device/Vendor/MSFT/Policy/Config/A/B</LocURI>"
        f"</Target><Data>{'x' * 50_000}</Data></Item></Replace>"
    )
    with pytest.raises(InvalidInput, match="split it into several profiles") as error:
        runtime.profiles.add_profile(None, "Huge", big, actor=None)
    assert error.value.field == "syncml"
