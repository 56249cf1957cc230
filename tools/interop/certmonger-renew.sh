#!/bin/bash
# certmonger 0.79.17 (getcert) enrolls once, then renews that certificate with
# `getcert resubmit`, against URL, with NO system D-Bus and NO system state: a
# private session bus and certmonger's store in DIR (as ../shared/peers/
# certmonger-enroll.sh, whose notes apply; no OpenSSL legacy shim: our CA
# answers with AES).
#
# usage: certmonger-renew.sh DIR URL CA_PEM SUBJECT CHALLENGE [DNSNAME]
#   results: DIR/cert-1.pem (enrolled), DIR/cert.pem (renewed), DIR/key.pem,
#   log DIR/certmonger.log.  Exit 0 when both certificates were issued.
#   Every process it starts is gone when it returns.
set -euo pipefail
die() { echo "certmonger-renew.sh: $*" >&2; exit 1; }
[ $# -ge 5 ] || die "usage: $0 DIR URL CA_PEM SUBJECT CHALLENGE [DNSNAME]"
mkdir -p "$1"; dir=$(cd "$1" && pwd)
ca=$(cd "$(dirname "$3")" && pwd)/$(basename "$3")
for b in certmonger getcert dbus-run-session dbus-send; do
    command -v $b >/dev/null || die "missing $b"
done
rm -rf "$dir/state" "$dir/home" "$dir/empty"
mkdir -p "$dir/state/cas" "$dir/state/requests" "$dir/state/local" "$dir/state/tmp" \
         "$dir/home" "$dir/empty"
export HOME=$dir/home
export XDG_DATA_DIRS=$dir/empty          # no D-Bus service activation of a 2nd certmonger
export CERTMONGER_CAS_DIR=$dir/state/cas CERTMONGER_REQUESTS_DIR=$dir/state/requests
export CERTMONGER_LOCAL_CA_DIR=$dir/state/local CERTMONGER_TMPDIR=$dir/state/tmp
export CERTMONGER_SYSTEM_LOCK_FILE=$dir/state/lock CERTMONGER_CONFIG_DIR=$dir/state
export CM_DIR=$dir CM_URL=$2 CM_CA=$ca CM_SUBJECT=$4 CM_CHALLENGE=$5 CM_DNS=${6:-}

timeout "${CM_TIMEOUT:-120}" dbus-run-session -- bash -c '
    set -u
    certmonger -s -n -d 3 -p "$CM_DIR/certmonger.pid" >"$CM_DIR/certmonger.log" 2>&1 &
    cm=$!
    trap "kill $cm 2>/dev/null; wait $cm 2>/dev/null" EXIT
    for _ in $(seq 100); do
        dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
            org.freedesktop.DBus.NameHasOwner string:org.fedorahosted.certmonger 2>/dev/null \
            | grep -q true && break
        sleep 0.1
    done
    getcert add-scep-ca -s -c OURSCEP -u "$CM_URL" -N "$CM_CA" || exit 1
    for _ in $(seq 50); do getcert list-cas -s -c OURSCEP | grep -q "SHA1" && break; sleep 0.2; done
    args=(-s -c OURSCEP -k "$CM_DIR/key.pem" -f "$CM_DIR/cert.pem" -N "$CM_SUBJECT" -w -v
          -L "$CM_CHALLENGE")
    [ -n "$CM_DNS" ] && args+=(-D "$CM_DNS")
    getcert request "${args[@]}" || exit $?
    cp "$CM_DIR/cert.pem" "$CM_DIR/cert-1.pem"
    getcert resubmit -s -f "$CM_DIR/cert.pem" -w -v; rc=$?
    getcert list -s | grep -E "status:|stuck:|issuer:|subject:|expires:|ca-error:" \
        | sed "s/^\t*/  /"
    exit $rc
' 2> >(grep -v "Failed to set fd limit" >&2)
