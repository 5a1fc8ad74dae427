"""Seed: "if you upgrade from 4.77 w/ Windows MDM turned on, Fleet sets you to the default:
Automatic". A database made by the previous release (revision 0003, before any setting existed,
Windows MDM serving) is upgraded by `winmdm serve`; the page shows Windows MDM on, Automatic."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.license import LicenseKeys
from tests.ui.conftest import UIServer, close_server, open_server
from winmdm.storage.database import create_engine_for, current_revision, migrate


def test_an_upgraded_server_keeps_windows_mdm_on_with_automatic(
    tmp_path_factory: pytest.TempPathFactory, signed_in
) -> None:
    folder: Path = tmp_path_factory.mktemp("ui-upgrade")
    data = folder / "data"
    data.mkdir()
    engine = create_engine_for(f"sqlite:///{data / 'winmdm.db'}")
    migrate(engine, "0003_identity")
    assert current_revision(engine) == "0003_identity"
    engine.dispose()
    keys = LicenseKeys.create(folder)
    ui: UIServer = open_server(
        data, {"WINMDM_LICENSE_PUBLIC_KEY_FILE": str(keys.public_file), "WINMDM_LICENSE_KEY": keys.key()}
    )
    try:
        page = signed_in(ui)
        page.goto(ui.url + "/settings/mdm/windows")
        expect(page.get_by_role("switch", name="Windows MDM")).to_be_checked()
        expect(page.get_by_role("group", name="End user experience")).to_be_visible()
        expect(page.get_by_label("Automatic", exact=True)).to_be_checked()
        expect(
            page.get_by_label("Automatically migrate hosts connected to another MDM solution")
        ).not_to_be_checked()
    finally:
        close_server(ui)
