"""Identity providers: Entra access-token verification (protocol.md decision 3, §6).

The only auth network I/O of winmdm lives here (design.md §3).
"""

from winmdm.idp.entra import MICROSOFT_JWKS_URL, EntraIdentity, EntraVerifier
from winmdm.idp.jwks import JWKSCache

__all__ = ["MICROSOFT_JWKS_URL", "EntraIdentity", "EntraVerifier", "JWKSCache"]
