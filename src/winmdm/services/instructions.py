"""What an end user does to turn on MDM, in one place for the API, the CLI and the end-user page.

The steps follow Windows 10/11 Settings > Accounts > Access work or school (protocol.md §5-7): with
Entra the user picks "Connect" and signs in with their work account; without it, "Enroll only in
device management", the email, and the server address when Windows cannot discover it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from winmdm.services.deep_link import DeepLinks
from winmdm.services.endpoints import Endpoints


@dataclass(frozen=True, slots=True)
class Instructions:
    server_address: str  # what to type when Windows asks for the server
    discovery_url: str
    deep_link: str  # opens Settings' enrollment with the server filled in
    entra: bool  # the organisation connected winmdm to Entra
    steps: tuple[str, ...]


def enrollment_instructions(
    endpoints: Endpoints, deep_links: DeepLinks, *, entra: bool, now: datetime
) -> Instructions:
    server = endpoints.discovery
    if entra:
        steps = (
            "On the Windows PC, open Settings > Accounts > Access work or school.",
            'Select "Connect" and enter your work email address.',
            "Sign in with your work account and accept the terms of use.",
            'When Windows says "You\'re all set", the PC is managed; close Settings.',
        )
    else:
        steps = (
            "On the Windows PC, open Settings > Accounts > Access work or school.",
            'Select "Enroll only in device management" (or use the button on this page).',
            "Enter your work email address.",
            f"If Windows asks for a server address, enter {server}",
            "Sign in with your company account when the sign-in page opens.",
            'When Windows says "You\'re all set", the PC is managed; close Settings.',
        )
    return Instructions(
        server_address=server,
        discovery_url=server,
        deep_link=deep_links.link(None, preauthorize=False, now=now),
        entra=entra,
        steps=steps,
    )
