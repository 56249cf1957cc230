# Sourced by tools/run.sh and tools/test.sh (POSIX sh): make sure a Python environment with
# trustledger installed (editable, extras dev and bench) exists, and put it first on PATH.
#
# Which Python: an activated virtual environment ($VIRTUAL_ENV) or a venv's python3 first on
# PATH is used as it is; otherwise .venv/ in the checkout, created with Debian's /usr/bin/python3
# (never another python3 that happens to be first on PATH: pip refuses the system one, PEP 668,
# and a pyenv one is not what a stock Debian 12 has). Debian packages that are missing
# (python3, python3-venv) are installed with apt-get: directly as root, through sudo otherwise.
# The pip install is skipped when the environment already holds this checkout installed from
# the same pyproject.toml (a stamp file in the environment records its SHA-256).

TL_ROOT=$(cd "$(dirname "$0")/.." && pwd)
TL_EXTRAS="dev,bench"

tl_apt_install() {
    # apt-get install the Debian packages "$@": as root directly, else through sudo.
    if [ "$(id -u)" -eq 0 ]; then
        tl_sudo=""
    elif command -v sudo >/dev/null 2>&1; then
        tl_sudo=sudo
    else
        echo "% Installing the Debian packages $* needs root, and sudo is not installed." >&2
        echo "% Run as root: apt-get install -y $*  (then run this command again)" >&2
        exit 1
    fi
    echo "Installing Debian packages: $*" >&2
    $tl_sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $tl_sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "$@" >/dev/null
}

tl_venv_on_path() {
    # The directory of a virtual environment whose python3 is first on PATH, if any.
    command -v python3 >/dev/null 2>&1 || return 1
    python3 -c 'import sys; sys.exit(sys.prefix == sys.base_prefix); ' 2>/dev/null || return 1
    python3 -c 'import sys; print(sys.prefix)'
}

tl_make_venv() {
    if [ ! -x /usr/bin/python3 ]; then
        tl_apt_install python3 python3-venv
    elif ! /usr/bin/python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
        tl_apt_install python3-venv
    fi
    echo "Creating $TL_ROOT/.venv with /usr/bin/python3" >&2
    /usr/bin/python3 -m venv "$TL_ROOT/.venv"
}

if [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    TL_VENV=$VIRTUAL_ENV
elif TL_VENV=$(tl_venv_on_path); then
    :
else
    TL_VENV=$TL_ROOT/.venv
    [ -x "$TL_VENV/bin/python" ] || tl_make_venv
fi
PATH="$TL_VENV/bin:$PATH"
VIRTUAL_ENV=$TL_VENV
export PATH VIRTUAL_ENV

TL_STAMP="$TL_VENV/.trustledger-installed"
TL_WANT="$TL_ROOT [$TL_EXTRAS] $(cd "$TL_ROOT" && "$TL_VENV/bin/python" -c '
import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')"
if [ "$(cat "$TL_STAMP" 2>/dev/null)" != "$TL_WANT" ]; then
    echo "Installing trustledger and its Python dependencies into $TL_VENV" >&2
    (cd "$TL_ROOT" && "$TL_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -e ".[$TL_EXTRAS]")
    printf '%s\n' "$TL_WANT" > "$TL_STAMP"
fi
