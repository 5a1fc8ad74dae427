#Requires -Version 5.1
<#
.SYNOPSIS
    Asks the user of a Windows PC to turn on MDM with winmdm, every 5 minutes, until it is on.

.DESCRIPTION
    Run it once on each PC, as SYSTEM or as an administrator, with the tool you are migrating
    from (README.md in this folder says how). -Mode Install, the default:
      * copies this script to C:\ProgramData\winmdm-migration (only SYSTEM and administrators
        may change it there);
      * registers the task "winmdm migration window". It runs in the session of each signed-in
        member of the local Users group, at sign-in and every 5 minutes, and shows the
        "Migrate to winmdm" window while MDM is off;
      * registers the task "winmdm migration cleanup". It runs as SYSTEM at startup and every
        5 minutes; once MDM is on it removes both tasks and the folder. (A user's own task
        could not: the tasks and files belong to SYSTEM.)
    MDM is on when HKLM\SOFTWARE\Microsoft\Enrollments holds a key with ProviderID "winmdm"
    and EnrollmentState 1: the rule of migration-policy.sql.

.PARAMETER Mode
    Install (default), Show (what the window task runs), Cleanup (what the SYSTEM task runs),
    or Uninstall (remove the tasks and files now, MDM on or not).

.EXAMPLE
    powershell.exe -NoProfile -ExecutionPolicy Bypass -File .\winmdm-migration-nudge.ps1
