"""LDAP distribution points (engine/revocation/ldap.py): RFC 4516 URLs as CAs write them
(percent-encoded or with raw spaces), and a bare DN resolved against `query url`."""

from __future__ import annotations

import pytest

from engine.revocation.ldap import LdapTarget, LdapUrlError, parse_ldap_url, resolve_dn


@pytest.mark.parametrize(("url", "target"), [
    ("ldap://127.0.0.1:18389/cn=Root%20CA,dc=example,dc=com?certificateRevocationList;binary"
     "?base?objectClass=cRLDistributionPoint",
     LdapTarget("127.0.0.1", 18389, "cn=Root CA,dc=example,dc=com",
                "(objectClass=cRLDistributionPoint)")),
    ("ldap://coax-u10.cisco.com/CN=Root coax-u10 Certificate Manager,O=Cisco Systems",
     LdapTarget("coax-u10.cisco.com", 389, "CN=Root coax-u10 Certificate Manager,O=Cisco Systems")),
    ("LDAP://[::1]:3899/cn=ca?certificateRevocationList",
     LdapTarget("::1", 3899, "cn=ca")),
    ("ldap:///cn=ca,o=x", LdapTarget("localhost", 389, "cn=ca,o=x")),
])
def test_rfc_4516_urls_parse(url: str, target: LdapTarget) -> None:
    assert parse_ldap_url(url) == target


@pytest.mark.parametrize(("url", "why"), [
    ("http://x/cn=a", "not an ldap:// url"),
    ("ldaps://x/cn=a", "not an ldap:// url"),
    ("ldap://x/", "names no entry"),
    ("ldap://x:99999/cn=a", "invalid port"),
    ("ldap://x/cn=a?cACertificate;binary", "not certificateRevocationList"),
    ("ldap://x/cn=a??sub", "a sub search"),
    ("ldap://x/cn=a????!bindname=cn=x", "critical extension"),
])
def test_urls_we_cannot_read_a_crl_from_are_refused(url: str, why: str) -> None:
    with pytest.raises(LdapUrlError, match=why):
        parse_ldap_url(url)


def test_a_bare_dn_is_read_from_the_query_url_server() -> None:
    t = resolve_dn("CN=myca,O=cisco", "ldap://ldap.example.com:3899")
    assert t == LdapTarget("ldap.example.com", 3899, "CN=myca,O=cisco")
    assert t.uri == "ldap://ldap.example.com:3899/CN=myca,O=cisco"
    spaced = LdapTarget("h", 389, "cn=Root CA?,o=x")
    assert spaced.uri == "ldap://h/cn=Root%20CA%3F,o=x"
    assert parse_ldap_url(spaced.uri).dn == spaced.dn
    with pytest.raises(LdapUrlError, match="has no query url"):
        resolve_dn("CN=myca,O=cisco", None)
