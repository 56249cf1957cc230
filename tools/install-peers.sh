#!/bin/sh
# Debian packages the integration tests and the interop matrix (tools/interop) talk to, all
# started on loopback by the tests (the same names as ../shared/peers/install.sh):
#   scep (micromdm scepserver/scepclient), slapd + ldap-utils (OpenLDAP), socat + iproute2 +
#   util-linux (the loopback-only wrapper for scepserver), openssl, curl,
#   strongswan-pki + libstrongswan-standard-plugins + libstrongswan-extra-plugins (pki --scep,
#   --scepca; the curl fetcher is in the extra plugins), certmonger + dbus (getcert on a private
#   session bus: dbus-run-session), graphviz (`dot`, for `trustledger diagrams`), chromium
#   (a real headless browser renders `trustledger audit report`'s page in its test),
#   postgresql (binaries only: initdb and postgres under /usr/lib/postgresql/VERSION/bin; the
#   tests run their own throwaway cluster, tests/support/postgres.py).
# No system daemon is configured or started: slapd is preseeded with no_configuration; the
# install runs under a policy-rc.d that answers 101 ("action forbidden") to every start the
# packages' scripts ask for (a container's own policy-rc.d is left as it is); PostgreSQL's
# package is told not to create its system cluster (createcluster.d), and its service is then
# disabled, so nothing starts at boot either.
set -eu
need=""
for bin in scepserver scepclient slapd ldapsearch socat unshare openssl curl \
           pki certmonger getcert dbus-run-session dbus-send dot chromium; do
    command -v "$bin" >/dev/null 2>&1 || need=yes
done
ls /usr/lib/postgresql/*/bin/initdb /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need=yes
[ -z "$need" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo && { command -v sudo >/dev/null 2>&1 || {
    echo "% tools/install-peers.sh: installing Debian packages needs root, and sudo is not installed; run it as root" >&2; exit 1; }; }
echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
# A PostgreSQL the machine already had (an operator's own service) is left exactly as it is.
had_pg=""
dpkg-query -W -f='${Status}' postgresql-common 2>/dev/null | grep -q "ok installed" && had_pg=yes
[ -z "$had_pg" ] && $SUDO mkdir -p /etc/postgresql-common/createcluster.d
[ -z "$had_pg" ] && echo "create_main_cluster = false" | \
    $SUDO tee /etc/postgresql-common/createcluster.d/trustledger-no-main.conf >/dev/null
if [ ! -e /usr/sbin/policy-rc.d ]; then
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\n# tools/install-peers.sh: no service starts during the install\nexit 101\n' | \
        $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    scep slapd ldap-utils socat iproute2 util-linux openssl curl ca-certificates procps \
    strongswan-pki libstrongswan-standard-plugins libstrongswan-extra-plugins \
    certmonger dbus graphviz chromium postgresql >/dev/null
# Ours is not started at boot either (systemctl works offline: it only removes the links).
if [ -z "$had_pg" ] && command -v systemctl >/dev/null 2>&1; then
    $SUDO systemctl disable --quiet postgresql.service >/dev/null 2>&1 || true
fi
if [ -z "$had_pg" ] && command -v update-rc.d >/dev/null 2>&1; then
    $SUDO update-rc.d postgresql disable >/dev/null 2>&1 || true
fi
