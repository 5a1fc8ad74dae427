"""docs/solutions/windows/winmdm-migration-nudge.ps1, checked by structure and copy.

PowerShell cannot be installed from the registries these machines reach (Debian's archive has no
`powershell`; npm's `pwsh` downloads it from GitHub at install time; PyPI's `pwsh` drives an
installed Windows powershell.exe), so the script is not parsed by PowerShell's own parser here.
Instead the tree-sitter PowerShell grammar parses it (powershell_source.py), and the checks read
its code: well formed, Windows PowerShell 5.1 compatible, the story's copy, the schedule, the
principals, the self-removal, and the same detection rule as migration-policy.sql.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .powershell_source import SourceError, block_after, check, code_of, node_types

FOLDER = Path(__file__).resolve().parents[2] / "docs" / "solutions" / "windows"
SCRIPT = FOLDER / "winmdm-migration-nudge.ps1"
POLICY = FOLDER / "migration-policy.sql"

TITLE = "Migrate to winmdm"
LINES = [
    'Close this window, go to Settings and search "Access work or school"',
    "Select Connect and enter your work email and password.",
    "This Migrate to winmdm window will popup every 5 minutes until you finish.",
]
BOLD = [[], ["Connect"], ["winmdm"]]


@pytest.fixture(scope="module")
def source() -> str:
    return SCRIPT.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def code(source: str) -> str:
    """The code alone: strings as '' and comments as a space."""
    return code_of(source)


def assignment(source: str, name: str) -> str:
    """The single-quoted string or number assigned to $name (once in the whole script)."""
    found = re.findall(rf"^ *\${name} = ('(?:[^']|'')*'|\d+)", source, re.MULTILINE)
    assert len(found) == 1, f"${name} is assigned {len(found)} times"
    value = found[0]
    return value[1:-1].replace("''", "'") if value.startswith("'") else value


def statement(source: str, start: str) -> str:
    """The statement beginning with `start`, backtick line continuations joined."""
    position = source.index(start)
    lines = []
    for line in source[position:].splitlines():
        lines.append(line.rstrip().removesuffix("`").strip())
        if not line.rstrip().endswith("`"):
            break
    return " ".join(lines)


def function_body(source: str, name: str) -> str:
    return block_after(source, f"function {name} ")


# --- well formed, for Windows PowerShell 5.1 ---------------------------------------------------------


def test_the_grammar_parses_the_whole_script(source: str) -> None:
    check(source)
    kinds = node_types(source)
    for kind in ("function_statement", "switch_statement", "try_statement", "string_literal", "comment"):
        assert kind in kinds, kind


@pytest.mark.parametrize(
    "broken",
    [
        "if ($a) { Write-Output 'x' ",
        "Write-Output 'it''s never closed",
        'Write-Output "a `" quote',
        "$x = @(1, 2]",
        "<# a comment that never ends",
        "Write-Output '{' }",
        "function Show-It { param([string]$a) ",
        "switch ($Mode) { 'Show' { 1 } 'Cleanup' }",
    ],
)
def test_the_checks_catch_broken_source(broken: str) -> None:
    with pytest.raises(SourceError):
        check(broken)


def test_brackets_inside_strings_and_comments_do_not_count() -> None:
    source = "Write-Output '(' \"{\" # ]\n<# ) #> $a = @{ b = '}' }\n"
    check(source)
    assert code_of(source) == "Write-Output '' ''  \n  $a = @{ b = '' }\n"


def test_ascii_only(source: str) -> None:
    # Windows PowerShell 5.1 reads a file without a BOM in the ANSI code page.
    assert source.isascii()


def test_no_powershell_7_only_syntax(source: str, code: str) -> None:
    assert source.startswith("#Requires -Version 5.1\n")
    for operator in ("&&", "||", "??", "?.", "-Parallel", "clean {"):
        assert operator not in code, operator


def test_modes(source: str, code: str) -> None:
    assert "[ValidateSet('Install', 'Show', 'Cleanup', 'Uninstall')]" in source
    assert re.search(r"\[string\]\$Mode = 'Install'", source)
    switch = block_after(source, "switch ($Mode)")
    branches = re.findall(r"^    '(\w+)' \{", switch, re.MULTILINE)
    assert sorted(branches) == ["Cleanup", "Install", "Show", "Uninstall"]
    assert "Set-StrictMode -Version 2.0" in code
    assert "$ErrorActionPreference = ''" in code  # 'Stop', as a string


# --- the window ---------------------------------------------------------------------------------------


def test_title(source: str) -> None:
    assert assignment(source, "WindowTitle") == TITLE
    assert "$form.Text = $WindowTitle" in function_body(source, "Show-MigrationWindow")


def test_copy_and_bold_runs(source: str) -> None:
    block = re.search(r"^\$MessageLines = @\((.*?)^\)", source, re.MULTILINE | re.DOTALL)
    assert block is not None
    marked = [s.replace("''", "'") for s in re.findall(r"'((?:[^']|'')*)'", block.group(1))]
    assert [line.replace("**", "") for line in marked] == LINES
    assert [line.split("**")[1::2] for line in marked] == BOLD
    assert '"Access work or school"' in marked[0]


def test_bold_runs_are_rendered_bold(source: str) -> None:
    body = function_body(source, "Show-MigrationWindow")
    assert "$parts = $MessageLines[$i] -split '\\*\\*'" in body
    assert re.search(
        r"if \(\$j % 2 -eq 1\) \{ \$message\.SelectionFont = \$bold \}\s+"
        r"else \{ \$message\.SelectionFont = \$regular \}\s+"
        r"\$message\.SelectedText = \$parts\[\$j\]",
        body,
    )
    assert "New-Object System.Drawing.Font -ArgumentList $regular, ([System.Drawing.FontStyle]::Bold)" in body
    assert "New-Object System.Windows.Forms.RichTextBox" in body
    # Written through the selection first, read-only after.
    assert body.index("$message.SelectedText = $parts[$j]") < body.index("$message.ReadOnly = $true")
    assert "[void]$form.ShowDialog()" in body


def test_window_shows_only_while_mdm_is_off(source: str) -> None:
    show = block_after(source, "'Show' {")
    assert show.strip() == "if (-not (Test-WinmdmMdmOn)) { Show-MigrationWindow }"


# --- the schedule and who runs it ---------------------------------------------------------------------


def triggers(install: str, name: str) -> list[str]:
    block = re.search(rf"\${name} = @\((.*?)\n    \)", install, re.DOTALL)
    assert block is not None, name
    return [line.strip().rstrip(",") for line in block.group(1).strip().splitlines()]


def test_every_5_minutes_indefinitely(source: str) -> None:
    install = function_body(source, "Install-Nudge")
    assert "$every5Minutes = New-TimeSpan -Minutes 5" in install
    repeat = "(New-ScheduledTaskTrigger -Once -At $firstRun -RepetitionInterval $every5Minutes)"
    assert triggers(install, "windowTriggers") == ["(New-ScheduledTaskTrigger -AtLogOn)", repeat]
    assert triggers(install, "cleanupTriggers") == ["(New-ScheduledTaskTrigger -AtStartup)", repeat]
    assert "-RepetitionDuration" not in source  # none: the pattern repeats indefinitely
    settings = statement(install, "$settings = New-ScheduledTaskSettingsSet")
    for option in ("-MultipleInstances IgnoreNew", "-AllowStartIfOnBatteries", "-DontStopIfGoingOnBatteries"):
        assert option in settings


def test_window_task_runs_in_the_signed_in_users_session(source: str) -> None:
    install = function_body(source, "Install-Nudge")
    assert assignment(source, "UsersGroupSid") == "S-1-5-32-545"
    principal = statement(install, "$windowPrincipal = ")
    assert (
        principal == "$windowPrincipal = New-ScheduledTaskPrincipal -GroupId $UsersGroupSid -RunLevel Limited"
    )
    register = statement(install, "Register-ScheduledTask -TaskName $WindowTaskName")
    assert "-Principal $windowPrincipal" in register
    assert "-Action $windowAction" in register and "-Trigger $windowTriggers" in register
    assert "$windowArguments = $arguments -f $InstalledScript, 'Show'" in install
    arguments = assignment(source, "arguments")
    assert arguments.endswith('-WindowStyle Hidden -ExecutionPolicy Bypass -File "{0}" -Mode {1}')


def test_cleanup_task_runs_as_system(source: str) -> None:
    install = function_body(source, "Install-Nudge")
    assert assignment(source, "SystemSid") == "S-1-5-18"
    principal = statement(install, "$cleanupPrincipal = ")
    assert "-UserId $SystemSid -LogonType ServiceAccount" in principal
    register = statement(install, "Register-ScheduledTask -TaskName $CleanupTaskName")
    assert "-Principal $cleanupPrincipal" in register
    assert "$cleanupArguments = $arguments -f $InstalledScript, 'Cleanup'" in install


def test_installs_only_as_admin_and_locks_the_folder(source: str) -> None:
    install = function_body(source, "Install-Nudge")
    assert "IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)" in install
    assert "& icacls.exe $InstallDir /inheritance:r /grant:r $grants" in install
    assert '"*${UsersGroupSid}:(OI)(CI)RX"' in install
    assert "Copy-Item -LiteralPath $PSCommandPath -Destination $InstalledScript -Force" in install


# --- removing itself once MDM is on -------------------------------------------------------------------


def test_cleanup_removes_everything_once_mdm_is_on(source: str) -> None:
    cleanup = block_after(source, "'Cleanup' {")
    assert cleanup.strip() == "if (Test-WinmdmMdmOn) { Remove-Nudge }"
    remove = function_body(source, "Remove-Nudge")
    steps = [
        "Stop-ScheduledTask -TaskName $WindowTaskName",
        "Unregister-ScheduledTask -TaskName $WindowTaskName -Confirm:$false",
        "Remove-Item -LiteralPath $InstallDir -Recurse -Force",
        "Unregister-ScheduledTask -TaskName $CleanupTaskName -Confirm:$false",  # itself, last
    ]
    positions = [remove.index(step) for step in steps]
    assert positions == sorted(positions)
    assert "Stop-ScheduledTask -TaskName $CleanupTaskName" not in remove  # it would stop itself


def test_install_on_an_enrolled_pc_removes_instead(source: str) -> None:
    install = block_after(source, "'Install' {")
    assert re.match(r"\s*if \(Test-WinmdmMdmOn\) \{\s*Remove-Nudge\b", install)
    assert "Install-Nudge" in install.split("else", 1)[1]


def test_files_and_tasks_named_once(source: str) -> None:
    assert assignment(source, "WindowTaskName") == "winmdm migration window"
    assert assignment(source, "CleanupTaskName") == "winmdm migration cleanup"
    assert "$InstallDir = Join-Path $env:ProgramData 'winmdm-migration'" in source
    assert "$InstalledScript = Join-Path $InstallDir 'winmdm-migration-nudge.ps1'" in source


# --- the same rule as the policy ----------------------------------------------------------------------


def test_same_detection_as_the_policy(source: str) -> None:
    policy = POLICY.read_text(encoding="utf-8")
    (key_pattern,) = re.findall(r"WHERE key LIKE '([^']*)'", policy)
    (provider,) = re.findall(r"name = 'ProviderID' AND data = '([^']*)'", policy)
    (state,) = re.findall(r"name = 'EnrollmentState' AND data = '([^']*)'", policy)

    assert "HKEY_LOCAL_MACHINE\\" + assignment(source, "EnrollmentsKey") + "\\%" == key_pattern
    assert assignment(source, "ProviderId") == provider
    assert assignment(source, "EnrolledState") == state

    detect = function_body(source, "Test-WinmdmMdmOn")
    assert (
        "[Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64" in detect
    )
    assert "$enrollments = $hklm.OpenSubKey($EnrollmentsKey)" in detect
    assert "foreach ($name in $enrollments.GetSubKeyNames())" in detect  # direct subkeys, like '%'
    assert "$provider = $enrollment.GetValue('ProviderID')" in detect
    assert "$state = $enrollment.GetValue('EnrollmentState')" in detect
    # Both values of the same key, the provider compared case-sensitively like SQL's '='.
    assert "($provider -ceq $ProviderId)" in detect
    assert "($state -eq $EnrolledState)" in detect
    assert detect.index("OpenSubKey($name)") < detect.index("GetValue('ProviderID')")
