"""Enrollment rules, called directly over SQLite and PostgreSQL, fed with the shared vectors."""

from __future__ import annotations

import base64
from datetime import timedelta
from decimal import Decimal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.services.conftest import SERVER, TENANT, turned_off
from tests.support.device import WindowsDevice
from tests.vectors import family, vector
from winmdm.domain.models import CertificateStatus, EnrollmentType, MDMStatus, TokenKind
from winmdm.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    CertificateRequestRejected,
    InvalidSecurity,
)
from winmdm.idp.entra import EntraVerifier
from winmdm.idp.jwks import JWKSCache
from winmdm.pki.ca import DeviceCA, random_serial
from winmdm.protocol import namespaces as ns
from winmdm.protocol import provisioning, soap, wstep
from winmdm.protocol.discovery import AuthPolicy, DiscoverRequest
from winmdm.services.authentication import Authenticator
from winmdm.services.endpoints import Endpoints
from winmdm.services.enrollment import EnrollmentService, EnrollmentSettings
from winmdm.storage.schema import hosts, teams

PLACEHOLDER = b"B64EncodedSampleBinarySecurityToken"
CSR_PLACEHOLDER = b"DER format PKCS#10 certificate request in Base64 encoding Insterted Here"
TOKEN_VECTORS = [v for v in family("enroll") if "rst_request" in v and "onpremise" not in v]


def _csr(key: rsa.RSAPrivateKey | None = None) -> bytes:
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return WindowsDevice().csr(key, hashes.SHA256())


def _substitute(data: bytes, token: str, csr: bytes | None) -> bytes:
    """vectors/README.md: placeholder tokens and ids are replaced by valid ones."""
    b64_token = base64.b64encode(token.encode())
    data = data.replace(PLACEHOLDER + b'"', PLACEHOLDER).replace(PLACEHOLDER, b64_token)
    data = data.replace(b"aGVsbG93b3JsZA==", b64_token)
    if csr is not None:
        data = data.replace(CSR_PLACEHOLDER, base64.b64encode(csr))
    return data


def _rst(name: str, token: str, csr: bytes | None = None) -> wstep.RequestSecurityToken:
    return wstep.parse_rst(soap.parse_envelope(_substitute(vector(name), token, csr)))


