"""Inventory over OMA-DM: what DevInfo (package 1) and winmdm's DevDetail Get report."""

from __future__ import annotations

# What DevInfo (package 1) and winmdm's DevDetail Get report, by LocURI.
INVENTORY_URIS = {
    "./DevInfo/Man": "manufacturer",
    "./DevInfo/Mod": "model",
    "./DevInfo/Lang": "language",
    "./DevInfo/DmV": "dm_version",
    "./DevDetail/SwV": "os_version",
    "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber": "serial",
    "./DevDetail/Ext/Microsoft/DeviceName": "device_name",
}
INVENTORY_GETS = (
    "./DevDetail/SwV",
    "./DevDetail/Ext/Microsoft/SMBIOSSerialNumber",
    "./DevDetail/Ext/Microsoft/DeviceName",
    "./DevInfo/Man",
    "./DevInfo/Mod",
)


def inventory_item(uri: str | None, value: str | None, into: dict[str, str]) -> None:
    if uri is None or value is None:
        return
    name = INVENTORY_URIS.get(uri.replace("./Device/", "./", 1) if uri.startswith("./Device/") else uri)
    if name and value.strip():
        into[name] = value.strip()