#>
[CmdletBinding()]
param(
    [ValidateSet('Install', 'Show', 'Cleanup', 'Uninstall')]
    [string]$Mode = 'Install'
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

# --- What "MDM is on" means (keep in step with migration-policy.sql) ---------------------------
# winmdm provisions the DMClient provider "winmdm"; Windows records it as the enrollment's ProviderID.
$ProviderId = 'winmdm'
$EnrolledState = 1
$EnrollmentsKey = 'SOFTWARE\Microsoft\Enrollments'

# --- Where the nudge lives ------------------------------------------------------------------------
$InstallDir = Join-Path $env:ProgramData 'winmdm-migration'
$InstalledScript = Join-Path $InstallDir 'winmdm-migration-nudge.ps1'
$WindowTaskName = 'winmdm migration window'
$CleanupTaskName = 'winmdm migration cleanup'
$UsersGroupSid = 'S-1-5-32-545'    # BUILTIN\Users, by SID so any display language works
$AdminsGroupSid = 'S-1-5-32-544'   # BUILTIN\Administrators
$SystemSid = 'S-1-5-18'            # NT AUTHORITY\SYSTEM

# --- The window's copy: one string per line, **text** is bold -----------------------------------
$WindowTitle = 'Migrate to winmdm'
$MessageLines = @(
    'Close this window, go to Settings and search "Access work or school"',
    'Select **Connect** and enter your work email and password.',
    'This Migrate to **winmdm** window will popup every 5 minutes until you finish.'
)

function Test-WinmdmMdmOn {
    # True when an Enrollments\<id> key has ProviderID winmdm and EnrollmentState 1. Reads the
    # 64-bit registry view even from a 32-bit host. Unreadable means "not known to be on".
    try {
        $hklm = [Microsoft.Win32.RegistryKey]::OpenBaseKey(
            [Microsoft.Win32.RegistryHive]::LocalMachine, [Microsoft.Win32.RegistryView]::Registry64)
        try {
            $enrollments = $hklm.OpenSubKey($EnrollmentsKey)
            if ($null -eq $enrollments) { return $false }
            try {
                foreach ($name in $enrollments.GetSubKeyNames()) {
                    $enrollment = $enrollments.OpenSubKey($name)
                    if ($null -eq $enrollment) { continue }
                    try {
                        $provider = $enrollment.GetValue('ProviderID')
                        $state = $enrollment.GetValue('EnrollmentState')
                        if (($provider -is [string]) -and ($provider -ceq $ProviderId) -and
                            ($state -is [int]) -and ($state -eq $EnrolledState)) {
                            return $true
                        }
                    }
                    finally { $enrollment.Close() }
                }
            }
            finally { $enrollments.Close() }
        }
        finally { $hklm.Close() }
    }
    catch {
        return $false
    }
    return $false
}

function Show-MigrationWindow {
    # A native WinForms dialog; a RichTextBox carries the bold runs.
    Add-Type -AssemblyName System.Windows.Forms
    Add-Type -AssemblyName System.Drawing
    [System.Windows.Forms.Application]::EnableVisualStyles()

    $regular = New-Object System.Drawing.Font -ArgumentList 'Segoe UI', 11
    $bold = New-Object System.Drawing.Font -ArgumentList $regular, ([System.Drawing.FontStyle]::Bold)

    $form = New-Object System.Windows.Forms.Form
    $form.Text = $WindowTitle
    $form.Font = $regular
    $form.StartPosition = [System.Windows.Forms.FormStartPosition]::CenterScreen
    $form.FormBorderStyle = [System.Windows.Forms.FormBorderStyle]::FixedDialog
    $form.MaximizeBox = $false
    $form.MinimizeBox = $false
    $form.TopMost = $true
    $form.ShowInTaskbar = $true
    $form.AutoScaleMode = [System.Windows.Forms.AutoScaleMode]::Dpi
    $form.ClientSize = New-Object System.Drawing.Size -ArgumentList 640, 210
    $form.Padding = New-Object System.Windows.Forms.Padding -ArgumentList 16

    $message = New-Object System.Windows.Forms.RichTextBox
    $message.Dock = [System.Windows.Forms.DockStyle]::Fill
    $message.BorderStyle = [System.Windows.Forms.BorderStyle]::None
    $message.BackColor = $form.BackColor
    $message.ScrollBars = [System.Windows.Forms.RichTextBoxScrollBars]::None
    $message.TabStop = $false
    $message.Font = $regular

    # Each line run by run: splitting on ** leaves the bold parts at the odd indexes.
    for ($i = 0; $i -lt $MessageLines.Count; $i++) {
        $parts = $MessageLines[$i] -split '\*\*'
        for ($j = 0; $j -lt $parts.Count; $j++) {
            $message.SelectionStart = $message.TextLength
            $message.SelectionLength = 0
            if ($j % 2 -eq 1) { $message.SelectionFont = $bold }
            else { $message.SelectionFont = $regular }
            $message.SelectedText = $parts[$j]
        }
        if ($i -lt $MessageLines.Count - 1) {
            $message.SelectionFont = $regular
            $message.SelectedText = [Environment]::NewLine + [Environment]::NewLine
        }
    }
    $message.ReadOnly = $true    # only now: the text above is written through the selection
    $message.Select(0, 0)

    $close = New-Object System.Windows.Forms.Button
    $close.Text = 'Close'
    $close.AutoSize = $true
    $close.DialogResult = [System.Windows.Forms.DialogResult]::OK

    $buttons = New-Object System.Windows.Forms.FlowLayoutPanel
    $buttons.Dock = [System.Windows.Forms.DockStyle]::Bottom
    $buttons.FlowDirection = [System.Windows.Forms.FlowDirection]::RightToLeft
    $buttons.AutoSize = $true
    $buttons.Controls.Add($close)

    # Fill first, then Bottom: WinForms docks the last added control first.
    $form.Controls.Add($message)
    $form.Controls.Add($buttons)
    $form.AcceptButton = $close
    $form.CancelButton = $close
    $form.ActiveControl = $close
    $form.Add_Shown({ $form.Activate() })

    [void]$form.ShowDialog()
    $form.Dispose()
    $bold.Dispose()
    $regular.Dispose()
}

function Install-Nudge {
    $identity = [Security.Principal.WindowsIdentity]::GetCurrent()
    $principal = New-Object Security.Principal.WindowsPrincipal -ArgumentList $identity
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        throw 'Run -Mode Install as SYSTEM or as an administrator: it registers tasks for every user.'
    }
    if (-not $PSCommandPath) {
        throw 'Run this script as a file (powershell.exe -File ...): it copies itself.'
    }

    # Only SYSTEM and administrators may change the folder; users may read and run it.
    New-Item -ItemType Directory -Path $InstallDir -Force | Out-Null
    $grants = @("*${SystemSid}:(OI)(CI)F", "*${AdminsGroupSid}:(OI)(CI)F", "*${UsersGroupSid}:(OI)(CI)RX")
    & icacls.exe $InstallDir /inheritance:r /grant:r $grants | Out-Null
    if ($LASTEXITCODE -ne 0) {
        throw "icacls could not set the permissions of $InstallDir (exit $LASTEXITCODE)."
    }
    if ($PSCommandPath -ne $InstalledScript) {
        Copy-Item -LiteralPath $PSCommandPath -Destination $InstalledScript -Force
    }

    $powershell = Join-Path $env:SystemRoot 'System32\WindowsPowerShell\v1.0\powershell.exe'
    $arguments = '-NoProfile -NonInteractive -WindowStyle Hidden -ExecutionPolicy Bypass -File "{0}" -Mode {1}'
    $every5Minutes = New-TimeSpan -Minutes 5
    $firstRun = (Get-Date).AddMinutes(1)
    # No repetition duration: the pattern repeats indefinitely. One window at a time (IgnoreNew).
    $settings = New-ScheduledTaskSettingsSet -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries `
        -StartWhenAvailable -MultipleInstances IgnoreNew -ExecutionTimeLimit (New-TimeSpan -Hours 1)

    # The window: in the session of each signed-in member of Users, never SYSTEM's session 0.
    $windowArguments = $arguments -f $InstalledScript, 'Show'
    $windowAction = New-ScheduledTaskAction -Execute $powershell -Argument $windowArguments
    $windowTriggers = @(
        (New-ScheduledTaskTrigger -AtLogOn),
        (New-ScheduledTaskTrigger -Once -At $firstRun -RepetitionInterval $every5Minutes)
    )
    $windowPrincipal = New-ScheduledTaskPrincipal -GroupId $UsersGroupSid -RunLevel Limited
    Register-ScheduledTask -TaskName $WindowTaskName -Action $windowAction -Trigger $windowTriggers `
        -Principal $windowPrincipal -Settings $settings -Force `
        -Description 'Shows "Migrate to winmdm" every 5 minutes until MDM is on with winmdm.' | Out-Null

    # The cleanup: as SYSTEM, which owns the tasks and the folder.
    $cleanupArguments = $arguments -f $InstalledScript, 'Cleanup'
    $cleanupAction = New-ScheduledTaskAction -Execute $powershell -Argument $cleanupArguments
    $cleanupTriggers = @(
        (New-ScheduledTaskTrigger -AtStartup),
        (New-ScheduledTaskTrigger -Once -At $firstRun -RepetitionInterval $every5Minutes)
    )
    $cleanupPrincipal = New-ScheduledTaskPrincipal -UserId $SystemSid -LogonType ServiceAccount `
        -RunLevel Highest
    Register-ScheduledTask -TaskName $CleanupTaskName -Action $cleanupAction -Trigger $cleanupTriggers `
        -Principal $cleanupPrincipal -Settings $settings -Force `
        -Description 'Removes the winmdm migration window task and its files once MDM is on.' | Out-Null
}

