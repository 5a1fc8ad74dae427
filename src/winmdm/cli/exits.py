"""The `winmdm` command's exit codes (docs/cli.md "Exit codes"): one per kind of failure, so
scripts can tell a typo from an expired session or a server that is down."""

from __future__ import annotations

from winmdm.errors import (
    AuthenticationFailed,
    AuthorizationFailed,
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    WinMDMError,
)

EXIT_FAILURE = 1  # anything else
EXIT_CONFIG = 2  # bad settings: WINMDM_*, --config, no server to talk to
EXIT_NOT_FOUND = 3  # no such host, team, profile, command
EXIT_INVALID = 4  # a wrong option, value or file; a Premium setting on Free
EXIT_UNAUTHENTICATED = 5  # not logged in, session expired, wrong password, role too low
EXIT_CONFLICT = 6  # a duplicate name; the state forbids it
EXIT_UNREACHABLE = 7  # no answer from the server (down, wrong URL, untrusted TLS certificate)


def exit_code(exc: WinMDMError) -> int:
    for kind, code in (
        (ConfigError, EXIT_CONFIG),
        (NotFound, EXIT_NOT_FOUND),
        (InvalidInput, EXIT_INVALID),
        (AuthenticationFailed, EXIT_UNAUTHENTICATED),
        (AuthorizationFailed, EXIT_UNAUTHENTICATED),
        (Conflict, EXIT_CONFLICT),
    ):
        if isinstance(exc, kind):
            return code
    return EXIT_FAILURE
