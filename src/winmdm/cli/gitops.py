"""`winmdm gitops apply` and `winmdm gitops generate` (docs/gitops.md).

The files are read here into a spec (profiles carry their SyncML) and sent to the server, which
checks and applies it with the API's own services and answers the plan. An error the server names
by spec path is shown at the file, line and key it came from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from winmdm.cli.api_client import APIClient, APIError, with_api
from winmdm.cli.output import json_option, note, print_json, table
from winmdm.cli.progress import working
from winmdm.services.gitops_files import SourceMap, load_files, write_files


@click.group("gitops")
def gitops() -> None:
    """Keep the server's settings, teams, profiles and agent package in YAML files."""


@gitops.command("apply")
@click.option(
    "-f",
    "--file",
    "files",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="default.yml or a team file; repeat it. Files after the options are taken too (teams/*.yml).",
)
@click.argument("more", metavar="[FILE]...", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@json_option
@with_api
def apply(
    files: tuple[Path, ...], more: tuple[Path, ...], dry_run: bool, as_json: bool, api: APIClient
) -> None:
    """Make the server match the files; print what changed (or would, with --dry-run)."""
    paths = [*files, *more]
    if not paths:
        raise click.UsageError("give the files: -f default.yml -f teams/*.yml")
    with working(f"Reading {len(paths)} file{'s' if len(paths) != 1 else ''}"):
        loaded = load_files(paths)
    try:
        # The server checks and applies the whole spec in one request (profiles, teams, MSI).
        with working("Planning (dry run)" if dry_run else "Applying"):
            answer = api.post("/spec", {"spec": loaded.spec, "dry_run": dry_run})
    except APIError as exc:
        raise _located(exc, loaded.sources) from None
    if as_json:
        print_json(answer)
        return
    plan = answer.get("plan", [])
    if loaded.default_file is None:
        note(
            "No default file (one without name:): only these teams change; settings, No team and "
            "other teams are left as they are."
        )
    if not plan:
        click.echo("Nothing to change: the server already matches the files.")
        return
    table(
        None,
        ("ACTION", "KIND", "NAME", "DETAIL"),
        [(c["action"], c["kind"], c["name"], c["detail"]) for c in plan],
    )
    count = f"{len(plan)} change{'s' if len(plan) != 1 else ''}"
    if answer.get("applied"):
        click.echo(f"Applied {count}.")
    else:
        click.echo(f"Dry run: {count}, nothing applied.")


def _located(error: APIError, sources: SourceMap) -> APIError:
    """The server's message at the file, line and key its spec path came from."""
    if not error.field:
        return error
    message = sources.explain(error.message, error.field)
    return APIError(message, error.exit_code, code=error.code, field=None)


@gitops.command("generate")
@click.option(
    "--dir",
    "directory",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder to write.",
)
@click.option("--force", is_flag=True, help="Replace default.yml, teams/*.yml and lib/*.xml already there.")
@json_option
@with_api
def generate(directory: Path, force: bool, as_json: bool, api: APIClient) -> None:
    """Write the server's state as default.yml, teams/<team>.yml and lib/<profile>.xml."""
    spec: dict[str, Any] = api.get("/spec")["spec"]
    premium = str(api.get("/config")["license"].get("tier", "")).lower() == "premium"
    existing = _generated(directory)
    if existing and not force:
        raise click.UsageError(
            f"{directory} already holds GitOps files ({existing[0].name}, ...); give --force to replace "
            "them, or another --dir"
        )
    for path in existing:
        path.unlink()
    written = write_files(spec, directory, premium=premium)
    if as_json:
        print_json({"files": [str(p) for p in written], "premium": premium})
        return
    for path in written:
        click.echo(str(path))
    if not premium:
        note(
            "Free server: the Premium controls (windows_migration_enabled, "
            "enable_turn_on_windows_mdm_manually) are left out."
        )
    teams = " -f teams/*.yml" if spec.get("teams") else ""
    note(f"Apply them with: cd {directory} && winmdm gitops apply -f default.yml{teams}")


def _generated(directory: Path) -> list[Path]:
    """What a previous generate wrote (a stale team file would bring its team back on apply)."""
    found = [directory / "default.yml"] if (directory / "default.yml").exists() else []
    found += sorted((directory / "teams").glob("*.yml")) + sorted((directory / "lib").glob("*.xml"))
    return found


COMMANDS = (gitops,)
