# Shared by scripts/demo and scripts/test (sourced, not run): Debian packages and the venv.

# Install the given Debian packages when running as root; otherwise say what to install.
apt_install() {
    [ "$#" -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "fmon: installing Debian packages: $*" >&2
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
    else
        echo "fmon: missing Debian packages: $*" >&2
        echo "fmon: install them with: sudo apt-get install -y $*" >&2
    fi
}

# Create .venv with the locked dependencies (uv.lock) if needed; fast when up to date.
setup_venv() {
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        apt_install python3-venv
    fi
    [ -x .venv/bin/python ] || python3 -m venv .venv
    if [ ! -x .venv/bin/uv ]; then
        # A venv made by uv itself has no pip.
        .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip -q
        .venv/bin/python -m pip install -q uv
    fi
    .venv/bin/uv sync --frozen -q "$@"
}
