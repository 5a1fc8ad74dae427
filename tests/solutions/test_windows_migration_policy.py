"""docs/solutions/windows/migration-policy.sql: passes only on a PC enrolled in winmdm.

The policy runs in SQLite (osquery's SQL engine) over a `registry` table made the way osquery
makes it for the policy's own `key` constraint (osquery_registry.py). A policy passes when its
query returns a row.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .osquery_registry import RegistryTable, Value, key_constraints, run_osquery_sql

POLICY = Path(__file__).resolve().parents[2] / "docs" / "solutions" / "windows" / "migration-policy.sql"
ENROLLMENTS = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Enrollments"
ACCOUNTS = r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Provisioning\OMADM\Accounts"
WINMDM_ID = "3F2B8C1E-7A4D-4E59-9C0B-5D6E7F8A9B01"
OLD_MDM_ID = "8C1D2E3F-4A5B-4C6D-8E9F-0A1B2C3D4E5F"
LOCAL_ID = "0F9E8D7C-6B5A-4948-8372-615243342516"


def policy() -> str:
    return POLICY.read_text(encoding="utf-8")


def passes(keys: dict[str, dict[str, Value]]) -> bool:
    return len(run_osquery_sql(policy(), RegistryTable(keys))) > 0


def enrollment(provider: str | None, state: int | None, **extra: Value) -> dict[str, Value]:
    """The values Windows writes in Enrollments\\<id> (types as in a real key)."""
    values: dict[str, Value] = {
        "EnrollmentType": ("REG_DWORD", 6),
        "UPN": ("REG_SZ", "alice@corp.example"),
        "DiscoveryServiceFullURL": (
            "REG_SZ",
            "https://enterpriseenrollment.corp.example/EnrollmentServer/Discovery.svc",
        ),
        "RenewalPeriod": ("REG_DWORD", 42),
    }
    if provider is not None:
        values["ProviderID"] = ("REG_SZ", provider)
    if state is not None:
        values["EnrollmentState"] = ("REG_DWORD", state)
    values.update(extra)
    return values


def windows_pc(**enrollments: dict[str, Value]) -> dict[str, dict[str, Value]]:
    """A PC's registry: the keys every Windows 10/11 has under Enrollments, plus `enrollments`."""
    keys: dict[str, dict[str, Value]] = {
        ENROLLMENTS: {},
        ENROLLMENTS + r"\Context": {"LastLoggedOnUser": ("REG_SZ", "CORP\\alice")},
        ENROLLMENTS + r"\Status": {},
        ENROLLMENTS + r"\Ownership": {"CorpOwned": ("REG_DWORD", 0)},
        r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows NT\CurrentVersion": {
            "InstallationType": ("REG_SZ", "Client")
        },
    }
    for enrollment_id, values in enrollments.items():
        keys[f"{ENROLLMENTS}\\{enrollment_id}"] = values
        # Deeper keys of an enrollment are not listed by a single trailing '%'.
        keys[f"{ENROLLMENTS}\\{enrollment_id}\\FirstSync"] = {"IsSyncDone": ("REG_DWORD", 1)}
        keys[f"{ACCOUNTS}\\{enrollment_id}"] = {"ProtoVer": ("REG_SZ", "1.2")}
    return keys


# --- passes -----------------------------------------------------------------------------------------


def test_passes_when_enrolled_in_winmdm() -> None:
    assert passes(windows_pc(**{WINMDM_ID: enrollment("winmdm", 1)}))


def test_passes_beside_other_enrollments() -> None:
    pc = windows_pc(
        **{
            LOCAL_ID: enrollment("Local_Management", 1),
            OLD_MDM_ID: enrollment("MS DM Server", 3),
            WINMDM_ID: enrollment("winmdm", 1),
        }
    )
    assert passes(pc)


def test_returns_one_row_at_most() -> None:
    pc = windows_pc(**{WINMDM_ID: enrollment("winmdm", 1), OLD_MDM_ID: enrollment("winmdm", 1)})
    assert run_osquery_sql(policy(), RegistryTable(pc)) == [(1,)]


# --- fails ------------------------------------------------------------------------------------------


def test_fails_when_never_enrolled() -> None:
    assert not passes(windows_pc())


def test_fails_without_an_enrollments_key() -> None:
    assert not passes({r"HKEY_LOCAL_MACHINE\SOFTWARE\Microsoft\Windows": {}})


def test_fails_while_enrolled_in_another_mdm() -> None:
    assert not passes(windows_pc(**{OLD_MDM_ID: enrollment("MS DM Server", 1)}))


def test_fails_with_only_the_local_management_enrollment() -> None:
    # What the MDM WMI bridge registers (mdmlocalmanagement.dll): not an MDM server.
    assert not passes(windows_pc(**{LOCAL_ID: enrollment("Local_Management", 1)}))


@pytest.mark.parametrize("state", [0, 2, 3, 4, 5])
def test_fails_when_the_winmdm_enrollment_is_not_enrolled(state: int) -> None:
    assert not passes(windows_pc(**{WINMDM_ID: enrollment("winmdm", state)}))


@pytest.mark.parametrize(
    ("provider", "state"), [(None, 1), ("winmdm", None)], ids=["no-provider", "no-state"]
)
def test_fails_when_a_value_is_missing(provider: str | None, state: int | None) -> None:
    assert not passes(windows_pc(**{WINMDM_ID: enrollment(provider, state)}))


def test_fails_when_provider_and_state_are_in_different_keys() -> None:
    # winmdm's failed enrollment and the old MDM's live one must not add up to "on".
    pc = windows_pc(**{WINMDM_ID: enrollment("winmdm", 3), OLD_MDM_ID: enrollment("MS DM Server", 1)})
    assert not passes(pc)


def test_provider_id_is_compared_exactly() -> None:
    assert not passes(windows_pc(**{WINMDM_ID: enrollment("WINMDM", 1)}))
    assert not passes(windows_pc(**{WINMDM_ID: enrollment("winmdm-old", 1)}))


def test_a_deeper_key_does_not_count() -> None:
    # Only direct subkeys of Enrollments are enrollments.
    pc = windows_pc()
    pc[ENROLLMENTS + r"\Status\Nested"] = {
        "ProviderID": ("REG_SZ", "winmdm"),
        "EnrollmentState": ("REG_DWORD", 1),
    }
    assert not passes(pc)


# --- the query as osquery needs it ------------------------------------------------------------------


def test_constrains_key_to_the_enrollments_subkeys() -> None:
    # Without a key constraint osquery would list the hives' top-level keys only.
    assert key_constraints(policy()) == [("LIKE", ENROLLMENTS + "\\%")]


def test_sees_registry_rows_as_osquery_makes_them() -> None:
    rows = RegistryTable(windows_pc(**{WINMDM_ID: enrollment("winmdm", 1)})).rows_for(policy())
    mine = {row["name"]: row for row in rows if row["key"] == f"{ENROLLMENTS}\\{WINMDM_ID}"}
    assert mine["EnrollmentState"]["type"] == "REG_DWORD"
    assert mine["EnrollmentState"]["data"] == "1"
    assert mine["ProviderID"]["path"] == f"{ENROLLMENTS}\\{WINMDM_ID}\\ProviderID"
    assert mine["FirstSync"]["type"] == "subkey"
    assert not any(str(row["key"]).endswith("FirstSync") for row in rows)
