"""Whose end-user authentication the Entra terms page follows (design.md §1, "IdP username").

A team may require end-user authentication: the terms page then signs the user in with the OIDC
identity provider before Accept. The page sees no hardware id, only the Entra access token, so
the host is recognised by the token's Entra device id (``deviceid``), which every Entra
enrollment records on its host (services/enrollment.py):

- a known host follows its team's switch (``teams.end_user_auth``); a host in No team, No team's
  (``mdm.end_user_authentication``, services/settings.py);
- an unknown device, or a token without a device id (a PC joining Entra for the first time gets
  its id only after the terms), is a new host, which lands in No team: No team's switch;
- never without an OIDC identity provider (WINMDM_OIDC_*): there is nobody to sign in with.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from winmdm.domain.identity import entra_device_id
from winmdm.storage.protocols import Storage

__all__ = ["end_user_auth_required"]

log = logging.getLogger("winmdm.terms")


def end_user_auth_required(
    device_id: str | None,
    *,
    storage: Storage,
    no_team: Callable[[], bool],
    sign_in_configured: bool,
) -> bool:
    """Whether the terms page must sign the user in with the identity provider for the device
    with this Entra device id (None: the token names none).

    ``no_team``: No team's setting, read when asked (an admin may change it while the server
    runs). ``sign_in_configured``: an OIDC identity provider is set up.
    """
    if not sign_in_configured:
        return False
    wanted = entra_device_id(device_id)
    if wanted is not None:
        with storage.transaction() as tx:
            host = tx.hosts.find_by_entra_device_id(wanted)
            team = None
            if host is not None and host.team_id is not None:
                team = tx.teams.get(host.team_id)
                log.debug("Entra device %s is host %s of team %s", wanted, host.id, host.team_id)
        if team is not None:
            return team.end_user_auth
    return bool(no_team())
