"""The `winmdm` command. Errors are one line on stderr with a meaningful exit code."""

from __future__ import annotations

import io
import logging
import os
import sys
from pathlib import Path

import click
from rich.console import Console

from winmdm import __version__
from winmdm.cli import admin as admin_commands
from winmdm.cli import commands as host_commands
from winmdm.cli import enrollment, gitops, hosts, login, policies, profiles, queries, server_config, teams
from winmdm.cli.exits import EXIT_CONFIG, EXIT_FAILURE, EXIT_INVALID
from winmdm.config import SETTINGS, load_config
from winmdm.errors import WinMDMError


@click.group()
@click.version_option(__version__, prog_name="winmdm")
def cli() -> None:
    """winmdm: a Windows device-management (MDM) server."""


@cli.command()
@click.option("--config", "config_file", type=click.Path(path_type=Path), help="TOML settings file.")
def serve(config_file: Path | None) -> None:
    """Run the server (settings: WINMDM_* variables or --config; see docs/configuration.md)."""
    from winmdm.log_format import configure as configure_logging
    from winmdm.runtime import build
    from winmdm.web.server import serve as run_server

    try:
        config = load_config(os.environ, config_file)
        configure_logging(config.log_level, config.log_format)
        runtime = build(config)
    except WinMDMError as exc:
        click.echo(f"winmdm: {exc.message}", err=True)
        sys.exit(EXIT_CONFIG)
    if config.log_format == "json":
        # Every line of stderr a JSON object: the welcome is one log record.
        text = io.StringIO()
        _welcome(runtime, Console(file=text, soft_wrap=True, markup=False, highlight=False))
        logging.getLogger("winmdm").info(text.getvalue().rstrip())
    else:
        _welcome(runtime)
    try:
        run_server(runtime)
    except WinMDMError as exc:  # the metrics listener's address is taken
        click.echo(f"winmdm: {exc.message}", err=True)
        sys.exit(EXIT_CONFIG)


@cli.command("settings")
def list_settings() -> None:
    """List every setting, its environment variable and default."""
    console = Console(soft_wrap=True, highlight=False)
    for s in SETTINGS:
        console.print(f"[bold]{s.env}[/bold] ({s.key}) default {s.default}\n    {s.help}")


def _welcome(runtime, console: Console | None = None) -> None:
    cfg, ep = runtime.config, runtime.endpoints
    # No wrapping (a wrapped path or certutil command cannot be pasted) and no markup (paths may
    # hold brackets); this goes to logs as much as to terminals.
    console = console or Console(stderr=True, soft_wrap=True, markup=False, highlight=False)
    first = "first start: created" if runtime.ca_created else "reusing"
    console.print(f"winmdm {__version__}", style="bold", end="")
    console.print(f" ({first} {cfg.data_dir})")
    console.print(f"  database      {_safe_url(cfg.database_url)} (schema {runtime.schema_revision})")
    _license_lines(console, runtime.settings.license())
    if not runtime.accounts.list_admins():
        console.print(
            "  admins        none yet: make the first with  winmdm admin create --email EMAIL  "
            "(same settings as this server)"
        )
    console.print(f"  device CA     {runtime.ca_path}")
    console.print(f"  listening on  https://{cfg.listen_host}:{cfg.listen_port}")
    console.print(f"  metrics       {_metrics_line(cfg)}")
    console.print(f"  discovery URL {ep.discovery}")
    base = cfg.server_url.rstrip("/")
    console.print(f"  admin UI      {base}/   (REST API {base}/api/v1, end users {base}/enroll)")
    if runtime.tls.dev_ca is not None:
        console.print(
            f"  TLS           development certificate for {cfg.server_host}. Windows must trust its "
            f"root before it can enroll:\n                certutil -addstore Root {runtime.tls.dev_ca}\n"
            "                (or set WINMDM_TLS_CERT and WINMDM_TLS_KEY to a publicly trusted certificate)"
        )
    if not cfg.entra_tenant_ids:
        console.print(
            "  Entra         not configured: set WINMDM_ENTRA_TENANT_IDS (and WINMDM_ENTRA_AUDIENCES) "
            "and register winmdm's discovery URL as the MDM application's discovery URL in Entra"
        )
    else:
        console.print(f"  Entra         tenants {', '.join(cfg.entra_tenant_ids)}")
        console.print(f"  terms of use  {ep.terms_of_use} (the MDM terms of use URL to register in Entra)")
    console.print(
        "Next: on a Windows PC, Settings > Accounts > Access work or school > Connect, "
        f"or enter {ep.discovery} as the server address."
    )


def _metrics_line(cfg) -> str:
    """Where Prometheus scrapes, and whether it needs the token (never the token itself)."""
    if cfg.metrics_listen is not None:
        host, port = cfg.metrics_listen
        where = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
    else:
        where = f"{cfg.server_url.rstrip('/')}/metrics"
    if cfg.metrics_token:
        return f"{where} (bearer token: WINMDM_METRICS_TOKEN)"
    return f"{where} (no token: set WINMDM_METRICS_TOKEN if this address is public)"


def _license_lines(console: Console, license) -> None:
    if license.premium:
        who = f" for {license.organization}" if license.organization else ""
        until = f", until {license.expires_at:%Y-%m-%d}" if license.expires_at else ""
        console.print(f"  license       Premium{who}{until}")
    else:
        console.print("  license       Free")
    if license.warning:
        console.print(f"  warning       {license.warning}")


def _safe_url(url: str) -> str:
    """The database URL without its password (and no invented one when it has none)."""
    import sqlalchemy as sa

    if url.startswith("sqlite:"):
        return url  # a file path: no credentials, and an "@" in it is not one
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url.rsplit("@", 1)[-1]


# The API commands (docs/cli.md): they talk to a running server as a signed-in admin.
for _module in (
    login,
    hosts,
    host_commands,
    queries,
    teams,
    profiles,
    policies,
    server_config,
    enrollment,
    gitops,
):
    for _command in _module.COMMANDS:
        cli.add_command(_command)
# On the server's database: they work before anyone can sign in.
for _command in admin_commands.COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Click's own usage errors become one line too, with the invalid-input exit code."""
    try:
        code = cli.main(prog_name="winmdm", standalone_mode=False)
    except click.UsageError as exc:  # unknown option, missing --out, bad choice
        where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        click.echo(f"winmdm: {' '.join(exc.format_message().split())}{where}", err=True)
        sys.exit(EXIT_INVALID)
    except click.ClickException as exc:
        click.echo(f"winmdm: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("winmdm: interrupted", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