def _paths(node: provisioning.Characteristic, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every characteristic path and parm name, with certificate thumbprints and provider ids generalised."""
    found: set[tuple[str, ...]] = set()
    for name in node.parms:
        found.add((*prefix, "@" + name))
    for child in node.children:
        kind = child.type
        if (
            len(prefix) >= 1
            and prefix[-1] in ("System", "User", "Provider")
            and kind != "PrivateKeyContainer"
        ):
            kind = "*"
        found.add((*prefix, kind))
        found |= _paths(child, (*prefix, kind))
    return found


@pytest.mark.parametrize("name", TOKEN_VECTORS)
def test_every_rst_vector_enrolls(service, storage, token, name: str) -> None:
    csr = None if "captured" in name else _csr()
    rst = _rst(name, token(upn="alice@corp.example", device_id="5f6a0e2c-1111-4a1b-9c2d-3e4f5a6b7c8d"), csr)
    outcome = service.enroll(rst)
    # Records: every context item Windows sent, in order, the UPN and the token kind.
    assert outcome.enrollment.context == rst.context.items
    assert outcome.enrollment.upn == "alice@corp.example"
    assert outcome.enrollment.token_kind is TokenKind.ENTRA_JWT
    assert outcome.enrollment.device_id == rst.context.get("DeviceID")
    assert outcome.enrollment.enrollment_type is EnrollmentType.FULL
    assert outcome.enrollment.not_in_oobe is rst.context.get_bool("NotInOobe")
    assert outcome.enrollment.os_version == rst.context.get("OSVersion")
    assert outcome.host.team_id is None  # No team
    assert outcome.host.mdm_status is MDMStatus.PENDING
    assert outcome.host.idp_username == "alice@corp.example"
    assert outcome.created_host
    with storage.transaction() as tx:
        assert [c.serial for c in tx.certificates.list_for_host(outcome.host.id)] == [
            outcome.certificate.serial
        ]
    cert = x509.load_der_x509_certificate(outcome.certificate.der)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == rst.context.get("DeviceID")
    assert (
        ExtendedKeyUsageOID.CLIENT_AUTH
        in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    # The document has at least every characteristic and parm of the spec's user-context example.
    ours = _paths(provisioning.parse_document(outcome.document))
    theirs = _paths(provisioning.parse_document(vector("provisioning/wap_provisioning_user.xml")))
    assert theirs - ours == set()


def test_captured_windows_10_csr_enrolls_with_a_subject_winmdm_chose(service, token) -> None:
    rst = _rst("enroll/rst_request_win10_22h2_captured.xml", token())
    outcome = service.enroll(rst)
    cert = x509.load_der_x509_certificate(outcome.certificate.der)
    assert cert.subject.rfc4514_string() == "CN=DB257C3A08778F4FB61E2749066C1F27"
    assert outcome.host.hw_dev_id == "BF2D12A95AE42E47D58465E9A71336CAF33FCCAD3088F140F4D50B371FB2256F"
    assert outcome.enrollment.not_in_oobe is False and outcome.enrollment.ux_initiated is False


def test_device_context_document_matches_the_spec_example(service, token) -> None:
    device = WindowsDevice(enrollment_type="Device")
    rst = _rst_for(device, token())
    outcome = service.enroll(rst)
    ours = _paths(provisioning.parse_document(outcome.document))
    theirs = _paths(provisioning.parse_document(vector("provisioning/wap_provisioning_device.xml")))
    assert theirs - ours == set()
    criteria = (
        provisioning.parse_document(outcome.document).find("APPLICATION").value("SSLCLIENTCERTSEARCHCRITERIA")
    )
    assert criteria == f"Subject=CN%3D{device.device_id}&Stores=My%5CSystem"


def _rst_for(device: WindowsDevice, token: str, csr: bytes | None = None) -> wstep.RequestSecurityToken:
    data = wstep.build_rst(
        message_id="urn:uuid:1",
        to="https://mdm.corp.example/EnrollmentServer/Enrollment.svc",
        security=soap.Security(tokens=(soap.BinarySecurityToken(ns.VALUE_TYPE_JWT, token.encode()),)),
        request=csr or _csr(),
        context=device.context(),
    )
    return wstep.parse_rst(soap.parse_envelope(data))


def test_username_token_is_refused_until_bulk_enrollment_exists(service) -> None:
    rst = wstep.parse_rst(
        soap.parse_envelope(
            vector("enroll/rst_request_onpremise.xml").replace(CSR_PLACEHOLDER, base64.b64encode(_csr()))
        )
    )
    with pytest.raises(AuthenticationFailed, match="administrator"):
        service.enroll(rst)


@pytest.mark.parametrize("name", [v for v in family("policy") if "request" in v])
def test_policy_vectors(service, token, name: str) -> None:
    envelope = soap.parse_envelope(_substitute(vector(name), token(), None))
    if "onpremise" in name:
        with pytest.raises(AuthenticationFailed):
            service.policy_terms(envelope.security)
        return
    terms = service.policy_terms(envelope.security)
    assert terms.min_key_length == 2048
    assert terms.validity_seconds == 365 * 86400


def test_policy_without_credential(service) -> None:
    with pytest.raises(InvalidSecurity):
        service.policy_terms(soap.Security())


def test_reenrollment_keeps_one_host_and_its_team(service, storage, token, clock) -> None:
    device = WindowsDevice()
    first = service.enroll(_rst_for(device, token()))
    with storage.transaction() as tx:
        team_id = tx.connection.execute(
            teams.insert().values(name="Finance", created_at=first.host.created_at)
        ).inserted_primary_key[0]
        tx.connection.execute(hosts.update().where(hosts.c.id == first.host.id).values(team_id=team_id))
    turned_off(storage, first.host.id, clock.now)  # the user turned MDM off, then on again
    second = service.enroll(_rst_for(device, token(upn="bob@corp.example")))
    assert second.host.id == first.host.id
    assert second.host.team_id == team_id
    assert not second.created_host
    assert second.host.idp_username == "bob@corp.example"
    assert second.enrollment.dm_password_digest != first.enrollment.dm_password_digest
    with storage.transaction() as tx:
        certs = tx.certificates.list_for_host(first.host.id)
        enrollments = tx.enrollments.list_for_host(first.host.id)
    assert [c.status for c in certs] == [CertificateStatus.REVOKED, CertificateStatus.ACTIVE]
    assert [e.active for e in enrollments] == [False, True]


def test_same_hardware_with_a_new_device_id_is_the_same_host_once_the_old_one_is_silent(
    service, storage, token, clock
) -> None:
    first = service.enroll(_rst_for(WindowsDevice(hw_dev_id="AB" * 32), token()))
    clock.advance(timedelta(days=30))  # reinstalled; the old installation never checks in again
    again = service.enroll(_rst_for(WindowsDevice(hw_dev_id="AB" * 32), token()))
    other = service.enroll(_rst_for(WindowsDevice(hw_dev_id=None), token()))
    assert again.host.id == first.host.id and not again.created_host
    assert other.host.id != first.host.id
    with storage.transaction() as tx:
        assert tx.enrollments.get(first.enrollment.id).active is False


@pytest.mark.parametrize("claim", ["hw_dev_id", "device_id"])
def test_ids_of_a_host_in_use_never_take_it_over(service, storage, token, clock, claim) -> None:
    """HWDevID and DeviceID are what the PC says about itself: another PC saying them gets a
    host of its own, and the real one keeps its enrollment, certificate and team."""
    victim = WindowsDevice()
    first = service.enroll(_rst_for(victim, token()))
    with storage.transaction() as tx:
        team = tx.teams.create("Finance", at=clock.now)
        tx.hosts.set_team(first.host.id, team.id)
        tx.inventory.checked_in(first.host.id, clock.now)
    clock.advance(timedelta(days=29, hours=23))
    impostor = WindowsDevice(**{claim: getattr(victim, claim)})
    taken = service.enroll(_rst_for(impostor, token(upn="mallory@corp.example")))
    assert taken.created_host and taken.host.id != first.host.id and taken.host.team_id is None
    with storage.transaction() as tx:
        assert tx.enrollments.get(first.enrollment.id).active is True
        assert tx.certificates.get(first.certificate.serial).status is CertificateStatus.ACTIVE
        assert tx.hosts.get(first.host.id).team_id == team.id
        conflict = tx.activities.list(host_id=taken.host.id)[0]
    assert conflict.type == "host_identity_conflict"
    assert conflict.details["claimed_host_id"] == first.host.id and conflict.details["matched"] == claim


def test_a_host_silent_for_the_configured_time_may_be_taken_over(
    storage, device_ca, entra, clock, token
) -> None:
    service = EnrollmentService(
        storage=storage,
        ca=device_ca,
        authenticator=Authenticator(EntraVerifier([TENANT], [SERVER], JWKSCache(entra.jwks_url))),
        endpoints=Endpoints.from_server_url(SERVER),
        settings=EnrollmentSettings(merge_after=timedelta(days=2)),
        clock=clock,
    )
    device = WindowsDevice()
    first = service.enroll(_rst_for(device, token()))
    clock.advance(timedelta(days=1))
    assert service.enroll(_rst_for(device, token())).host.id != first.host.id
    clock.advance(timedelta(days=1))
    assert service.enroll(_rst_for(device, token())).host.id == first.host.id


def test_serials_are_unique_and_certificates_are_recorded(service, storage, token) -> None:
    serials = {service.enroll(_rst_for(WindowsDevice(), token())).certificate.serial for _ in range(5)}
    assert len(serials) == 5
    with storage.transaction() as tx:
        assert all(tx.certificates.get(s) is not None for s in serials)


def test_bad_csrs_are_refused(service, token) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CertificateRequestRejected, match="1024"):
        service.enroll(_rst_for(WindowsDevice(), token(), csr=_csr(weak)))
    good = bytearray(_csr())
    good[-5] ^= 0xFF
    with pytest.raises(CertificateRequestRejected):
        service.enroll(_rst_for(WindowsDevice(), token(), csr=bytes(good)))


def test_expired_token_is_refused(service, token, clock) -> None:
    expired = token(lifetime=timedelta(minutes=10))
    clock.advance(timedelta(minutes=30))
    with pytest.raises(AuthenticationFailed, match="expired"):
        service.enroll(_rst_for(WindowsDevice(), expired))


# -- renewal ----------------------------------------------------------------------------------


def _renewal(
    cert: x509.Certificate, key: rsa.RSAPrivateKey, new_key: rsa.RSAPrivateKey
) -> wstep.RequestSecurityToken:
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(_csr(new_key))
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    data = wstep.build_rst(
        message_id="urn:uuid:2",
        to="https://mdm.corp.example/EnrollmentServer/Enrollment.svc",
        security=soap.Security(),
        request=signed,
        context=[],
        request_type=wstep.RequestType.RENEW,
        value_type=ns.VALUE_TYPES_PKCS7[0],
    )
    return wstep.parse_rst(soap.parse_envelope(data))


def _enrolled(service, token, device=None):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    outcome = service.enroll(_rst_for(device or WindowsDevice(), token(), csr=_csr(key)))
    return outcome, x509.load_der_x509_certificate(outcome.certificate.der), key


def test_renewal_keeps_host_and_replaces_the_certificate_on_first_use(
    service, certificates, storage, token, clock
) -> None:
    outcome, cert, key = _enrolled(service, token)
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    clock.advance(timedelta(days=300))
    renewed = service.renew(_renewal(cert, key, new_key))
    new_cert = x509.load_der_x509_certificate(renewed.certificate.der)
    assert new_cert.public_key().public_numbers() == new_key.public_key().public_numbers()
    assert new_cert.subject == cert.subject
    assert renewed.certificate.host_id == outcome.host.id
    assert renewed.certificate.replaces_serial == outcome.certificate.serial
    doc = provisioning.parse_document(renewed.document)
    assert doc.find("CertificateStore", "My", "User", renewed.certificate.thumbprint) is not None
    assert doc.find("APPLICATION") is None  # a renewal answer carries only the certificate store
    # Until the new certificate is used, the old one still works (the answer may have been lost).
    assert certificates.authenticate(cert).serial == outcome.certificate.serial
    assert certificates.authenticate(new_cert).first_used_at == clock.now
    with pytest.raises(AuthenticationFailed, match="revoked"):
        certificates.authenticate(cert)
    assert certificates.authenticate(new_cert).serial == renewed.certificate.serial
    with storage.transaction() as tx:
        assert tx.hosts.get(outcome.host.id) is not None
        assert len(tx.enrollments.list_for_host(outcome.host.id)) == 1


def test_renewal_refusals(service, token, clock, device_ca) -> None:
    _outcome, cert, key = _enrolled(service, token)
    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    # A certificate from another CA.
    stranger_ca = DeviceCA.generate("Stranger", clock.now - timedelta(days=1))
    foreign = stranger_ca.issue_client_certificate(
        key.public_key(), common_name="X", serial=random_serial(), now=clock.now
    )
    with pytest.raises(AuthenticationFailed, match="did not issue"):
        service.renew(_renewal(foreign, key, new_key))
    # Expired.
    clock.advance(timedelta(days=400))
    with pytest.raises(AuthorizationFailed) as expired:
        service.renew(_renewal(cert, key, new_key))
    assert expired.value.detail_type == "NotEligibleToRenew"
    clock.advance(timedelta(days=-400))
    # Revoked by re-enrollment of the same device (its first installation silent for 30 days).
    device = WindowsDevice()
    _first, first_cert, first_key = _enrolled(service, token, device)
    clock.advance(timedelta(days=30))
    _enrolled(service, token, device)
    with pytest.raises(AuthenticationFailed, match="revoked"):
        service.renew(_renewal(first_cert, first_key, new_key))


def test_certificate_checks(certificates, service, token, clock, device_ca) -> None:
    _outcome, cert, _ = _enrolled(service, token)
    clock.advance(timedelta(days=366))
    with pytest.raises(AuthenticationFailed, match="not valid"):
        certificates.authenticate(cert)
    unknown = device_ca.issue_client_certificate(
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key(),
        common_name="nobody",
        serial=random_serial(),
        now=clock.now,
    )
    with pytest.raises(AuthenticationFailed, match="unknown"):
        certificates.authenticate(unknown)


# -- discovery ---------------------------------------------------------------------------------


def _discover(*policies: AuthPolicy, version: str = "5.0") -> DiscoverRequest:
    return DiscoverRequest(
        None, None, "alice@corp.example", Decimal(version), "CIMClient_Windows", None, "48", policies
    )


def test_discovery_answers(service) -> None:
    federated = service.discover(_discover(AuthPolicy.ON_PREMISE, AuthPolicy.FEDERATED, version="9.0"))
    assert federated.auth_policy is AuthPolicy.FEDERATED
    assert federated.enrollment_version == Decimal("5.0")
    assert federated.authentication_url == "https://mdm.corp.example/EnrollmentServer/Authenticate"
    assert federated.enrollment_url == "https://mdm.corp.example/EnrollmentServer/Enrollment.svc"
    onpremise = service.discover(_discover(AuthPolicy.ON_PREMISE, version="3.0"))
    assert onpremise.auth_policy is AuthPolicy.ON_PREMISE and onpremise.authentication_url is None
    assert onpremise.enrollment_version == Decimal("3.0")
    with pytest.raises(AuthorizationFailed) as refused:
        service.discover(_discover(AuthPolicy.CERTIFICATE))
    assert refused.value.detail_type == "NotSupported"
