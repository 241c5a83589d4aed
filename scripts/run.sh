#!/usr/bin/env bash
# Installs Deskside into .venv on a fresh Debian machine and runs it.
# Today that is the secure-channel demo: a console side and an agent side talking
# over a real, Noise-encrypted WebSocket on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_venv
exec .venv/bin/deskside-console demo "$@"
