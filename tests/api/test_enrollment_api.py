"""Deep links, enrollment instructions and the agent package through the API."""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qs, urlsplit

from winmdm.domain.admin import Role

MSI = bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 2048
PRODUCT = "{6A3D0C46-1F7B-4F4E-8E36-2B5F0F1C7A11}"


def test_deep_link_plain_and_pre_authorized(server):
    plain = server.post(
        "/enrollment/deep_link", Role.MAINTAINER, json={"username": "alice@corp.example"}
    ).json()
    assert plain["url"].startswith("ms-device-enrollment:?mode=mdm&username=alice%40corp.example&servername=")
    assert plain["expires_at"] is None
    pre = server.post(
        "/enrollment/deep_link",
        Role.MAINTAINER,
        json={"username": "alice@corp.example", "preauthorized": True},
    ).json()
    servername = parse_qs(urlsplit(pre["url"].replace("ms-device-enrollment:", "https://x/")).query)[
        "servername"
    ][0]
    assert "token=winmdm-et1." in servername and pre["expires_at"]
    nameless = server.post("/enrollment/deep_link", Role.MAINTAINER, json={"preauthorized": True})
    assert nameless.status_code == 422 and nameless.json()["error"]["field"] == "username"


def test_instructions_tell_the_user_what_to_do(server):
    answer = server.get("/enrollment/instructions", Role.OBSERVER).json()
    assert answer["server_address"].endswith("/EnrollmentServer/Discovery.svc")
    assert answer["entra"] is True
    assert any("Access work or school" in step for step in answer["steps"])
    assert answer["deep_link"].startswith("ms-device-enrollment:?mode=mdm")


def test_agent_package_by_url_and_by_upload(server):
    assert server.get("/agent_package", Role.OBSERVER).json() == {"agent_package": None}
    digest = hashlib.sha256(MSI).hexdigest()
    by_url = server.put(
        "/agent_package",
        Role.MAINTAINER,
        json={
            "url": "https://downloads.corp.example/agent.msi",
            "sha256": digest,
            "product_code": PRODUCT,
            "version": "1.2.3",
        },
    )
    assert by_url.status_code == 200, by_url.text
    assert by_url.json()["agent_package"]["url"] == "https://downloads.corp.example/agent.msi"
    bad = server.put(
        "/agent_package",
        Role.MAINTAINER,
        json={
            "url": "https://downloads.corp.example/agent.msi",
            "sha256": "abc",
            "product_code": PRODUCT,
            "version": "1.2.3",
        },
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "sha256"
    uploaded = server.post(
        "/agent_package/upload",
        Role.MAINTAINER,
        content=MSI,
        params={"product_code": PRODUCT, "version": "2.0.0"},
        headers={"content-type": "application/octet-stream"},
    )
    assert uploaded.status_code == 200, uploaded.text
    package = uploaded.json()["agent_package"]
    assert package["uploaded"] is True and package["sha256"] == digest and package["size"] == len(MSI)
    not_msi = server.post(
        "/agent_package/upload",
        Role.MAINTAINER,
        content=b"MZ not an msi",
        params={"product_code": PRODUCT, "version": "2.0.0"},
    )
    assert not_msi.status_code == 422 and "MSI" in not_msi.json()["error"]["message"]