function Remove-Nudge {
    # Stop the window task first (closes a window still open), then delete it.
    if ($null -ne (Get-ScheduledTask -TaskName $WindowTaskName -ErrorAction SilentlyContinue)) {
        Stop-ScheduledTask -TaskName $WindowTaskName -ErrorAction SilentlyContinue
        Unregister-ScheduledTask -TaskName $WindowTaskName -Confirm:$false
    }
    # The files next: this script is already in memory, so its own file may go.
    if (Test-Path -LiteralPath $InstallDir) {
        Remove-Item -LiteralPath $InstallDir -Recurse -Force
    }
    # The cleanup task last: this may be it, and a failure above leaves it to try again.
    if ($null -ne (Get-ScheduledTask -TaskName $CleanupTaskName -ErrorAction SilentlyContinue)) {
        Unregister-ScheduledTask -TaskName $CleanupTaskName -Confirm:$false
    }
}

# --- Main ------------------------------------------------------------------------------------------
if (($Mode -eq 'Install' -or $Mode -eq 'Uninstall') -and
    [Environment]::Is64BitOperatingSystem -and -not [Environment]::Is64BitProcess) {
    # A 32-bit host (some deployment agents use one): run again in the 64-bit Windows PowerShell.
    $native = Join-Path $env:SystemRoot 'Sysnative\WindowsPowerShell\v1.0\powershell.exe'
    & $native -NoProfile -ExecutionPolicy Bypass -File $PSCommandPath -Mode $Mode
    exit $LASTEXITCODE
}

switch ($Mode) {
    'Show' {
        if (-not (Test-WinmdmMdmOn)) { Show-MigrationWindow }
    }
    'Cleanup' {
        if (Test-WinmdmMdmOn) { Remove-Nudge }
    }
    'Uninstall' {
        Remove-Nudge
        Write-Output 'Removed the winmdm migration tasks and files.'
    }
    'Install' {
        if (Test-WinmdmMdmOn) {
            Remove-Nudge
            Write-Output 'MDM is already on with winmdm: nothing to do.'
        }
        else {
            Install-Nudge
            Write-Output "Installed '$WindowTaskName': the window every 5 minutes until MDM is on."
        }
    }
}
