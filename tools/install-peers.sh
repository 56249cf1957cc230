#!/bin/sh
# Debian packages the integration tests and the interop matrix (tools/interop) talk to, all
# started on loopback by the tests (the same names as ../shared/peers/install.sh):
#   scep (micromdm scepserver/scepclient), slapd + ldap-utils (OpenLDAP), socat + iproute2 +
#   util-linux (the loopback-only wrapper for scepserver), openssl, curl,
#   strongswan-pki + libstrongswan-standard-plugins + libstrongswan-extra-plugins (pki --scep,
#   --scepca; the curl fetcher is in the extra plugins), certmonger + dbus (getcert on a private
#   session bus: dbus-run-session), graphviz (`dot`, for `trustledger diagrams`), chromium
#   (a real headless browser renders `trustledger audit report`'s page in its test).
# No system daemon is configured or started (slapd is preseeded with no_configuration).
set -eu
need=""
for bin in scepserver scepclient slapd ldapsearch socat unshare openssl curl \
           pki certmonger getcert dbus-run-session dbus-send dot chromium; do
    command -v "$bin" >/dev/null 2>&1 || need=yes
done
[ -z "$need" ] && exit 0
export DEBIAN_FRONTEND=noninteractive
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo && { command -v sudo >/dev/null 2>&1 || {
    echo "% tools/install-peers.sh: installing Debian packages needs root, and sudo is not installed; run it as root" >&2; exit 1; }; }
echo "slapd slapd/no_configuration boolean true" | $SUDO debconf-set-selections
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    scep slapd ldap-utils socat iproute2 util-linux openssl curl ca-certificates procps \
    strongswan-pki libstrongswan-standard-plugins libstrongswan-extra-plugins \
    certmonger dbus graphviz chromium >/dev/null
