# Shared by scripts/run.sh and scripts/test.sh: install what is missing, nothing more.
# shellcheck shell=bash

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# need_debs PKG...: install the Debian packages that are not installed yet.
need_debs() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}"
        as_root apt-get update -q
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# ensure_browser_libs: the web console's browser libraries (htmx, ...), from the npm
# registry as package-lock.json pins them, copied where the console serves them from
# and the wheel packs them (console/web/vendor, not in git). Node.js and npm come from
# Debian only where there is no npm at all (another one, e.g. NodeSource's, is kept).
ensure_browser_libs() {
    command -v npm >/dev/null || need_debs nodejs npm
    npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
    mkdir -p console/web/vendor
    cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx-ext-sse/dist/sse.min.js \
        console/web/vendor/
}

# ensure_venv [EXTRAS]: .venv with the project installed editable, with those extras
# (comma-separated: agent, console, test; see pyproject.toml).
ensure_venv() {
    local target=.
    [ -n "${1:-}" ] && target=".[$1]"
    if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
        need_debs python3-venv
    fi
    [ -x .venv/bin/python ] || python3 -m venv .venv
    case ",${1:-}," in *,console,*) ensure_browser_libs ;; esac  # before the wheel packs them
    # strict editable mode installs a tree of links (build/__editable__*), which mypy can
    # follow; it is made anew on each run, so new modules are picked up.
    if ! { .venv/bin/python -m pip install -q --upgrade pip &&
        .venv/bin/python -m pip install -q --config-settings editable_mode=strict \
            -e "$target"; } >.venv/install.log 2>&1; then
        cat .venv/install.log >&2
        echo "installing the project into .venv failed (log above)" >&2
        return 1
    fi
}
