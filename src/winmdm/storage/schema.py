"""The database schema, one SQLAlchemy Core `MetaData` for SQLite and PostgreSQL.

Alembic's revisions under `migrations/versions/` create exactly this; a test compares them, so a
change here needs a new revision too. Types are chosen so both backends give back the same Python
values: aware UTC datetimes, enum members, bytes, and JSON lists.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from winmdm.domain.admin import AdminTokenKind, Role
from winmdm.domain.identity import EnrollmentKind
from winmdm.domain.management import AgentStatus, CommandKind, CommandState, ProfileStatus, SessionProof
from winmdm.domain.models import CertificateStatus, EnrollmentType, MDMStatus, TokenKind
from winmdm.domain.osquery import LiveQueryState

# Fixed constraint names: Alembic migrations (and SQLite batch rebuilds) need names to refer to.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware datetimes, stored as UTC, always returned aware in UTC.

    SQLite has no time zone type and SQLAlchemy's SQLite DateTime silently drops tzinfo, so values
    are converted to UTC before storing and tagged UTC when read. Naive datetimes are refused: a
    naive value in this code base is a bug (whose clock?), better caught at the write.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: winmdm stores aware datetimes only")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class StrEnumType(sa.TypeDecorator[enum.StrEnum]):
    """A `StrEnum` stored as its string value in a plain VARCHAR.

    Not a native PostgreSQL ENUM: adding a member would then need an ALTER TYPE migration, and
    SQLite has none anyway. The CHECK constraints on the tables keep the values honest.
    """

    impl = sa.String(32)
    cache_ok = True

    def __init__(self, enum_class: type[enum.StrEnum]) -> None:
        super().__init__()
        self.enum_class = enum_class

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return self.enum_class(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> enum.StrEnum | None:
        if value is None:
            return None
        return self.enum_class(value)


def _values_check(column: str, enum_class: type[enum.StrEnum], name: str) -> sa.CheckConstraint:
    values = ", ".join(f"'{member.value}'" for member in enum_class)
    return sa.CheckConstraint(f"{column} IN ({values})", name=name)


teams = sa.Table(
    "teams",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The Entra terms page also signs the end user in with the IdP (revision 0003).
    sa.Column("end_user_auth", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("name"),
)

hosts = sa.Table(
    "hosts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uuid", sa.String(64), nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    # Client-supplied identifiers are Text: a long value must not turn into a database error.
    sa.Column("hw_dev_id", sa.Text, nullable=True),
    sa.Column("device_id", sa.Text, nullable=True),
    sa.Column("serial", sa.Text, nullable=True),
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", ondelete="SET NULL"), nullable=True),
    sa.Column("mdm_status", StrEnumType(MDMStatus), nullable=False),
    sa.Column("os_version", sa.Text, nullable=True),
    sa.Column("os_edition", sa.Text, nullable=True),
    sa.Column("idp_username", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=True),
    # Inventory (DevInfo/DevDetail) not on the domain Host: read through InventoryStore.
    sa.Column("manufacturer", sa.Text, nullable=True),
    sa.Column("model", sa.Text, nullable=True),
    sa.Column("language", sa.Text, nullable=True),
    sa.Column("dm_version", sa.Text, nullable=True),
    # The current enrollment's manual/automatic (revision 0003); NULL before anyone decided.
    sa.Column("enrollment_kind", StrEnumType(EnrollmentKind), nullable=True),
    # The latest Entra enrollment's Entra device id (revision 0005): the terms page finds the
    # host, and so its team's end-user authentication, by it.
    sa.Column("entra_device_id", sa.Text, nullable=True),
    _values_check("mdm_status", MDMStatus, "mdm_status"),
    _values_check("enrollment_kind", EnrollmentKind, "enrollment_kind"),
    sa.Index(None, "uuid", unique=True),
    sa.Index(None, "hw_dev_id"),
    sa.Index(None, "device_id"),
    sa.Index(None, "serial"),
    sa.Index(None, "team_id"),
    sa.Index(None, "entra_device_id"),
    # The hosts list filtered by an MDM status few hosts have (revision 0007): without it, the
    # first page walks the hosts by id until it has found enough.
    sa.Index(None, "mdm_status", "enrollment_kind"),
)

# How many hosts each (team, stored MDM status, enrollment kind) has, as rows of changes that
# add up (revision 0007). Triggers on hosts, created by that revision, insert +n/-n rows with
# every insert, delete and change of those three columns, in the same transaction, so a sum is
# exact and consistent with what the transaction sees of hosts; only inserts, so concurrent
# enrollments and check-ins never wait for each other here. Readers fold the rows into one
# per group now and then (storage/sql_fleet.py). The dashboard and the hosts list's total then
# read a few hundred rows, not a million hosts: counting hosts themselves costs a scan of the
# table or, between two vacuums of a table every check-in updates, an index-only scan that
# fetches most heap pages anyway.
# No foreign key to teams: a deleted team's rows add up to 0 once its hosts are in No team.
# A revision that rebuilds hosts on SQLite (batch_alter_table) drops its triggers with the old
# table and must create them again (tests/storage/test_host_status_counts.py checks they exist).
host_status_counts = sa.Table(
    "host_status_counts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("team_id", sa.Integer, nullable=True),
    sa.Column("mdm_status", StrEnumType(MDMStatus), nullable=False),
    sa.Column("enrollment_kind", StrEnumType(EnrollmentKind), nullable=True),
    sa.Column("hosts", sa.Integer, nullable=False),
)

# Every host's id, alone (revision 0009): the target of host_commands' and host_profiles' host
# keys. A foreign-key check locks the row it finds (PostgreSQL writes that lock into the row's
# page); a profile for 100,000 hosts then locks pages of this narrow table, not of the wide
# hosts table, whose pages a fan-out would otherwise read and, after a checkpoint, write whole to
# the WAL (benchmarks/README.md). Kept by a trigger on hosts that revision creates; deleting a
# host cascades through it. A revision that rebuilds hosts on SQLite must create the trigger
# again (tests/storage/test_migration_0009.py checks it exists).
host_ids = sa.Table(
    "host_ids",
    metadata,
    sa.Column(
        "id",
        sa.Integer,
        sa.ForeignKey("hosts.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
)

enrollments = sa.Table(
    "enrollments",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("device_id", sa.Text, nullable=False),
    sa.Column("hw_dev_id", sa.Text, nullable=True),
    sa.Column("enrollment_type", StrEnumType(EnrollmentType), nullable=False),
    sa.Column("not_in_oobe", sa.Boolean, nullable=True),
    sa.Column("ux_initiated", sa.Boolean, nullable=True),
    sa.Column("device_name", sa.Text, nullable=True),
    sa.Column("os_version", sa.Text, nullable=True),
    sa.Column("os_edition", sa.Text, nullable=True),
    sa.Column("domain_name", sa.Text, nullable=True),
    sa.Column("upn", sa.Text, nullable=True),
    sa.Column("token_kind", StrEnumType(TokenKind), nullable=False),
    # A JSON list of [name, value] pairs: keeps order and repeated names (MAC, IMEI).
    sa.Column("context", sa.JSON, nullable=False),
    # NewEnrollment.extra: not on the domain Enrollment yet, kept so nothing sent is lost.
    sa.Column("extra", sa.JSON, nullable=False),
    sa.Column("dm_username", sa.Text, nullable=False),
    sa.Column("dm_password_digest", sa.Text, nullable=False),
    sa.Column("dm_server_secret", sa.Text, nullable=False),
    sa.Column("dm_nonce", sa.Text, nullable=False),
    # The nonce before dm_nonce (revision 0006): only the one-shot unenroll alert may use it.
    sa.Column("dm_previous_nonce", sa.Text, nullable=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("enrollment_kind", StrEnumType(EnrollmentKind), nullable=True),
    sa.Column("end_user_username", sa.Text, nullable=True),
    _values_check("enrollment_type", EnrollmentType, "enrollment_type"),
    # Widened in revision 0003 (SQLite rebuilds the table for it: see database.migrate).
    _values_check("token_kind", TokenKind, "token_kind"),
    _values_check("enrollment_kind", EnrollmentKind, "enrollment_kind"),
    sa.Index(None, "host_id", "active"),
    # Every OMA-DM session finds its enrollment by the SyncML Source LocURI.
    sa.Index(None, "device_id"),
)

device_certificates = sa.Table(
    "device_certificates",
    metadata,
    # A surrogate key gives "then insertion" order for certificates with the same not_before.
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("serial", sa.String(64), nullable=False),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    sa.Column(
        "enrollment_id",
        sa.Integer,
        sa.ForeignKey("enrollments.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("thumbprint", sa.String(64), nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("not_before", UTCDateTime, nullable=False),
    sa.Column("not_after", UTCDateTime, nullable=False),
    sa.Column("der", sa.LargeBinary, nullable=False),
    sa.Column("status", StrEnumType(CertificateStatus), nullable=False),
    sa.Column("replaces_serial", sa.String(64), nullable=True),
    sa.Column("first_used_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("revoked_reason", sa.Text, nullable=True),
    _values_check("status", CertificateStatus, "status"),
    sa.Index(None, "serial", unique=True),
    sa.Index(None, "host_id"),
    sa.Index(None, "enrollment_id"),
)

# --- management (OMA-DM) ---------------------------------------------------------------------

commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("uuid", sa.String(64), nullable=False),
    sa.Column("kind", StrEnumType(CommandKind), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("context", sa.JSON, nullable=False),
    sa.Column("actor", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    _values_check("kind", CommandKind, "kind"),
    sa.Index(None, "uuid", unique=True),
)

host_commands = sa.Table(
    "host_commands",
    metadata,
    sa.Column("host_id", sa.Integer, sa.ForeignKey("host_ids.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "command_id",
        sa.Integer,
        sa.ForeignKey("commands.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("state", StrEnumType(CommandState), nullable=False),
    # MDMSession.key of the session that sent it (revision 0006; the device's SessionID before).
    sa.Column("session_key", sa.Text, nullable=True),
    sa.Column("msg_id", sa.Integer, nullable=True),
    sa.Column("cmd_ids", sa.JSON, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    # A JSON list of {cmd_ref, cmd, code, items: [[loc_uri, data], ...]}.
    sa.Column("replies", sa.JSON, nullable=False),
    sa.Column("raw_reply", sa.Text, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("queued_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("done_at", UTCDateTime, nullable=True),
    _values_check("state", CommandState, "state"),
    sa.Index(None, "host_id", "state"),
    sa.Index(None, "command_id"),
)

# One row per enrollment: its latest OMA-DM session (revision 0006; before, one per host).
mdm_sessions = sa.Table(
    "mdm_sessions",
    metadata,
    sa.Column(
        "enrollment_id",
        sa.Integer,
        sa.ForeignKey("enrollments.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("session_key", sa.String(64), nullable=False),
    # protocol.syncml.session.dump_state: SessionID, MsgIDs, placed commands, chunks.
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("proof", StrEnumType(SessionProof), nullable=True),
    sa.Column("certificate_serial", sa.String(64), nullable=True),
    sa.Column("request_digest", sa.LargeBinary, nullable=True),
    sa.Column("response", sa.LargeBinary, nullable=True),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=True),
    _values_check("proof", SessionProof, "proof"),
)

profiles = sa.Table(
    "profiles",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # A team's profiles go with it: moved to No team they could clash with its names.
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=True),
    # coalesce(team_id, 0): NULLs never clash in a UNIQUE constraint, so No team needs a value
    # of its own for its names to be unique too. Team ids start at 1.
    sa.Column("team_key", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("syncml", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("team_key = COALESCE(team_id, 0)", name="team_key"),
    sa.UniqueConstraint("team_key", "name"),
    sa.Index(None, "team_id"),
)

host_profiles = sa.Table(
    "host_profiles",
    metadata,
    sa.Column("host_id", sa.Integer, sa.ForeignKey("host_ids.id", ondelete="CASCADE"), primary_key=True),
    sa.Column(
        "profile_id",
        sa.Integer,
        sa.ForeignKey("profiles.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("status", StrEnumType(ProfileStatus), nullable=False),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("command_uuid", sa.String(64), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    _values_check("status", ProfileStatus, "status"),
    sa.Index(None, "profile_id"),
)

agent_package = sa.Table(
    "agent_package",
    metadata,
    # One row: the CHECK makes a second package impossible, not merely unused.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("product_code", sa.Text, nullable=False),
    sa.Column("version", sa.Text, nullable=False),
    sa.Column("sha256", sa.Text, nullable=False),
    sa.Column("install_args", sa.Text, nullable=False),
    sa.Column("url", sa.Text, nullable=True),
    sa.Column("content", sa.LargeBinary, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)

host_agent = sa.Table(
    "host_agent",
    metadata,
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("status", StrEnumType(AgentStatus), nullable=False),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.Column("command_uuid", sa.String(64), nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    _values_check("status", AgentStatus, "status"),
)

activities = sa.Table(
    "activities",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("type", sa.Text, nullable=False),
    sa.Column("actor", sa.Text, nullable=True),
    # The record outlives the host it was about.
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="SET NULL"), nullable=True),
    sa.Column("details", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "host_id", "id"),
)

# --- enrollment identity (revision 0003) -----------------------------------------------------

enrollment_tokens_used = sa.Table(
    "enrollment_tokens_used",
    metadata,
    # The token's jti: the primary key is what makes "used once" hold across instances.
    sa.Column("token_id", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("used_at", UTCDateTime, nullable=False),
    sa.Index(None, "expires_at"),
)

enrollment_secrets = sa.Table(
    "enrollment_secrets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # None is No team; a team's secrets go with it.
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=True),
    sa.Column("secret_hash", sa.String(64), nullable=False),  # hex SHA-256, never the secret
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("secret_hash"),
    sa.Index(None, "team_id"),
)

# --- administration (revision 0004) ------------------------------------------------------------

admins = sa.Table(
    "admins",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # Stored lower-case, so the unique constraint is case-insensitive on both backends.
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2id, PHC string
    sa.Column("role", StrEnumType(Role), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    _values_check("role", Role, "role"),
    sa.UniqueConstraint("email"),
)

admin_tokens = sa.Table(
    "admin_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("admin_id", sa.Integer, sa.ForeignKey("admins.id", ondelete="CASCADE"), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False),  # hex SHA-256, never the token
    sa.Column("kind", StrEnumType(AdminTokenKind), nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    _values_check("kind", AdminTokenKind, "kind"),
    sa.UniqueConstraint("token_hash"),
    sa.Index(None, "admin_id"),
)

admin_login_failures = sa.Table(
    "admin_login_failures",
    metadata,
    # In the database, not in memory: the sign-in limit holds across instances.
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("client", sa.Text, nullable=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index(None, "email", "at"),
    sa.Index(None, "client", "at"),
    sa.Index(None, "at"),
)

app_settings = sa.Table(
    "app_settings",
    metadata,
    # One JSON value per setting ("windows_enabled_and_configured", ...): a new setting needs
    # no migration. updated_at is NULL for the defaults revision 0004 inserted.
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=True),
)

# --- the osquery agent (revision 0008, docs/agent-channel.md) ----------------------------------

osquery_nodes = sa.Table(
    "osquery_nodes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # One agent per host: a re-enrollment replaces the row, so the old node key stops working.
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("node_key_hash", sa.String(64), nullable=False),  # hex SHA-256, never the key
    # What osquery reports about itself (self-reported, docs/host-identity.md).
    sa.Column("host_identifier", sa.Text, nullable=True),
    sa.Column("hardware_uuid", sa.Text, nullable=True),
    sa.Column("hardware_serial", sa.Text, nullable=True),
    sa.Column("platform_type", sa.Text, nullable=True),
    sa.Column("osquery_version", sa.Text, nullable=True),
    sa.Column("enrolled_at", UTCDateTime, nullable=False),
    sa.Column("last_seen_at", UTCDateTime, nullable=False),
    sa.Column("mdm_checked_at", UTCDateTime, nullable=True),
    # The logger endpoint keeps counts, not the logs (docs/agent-channel.md "Logs").
    sa.Column("status_logs", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("result_logs", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_log_at", UTCDateTime, nullable=True),
    # When the agent was last sent its policies (docs/policies.md).
    sa.Column("policies_run_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("host_id"),
    sa.UniqueConstraint("node_key_hash"),
    sa.Index(None, "hardware_uuid"),
)

live_queries = sa.Table(
    "live_queries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="CASCADE"), nullable=False),
    sa.Column("sql", sa.Text, nullable=False),
    sa.Column("state", StrEnumType(LiveQueryState), nullable=False),
    sa.Column("actor", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime, nullable=True),
    sa.Column("done_at", UTCDateTime, nullable=True),
    sa.Column("status", sa.Integer, nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    # A JSON list of rows (column -> string), bounded by the service.
    sa.Column("rows", sa.JSON, nullable=False),
    sa.Column("row_count", sa.Integer, nullable=True),
    _values_check("state", LiveQueryState, "state"),
    sa.Index(None, "host_id", "state"),
)

policies = sa.Table(
    "policies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    # None: a global policy; a team's policies go with it.
    sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", ondelete="CASCADE"), nullable=True),
    # coalesce(team_id, 0), as profiles.team_key: names are unique per team and among globals.
    sa.Column("team_key", sa.Integer, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("sql", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.CheckConstraint("team_key = COALESCE(team_id, 0)", name="team_key"),
    sa.UniqueConstraint("team_key", "name"),
    sa.Index(None, "team_id"),
)

policy_results = sa.Table(
    "policy_results",
    metadata,
    sa.Column("policy_id", sa.Integer, sa.ForeignKey("policies.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("host_id", sa.Integer, sa.ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True),
    # NULL: the query failed on the host (no answer either way).
    sa.Column("passes", sa.Boolean, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "host_id"),
)
