"""What Windows does with a bulk-enrollment provisioning package (shared by tests)."""

from __future__ import annotations

import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.device import WindowsDevice
from winmdm.protocol import soap, wstep


def enroll_with_package(client, device: WindowsDevice, username: str, secret: str, discovery_url: str):
    """What Windows does with a provisioning package: Discover, GetPolicies and RST, all with
    the package's UPN and its secret in a WS-Security UsernameToken."""
    found = device.discover(client, discovery_url, email=username)
    security = soap.Security(username=soap.UsernameToken(username, secret))
    device.get_policies(client, found.policy_url, security)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    body = wstep.build_rst(
        message_id=f"urn:uuid:{uuid.uuid4()}",
        to=found.enrollment_url,
        security=security,
        request=device.csr(key, hashes.SHA256()),
        context=device.context(),
    )
    device.enrolled = device._accept(
        wstep.parse_rstr(device._post(client, found.enrollment_url, body)), key, found.enrollment_url
    )
    return found
