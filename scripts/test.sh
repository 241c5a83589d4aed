#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs the linters,
# the type checker and the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# Real components the tests start themselves: PostgreSQL (tests/postgres.py), Redis
# (tests/redisserver.py), an X
# server and xdotool for the consent dialogs (Tk: python3-tk for Debian's Python);
# chromium, whose WebCodecs decodes the screen's H.264 and which Playwright drives;
# systemd: systemd-analyze verify and, in a systemd-nspawn container (systemd-container),
# the agent installed as a real system service (tests/installer).
need_debs postgresql redis-server xvfb xdotool python3-tk chromium systemd systemd-container
ensure_venv agent,console,test

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/pytest "$@"
