"""Builds a running winmdm from its Config: the first start creates, later starts reuse.

The composition root: storage, device CA, TLS material, identity verification and services.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.engine import Engine

from winmdm import data_dir
from winmdm.config import Config
from winmdm.idp.enrollment_token import EnrollmentTokens
from winmdm.idp.enrollment_token import load_or_create_key as load_or_create_token_key
from winmdm.idp.entra import EntraVerifier
from winmdm.idp.jwks import JWKSCache
from winmdm.idp.oidc import OIDCClient
from winmdm.metrics import Metrics, MetricsHooks
from winmdm.pki.ca import DeviceCA
from winmdm.pki.tls import ensure_dev_tls
from winmdm.protocol.provisioning import RenewalTerms
from winmdm.services.accounts import AdminAccounts
from winmdm.services.activities import ActivityFeed
from winmdm.services.agent import AgentService, load_or_create_key
from winmdm.services.authentication import Authenticator
from winmdm.services.bulk import EnrollmentSecrets
from winmdm.services.certificates import DeviceCertificates
from winmdm.services.commands import CommandService
from winmdm.services.deep_link import DeepLinks
from winmdm.services.end_user_auth import end_user_auth_required
from winmdm.services.endpoints import Endpoints
from winmdm.services.enrollment import EnrollmentService, EnrollmentSettings
from winmdm.services.gitops import GitOpsService
from winmdm.services.hosts import HostService
from winmdm.services.license import load_license, public_key_from_file
from winmdm.services.live_queries import LiveQueries
from winmdm.services.management import ManagementService, ManagementSettings
from winmdm.services.osquery import OsqueryAgents
from winmdm.services.policies import PolicyService
from winmdm.services.profiles import ProfileService
from winmdm.services.settings import SettingsService
from winmdm.services.teams import TeamService
from winmdm.services.terms import TermsOfUse
from winmdm.storage.agent_logs import AgentLogFiles
from winmdm.storage.database import create_engine_for, current_revision, migrate
from winmdm.storage.protocols import Storage
from winmdm.storage.sql import SQLStorage
from winmdm.transaction_timer import time_transactions

log = logging.getLogger("winmdm")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class TLSFiles:
    cert: Path
    key: Path
    dev_ca: Path | None  # the dev root to trust, when winmdm made the certificate
    created: bool


@dataclass
class Runtime:
    config: Config
    storage: Storage
    ca: DeviceCA
    ca_path: Path
    ca_created: bool
    tls: TLSFiles
    endpoints: Endpoints
    enrollment: EnrollmentService
    certificates: DeviceCertificates
    management: ManagementService
    commands: CommandService
    agent: AgentService
    profiles: ProfileService
    terms: TermsOfUse
    schema_revision: str | None
    # The fleet (issue 6): hosts, teams, the activity feed.
    hosts: HostService
    teams: TeamService
    activities: ActivityFeed
    # Administration: admin accounts and tokens, the mdm.* settings and the license (Free or
    # Premium: settings.license(), the one source, as it stands at the moment asked).
    accounts: AdminAccounts
    settings: SettingsService
    gitops: GitOpsService
    # The agent channel: osquery's TLS remote API and live queries (docs/agent-channel.md).
    osquery: OsqueryAgents
    live_queries: LiveQueries
    policies: PolicyService
    # The sign-in page of MDM-only enrollment (web/signin_routes.py); oidc is None when not set up.
    enrollment_tokens: EnrollmentTokens | None = None
    deep_links: DeepLinks | None = None
    bulk: EnrollmentSecrets | None = None
    oidc: OIDCClient | None = None
    clock: Callable[[], datetime] = utc_now
    # Operations (docs/operations.md): this runtime's metrics, and the engine /readyz checks.
    metrics: Metrics = field(default_factory=Metrics)
    engine: Engine | None = None
    agent_logs: AgentLogFiles | None = None

    def close(self) -> None:
        self.storage.close()
        if self.agent_logs is not None:
            self.agent_logs.close()
        if self.oidc is not None:
            self.oidc.close()


def build(config: Config, *, clock: Callable[[], datetime] = utc_now, with_tls: bool = True) -> Runtime:
    """Create or reuse the data dir, database schema, device CA and TLS files."""
    now = clock()
    data_dir.prepare_folder(config.data_dir)
    # The CA first: a broken one stops the start before anything else is created.
    ca, ca_created = DeviceCA.load_or_create(
        config.data_dir, common_name=f"{config.organization} Device CA", now=now
    )
    engine = create_engine_for(config.database_url)
    migrate(engine)
    metrics = Metrics()
    time_transactions(engine, metrics.db_transaction)
    storage = SQLStorage(engine)
    tls = _tls(config, now) if with_tls else TLSFiles(Path(), Path(), None, False)
    endpoints = Endpoints.from_server_url(config.server_url)
    verifier = None
    if config.entra_tenant_ids:
        verifier = EntraVerifier(
            config.entra_tenant_ids, config.entra_audiences, JWKSCache(config.entra_jwks_url)
        )
    enrollment_tokens = EnrollmentTokens(load_or_create_token_key(config.data_dir))
    oidc = None
    if config.oidc_issuer and config.oidc_client_id and config.oidc_client_secret:
        oidc = OIDCClient(config.oidc_issuer, config.oidc_client_id, config.oidc_client_secret)
    else:
        log.info(
            "MDM-only enrollment is off: set WINMDM_OIDC_ISSUER, WINMDM_OIDC_CLIENT_ID and "
            "WINMDM_OIDC_CLIENT_SECRET to turn on the sign-in page"
        )
    settings = EnrollmentSettings(
        provider_id="winmdm",
        server_name=config.organization,
        poll=config.poll_schedule,
        certificate_lifetime=timedelta(days=config.certificate_days),
        renewal=RenewalTerms(renew_period_days=config.renewal_days),
        merge_after=timedelta(days=config.host_merge_after_days),
    )
    license = load_license(config.license_key, public_key_from_file(config.license_public_key_file), now)
    # No team's end-user authentication: WINMDM_END_USER_AUTH until an admin sets it.
    mdm_settings = SettingsService(
        storage,
        clock,
        license,
        end_user_authentication_default=config.end_user_auth,
        sign_in_configured=oidc is not None,
    )
    # The ToU blob key is derived from the download-link key (services/terms.py says why).
    terms = TermsOfUse(
        verifier,
        clock,
        load_or_create_key(config.data_dir),
        # Read at each request: an admin may change it while the server runs. A PC known by its
        # Entra device id follows its team, any other No team (services/end_user_auth.py).
        device_end_user_auth=functools.partial(
            end_user_auth_required,
            storage=storage,
            no_team=mdm_settings.end_user_authentication,
            sign_in_configured=oidc is not None,
        ),
    )
    bulk = EnrollmentSecrets(storage=storage, clock=clock)
    enrollment = EnrollmentService(
        storage=storage,
        ca=ca,
        authenticator=Authenticator(
            verifier, enrollment_tokens=enrollment_tokens, sign_in_configured=oidc is not None
        ),
        endpoints=endpoints,
        settings=settings,
        clock=clock,
        terms=terms,
        bulk=bulk,
        mdm_settings=mdm_settings,
    )
    certificates = DeviceCertificates(storage=storage, ca=ca, clock=clock)
    agent = AgentService(
        storage, clock, load_or_create_key(config.data_dir), config.server_url, metrics=metrics
    )
    profiles = ProfileService(storage, clock, metrics=metrics)
    teams = TeamService(storage, clock, profiles=profiles)
    policies = PolicyService(storage, clock)
    agent_logs = (
        AgentLogFiles(config.osquery_log_dir, max_bytes=config.osquery_log_max_bytes)
        if config.osquery_log_dir is not None
        else None
    )
    return Runtime(
        config=config,
        storage=storage,
        ca=ca,
        ca_path=config.data_dir / "device-ca.crt",
        ca_created=ca_created,
        tls=tls,
        endpoints=endpoints,
        enrollment=enrollment,
        certificates=certificates,
        management=ManagementService(
            storage=storage,
            certificates=certificates,
            clock=clock,
            settings=ManagementSettings(merge_after=settings.merge_after),
            # The metrics hook last: it sees what profiles and agent made of each reply.
            hooks=[profiles, agent, MetricsHooks(metrics)],
            metrics=metrics,
        ),
        commands=CommandService(
            storage=storage, clock=clock, provider_id=settings.provider_id, metrics=metrics
        ),
        agent=agent,
        profiles=profiles,
        terms=terms,
        schema_revision=current_revision(engine),
        enrollment_tokens=enrollment_tokens,
        oidc=oidc,
        deep_links=DeepLinks(tokens=enrollment_tokens, endpoints=endpoints),
        bulk=bulk,
        clock=clock,
        hosts=HostService(storage, clock, profiles=profiles),
        teams=teams,
        activities=ActivityFeed(storage),
        accounts=AdminAccounts(storage, clock, metrics=metrics),
        settings=mdm_settings,
        gitops=GitOpsService(
            settings=mdm_settings, teams=teams, profiles=profiles, agent=agent, policies=policies
        ),
        osquery=OsqueryAgents(storage, clock, merge_after=settings.merge_after, logs=agent_logs),
        live_queries=LiveQueries(storage, clock),
        policies=policies,
        metrics=metrics,
        engine=engine,
        agent_logs=agent_logs,
    )


def _tls(config: Config, now: datetime) -> TLSFiles:
    if config.tls_cert and config.tls_key:
        return TLSFiles(config.tls_cert, config.tls_key, None, False)
    dev = ensure_dev_tls(config.data_dir / "tls", config.server_host, now=now)
    return TLSFiles(dev.cert_path, dev.key_path, dev.ca_cert_path, dev.created)
