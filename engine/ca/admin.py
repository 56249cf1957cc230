"""Acting on a CA that a running `ca serve` holds open.

The serving process holds the CA log's write lock for its lifetime, so `ca approve`, `reject`,
`revoke` and `challenge` from another process cannot append themselves. Instead the server
runs a second HTTP listener on 127.0.0.1 (ephemeral port) and writes `DIR/admin.json`
(mode 0600: its URL and a random bearer token) while it runs; the CLI, finding the log locked,
POSTs the command there and the server performs it as any other command (same decide, same
log, actor "operator"). Whoever can read admin.json can already read DIR/ca.key, so the token
grants nothing new; it keeps other local users' processes out of the loopback port.
`ca list` and `ca requests` need no server: they read the log read-only (no lock).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.client
import json
import os
from collections.abc import Mapping
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from engine.adapters.scep_server import HttpError
from engine.ca.errors import CAError, CAUnavailable
from engine.ca.service import BuiltinCA
from engine.ca.state import IssuedCertificate
from engine.errors import PeerReason, Reason

ADMIN_FILE = "admin.json"
ADMIN_TIMEOUT = 30.0

_STATUS_OF: dict[Reason | PeerReason, HTTPStatus] = {
    Reason.NOT_FOUND: HTTPStatus.NOT_FOUND, Reason.NOT_ALLOWED: HTTPStatus.CONFLICT}
_REASON_OF = {HTTPStatus.NOT_FOUND: Reason.NOT_FOUND, HTTPStatus.CONFLICT: Reason.NOT_ALLOWED,
              HTTPStatus.SERVICE_UNAVAILABLE: Reason.NOT_ALLOWED}


class AdminEndpoint:
    """The server side: one method per CLI command that writes."""

    def __init__(self, ca: BuiltinCA) -> None:
        self.ca = ca

    def admin(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self._perform(action, args)
        except CAUnavailable as e:
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, e.text) from None
        except CAError as e:  # the wire carries the sentence; the CLI's CAError renders it
            raise HttpError(_STATUS_OF.get(e.reason, HTTPStatus.BAD_REQUEST), e.text) from None

    def _perform(self, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
        if action == "approve":
            cert = self.ca.approve(_text(args, "transaction_id"))
            return {"serial": cert.serial if cert else None}
        if action == "reject":
            self.ca.reject(_text(args, "transaction_id"), str(args.get("reason", "")))
            return {}
        if action == "revoke":
            crl = self.ca.revoke(_text(args, "serial"), str(args.get("reason", "unspecified")))
            return {"crl_number": crl.number}
        if action == "challenge":
            minutes = args.get("valid_minutes", 60)
            if not isinstance(minutes, int) or minutes <= 0:
                raise CAError(Reason.INVALID_VALUE, "valid_minutes must be a positive integer")
            return {"password": self.ca.mint_challenge(timedelta(minutes=minutes))}
        if action == "sign":
            days = args.get("days")
            if days is not None and (not isinstance(days, int) or days <= 0):
                raise CAError(Reason.INVALID_VALUE, "days must be a positive integer")
            try:
                csr = base64.b64decode(_text(args, "csr"), validate=True)
            except (binascii.Error, ValueError):
                raise CAError(Reason.BAD_DATA, "csr is not base64") from None
            return issued_summary(self.ca.sign_offline(csr, days=days))
        raise HttpError(HTTPStatus.NOT_FOUND, f"unknown admin action {action[:40]!r}")


def issued_summary(cert: IssuedCertificate) -> dict[str, Any]:
    """What `ca sign` prints about a certificate, as JSON-able values."""
    parsed = x509.load_der_x509_certificate(cert.certificate)
    try:
        parsed.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        cdp = True
    except x509.ExtensionNotFound:
        cdp = False
    return {"serial": cert.serial, "transaction_id": cert.transaction_id,
            "subject": cert.subject_text, "not_after": cert.not_after, "crl_dp": cdp,
            "certificate": parsed.public_bytes(serialization.Encoding.PEM).decode("ascii")}


def _text(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str) or not value:
        raise CAError(Reason.INVALID_VALUE, f"{name} is required")
    return value


def write_admin_file(root: Path, admin_url: str, token: str, scep_url: str) -> Path:
    """Publish the admin endpoint (0600, replaced atomically)."""
    path = root / ADMIN_FILE
    tmp = root / f".{ADMIN_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"admin_url": admin_url, "token": token, "scep_url": scep_url,
                   "pid": os.getpid()}, f)
    os.replace(tmp, path)
    return path


def remove_admin_file(root: Path, token: str) -> None:
    """Remove admin.json if it is still ours (a newer server may have replaced it)."""
    path = root / ADMIN_FILE
    with contextlib.suppress(OSError, ValueError):  # gone already, or not ours to judge
        if json.loads(path.read_text()).get("token") == token:
            path.unlink()


def call(root: Path, action: str, args: Mapping[str, Any]) -> dict[str, Any]:
    """Ask the server running on `root` to perform `action`; CAError on refusal."""
    try:
        info = json.loads((root / ADMIN_FILE).read_text())
        url, token = urlsplit(str(info["admin_url"])), str(info["token"])
    except (OSError, ValueError, KeyError):
        raise CAError(Reason.NOT_ALLOWED, f"the CA in {root} is locked by another process "
                                          "that publishes no admin endpoint") from None
    if url.hostname not in ("127.0.0.1", "::1") or url.port is None:
        raise CAError(Reason.BAD_DATA, f"{root / ADMIN_FILE} names a non-loopback endpoint")
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=ADMIN_TIMEOUT)
    try:
        body = json.dumps(dict(args)).encode()
        conn.request("POST", f"/admin/{action}", body=body,
                     headers={"Authorization": f"Bearer {token}",
                              "Content-Type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
    except OSError as e:
        raise CAError(PeerReason.UNREACHABLE, f"the CA server of {root} does not answer ({e}); is "
                                   "`ca serve` still running?") from None
    finally:
        conn.close()
    try:
        result = json.loads(data)
    except ValueError:
        raise CAError(PeerReason.BAD_ANSWER,
                      f"the CA server answered {resp.status} without JSON") from None
    if resp.status != HTTPStatus.OK:
        status = HTTPStatus(resp.status)
        message = str(result.get("error", status.phrase)) if isinstance(result, dict) else ""
        raise CAError(_REASON_OF.get(status, Reason.INVALID_VALUE), message)
    if not isinstance(result, dict):
        raise CAError(PeerReason.BAD_ANSWER,
                      "the CA server answered with something else than an object")
    return result
