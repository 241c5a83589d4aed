# Deskside agent installer for Windows, served by your help desk's console
# (deskside-console token create --install-line prints the line that runs it).
#
#   & agent.ps1 'ENROLLMENT-STRING' [-User]
#
# It makes a virtual environment of its own for the agent, installs into it the
# agent's wheel fetched from the console (the version the console runs; the
# connection is checked against the certificate fingerprint pinned in the
# enrollment string), then runs 'deskside-agent install'. Run again, it upgrades
# in place. Needs Python 3.11 or newer (the 'py' launcher or python.exe on PATH).
# Not run on Windows by Deskside's own tests: see the README.
param(
    [Parameter(Mandatory = $true)][string]$Enrollment,
    [switch]$User
)
$ErrorActionPreference = 'Stop'

$Version = '@VERSION@'
$Wheel = "deskside-$Version-py3-none-any.whl"

function Fail([string]$Message) {
    Write-Error "deskside: $Message"
    exit 1
}

$Python = $env:DESKSIDE_PYTHON
if (-not $Python) {
    if (Get-Command py -ErrorAction SilentlyContinue) { $Python = 'py'; $PyArgs = @('-3') }
    elseif (Get-Command python -ErrorAction SilentlyContinue) { $Python = 'python'; $PyArgs = @() }
    else { Fail 'Python 3.11 or newer is needed (https://www.python.org/downloads/windows/)' }
} else { $PyArgs = @() }
& $Python @PyArgs -c 'import sys; sys.exit(sys.version_info < (3, 11))'
if ($LASTEXITCODE -ne 0) { Fail "$Python is older than 3.11" }

if ($env:DESKSIDE_AGENT_HOME) { $AgentHome = $env:DESKSIDE_AGENT_HOME }
elseif ($User) { $AgentHome = Join-Path $env:LOCALAPPDATA 'deskside-agent' }
else {
    $admin = ([Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
        ).IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)
    if (-not $admin) { Fail 'installing the service needs an elevated (administrator) prompt, or -User' }
    $AgentHome = Join-Path $env:ProgramFiles 'Deskside Agent'
}
$Venv = Join-Path $AgentHome 'venv'
$Work = Join-Path ([IO.Path]::GetTempPath()) ("deskside-" + [Guid]::NewGuid())
New-Item -ItemType Directory -Force -Path $Work, $AgentHome | Out-Null
try {
    # 1. The wheel, from the console whose certificate the enrollment string pins.
    $Fetch = Join-Path $Work 'fetch.py'
    Set-Content -Path $Fetch -Encoding UTF8 -Value @'
@FETCH_PY@
'@
    & $Python @PyArgs $Fetch $Enrollment $Wheel $Work
    if ($LASTEXITCODE -ne 0) { Fail 'could not fetch the agent from the console' }

    # 2. An environment of the agent's own; the wheel over whatever was there (forced:
    # pip keeps an installed copy of the same version), then the dependencies of its
    # agent extra (none of the console's), from the package index.
    $VenvPython = Join-Path $Venv 'Scripts\python.exe'
    if (-not (Test-Path $VenvPython)) { & $Python @PyArgs -m venv $Venv }
    $WheelPath = Join-Path $Work $Wheel
    & $VenvPython -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps $WheelPath
    if ($LASTEXITCODE -ne 0) { Fail 'pip could not install the agent' }
    $WheelUrl = ([Uri]$WheelPath).AbsoluteUri  # file:///C:/..., spaces escaped
    & $VenvPython -m pip install --quiet --disable-pip-version-check "deskside[agent] @ $WheelUrl"
    if ($LASTEXITCODE -ne 0) { Fail "pip could not install the agent's dependencies" }

    # 3. Enroll (or keep the identity, on an upgrade) and register the service.
    $Scope = if ($User) { '--user' } else { '--system' }
    & (Join-Path $Venv 'Scripts\deskside-agent.exe') install $Enrollment $Scope
    exit $LASTEXITCODE
} finally {
    Remove-Item -Recurse -Force -Path $Work -ErrorAction SilentlyContinue
}
