#!/usr/bin/env bash
# Installs Deskside into .venv on a fresh Debian machine and runs it: a console on
# SQLite in ./data with a local agent enrolled and running, until Ctrl-C.
# Arguments go to 'deskside-console demo' (e.g. --port 9443).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv agent,console  # both sides: the demo runs a console and an agent
# Without a display, the demo gives its agent a virtual desktop: Xvfb, a Tk window on it.
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    need_debs xvfb python3-tk
fi
exec .venv/bin/deskside-console --data-dir ./data demo "$@"
