#!/bin/sh
# Deskside agent installer for Linux and macOS, served by your help desk's console
# (deskside-console token create --install-line prints the line that runs it).
#
#   sh agent.sh 'ENROLLMENT-STRING' [--system | --user] [other 'deskside-agent install' options]
#
# It makes a virtual environment of its own for the agent, installs into it the
# agent's wheel fetched from the console (the version the console runs; the
# connection is checked against the certificate fingerprint pinned in the
# enrollment string), then runs 'deskside-agent install'. Run again, it upgrades
# in place. DESKSIDE_PYTHON picks the Python (3.11 or newer; default python3),
# DESKSIDE_AGENT_HOME where the environment goes.
set -eu

VERSION='@VERSION@'
WHEEL="deskside-${VERSION}-py3-none-any.whl"

die() {
    echo "deskside: $*" >&2
    exit 1
}

# Everything runs from main, called on the last line: a download cut short (curl |
# sh) defines nothing and runs nothing.
main() {
    [ $# -ge 1 ] || die "usage: sh agent.sh 'ENROLLMENT-STRING' [--system | --user]"
    ENROLLMENT=$1
    shift
    SCOPE=system
    for arg in "$@"; do
        case $arg in
        --user) SCOPE=user ;;
        --system) SCOPE=system ;;
        esac
    done

    PYTHON=${DESKSIDE_PYTHON:-python3}
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON is not installed; Python 3.11 or newer is needed"
    "$PYTHON" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null ||
        die "$PYTHON is older than 3.11 or has no venv module (Debian: apt install python3-venv)"

    if [ -n "${DESKSIDE_AGENT_HOME:-}" ]; then
        AGENT_HOME=$DESKSIDE_AGENT_HOME
    elif [ "$SCOPE" = system ]; then
        [ "$(id -u)" = 0 ] || die "installing for the whole machine needs root: use sudo, or --user"
        case $(uname -s) in
        Darwin) AGENT_HOME="/Library/Application Support/deskside-agent" ;;
        *) AGENT_HOME=/opt/deskside-agent ;;
        esac
    else
        case $(uname -s) in
        Darwin) AGENT_HOME="$HOME/Library/Application Support/deskside-agent" ;;
        *) AGENT_HOME="${XDG_DATA_HOME:-$HOME/.local/share}/deskside-agent" ;;
        esac
    fi
    VENV="$AGENT_HOME/venv"

    WORK=$(mktemp -d)
    trap 'rm -rf "$WORK"' EXIT INT TERM

    # 1. The wheel, from the console whose certificate the enrollment string pins.
    "$PYTHON" - "$ENROLLMENT" "$WHEEL" "$WORK" <<'DESKSIDE_FETCH_PY'
@FETCH_PY@
DESKSIDE_FETCH_PY

    # 2. An environment of the agent's own; the wheel over whatever was there (forced:
    # pip keeps an installed copy of the same version), then the dependencies of its
    # agent extra (none of the console's), from the package index.
    mkdir -p "$AGENT_HOME"
    [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --force-reinstall --no-deps "$WORK/$WHEEL"
    WHEEL_URL=$("$VENV/bin/python" -c \
        'import pathlib, sys; print(pathlib.Path(sys.argv[1]).absolute().as_uri())' "$WORK/$WHEEL")
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "deskside[agent] @ $WHEEL_URL"

    # The command on the PATH, for 'deskside-agent help' (not for a custom DESKSIDE_AGENT_HOME).
    if [ -z "${DESKSIDE_AGENT_HOME:-}" ]; then
        if [ "$SCOPE" = system ]; then BIN=/usr/local/bin; else BIN="$HOME/.local/bin"; fi
        mkdir -p "$BIN" && ln -sfn "$VENV/bin/deskside-agent" "$BIN/deskside-agent" ||
            echo "deskside: could not link $BIN/deskside-agent; the agent is $VENV/bin/deskside-agent" >&2
    fi

    # 3. Enroll (or keep the identity, on an upgrade) and register the service.
    exec "$VENV/bin/deskside-agent" install "$ENROLLMENT" "$@"
}

main "$@"
