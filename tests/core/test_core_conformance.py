"""The operator's conformance pass: what the shell prints against the reference
(../shared/reference/ca-interoperability.md) and, where the reference is silent, against what
IOS XR prints. Each test is one finding of that pass."""

from __future__ import annotations

from engine import Engine
from engine.grammar import GRAMMAR, Mode
from engine.keys import KeyAlgorithm
from engine.parser import choices


def _run(e: Engine, *lines: str) -> None:
    for line in lines:
        res = e.execute(line)
        assert res.error is None, (line, res.output)


def _help(mode: Mode, text: str) -> dict[str, str]:
    return {c.word: c.help for c in choices(GRAMMAR, mode, text)}


def test_a_keyword_choice_is_described_by_what_it_chooses() -> None:
    """`crypto key generate rsa ?` tells general-keys from usage-keys (it said "Generate RSA
    keys" for both: the command's help, not the choice's)."""
    gen = _help(Mode.EXEC, "crypto key generate rsa ")
    assert gen["general-keys"] == "Generate a general purpose RSA key pair"
    assert gen["usage-keys"] == "Generate separate signature and encryption RSA key pairs"
    imp = _help(Mode.EXEC, "crypto key import authentication rsa ")
    assert imp["general-keys"].startswith("Import a general purpose")
    assert imp["usage-keys"].startswith("Import separate")
    digests = _help(Mode.TRUSTP, "message-digest ")
    assert digests["sha256"] == "SHA-256" and len(set(digests.values())) == len(digests)


def test_a_no_form_describes_its_optional_value() -> None:
    assert _help(Mode.TRUSTP, "no enrollment retry period ")["LINE"] != ""


def test_an_empty_submode_is_closed_by_a_bang_as_ios_xr_shows_it() -> None:
    e = Engine.in_memory()
    _run(e, "configure", "crypto ca trustpoint empty", "exit", "crypto ca trustpool policy")
    assert e.execute("show configuration").output == (
        "Building configuration...\ncrypto ca trustpoint empty\n!\n"
        "crypto ca trustpool policy\n!\nend\n")
    _run(e, "commit", "end")
    running = e.execute("show running-config").output.splitlines()
    at = running.index("crypto ca trustpoint empty")
    assert running[at:at + 4] == ["crypto ca trustpoint empty", "!",
                                  "crypto ca trustpool policy", "!"]
    assert running[-1] == "end" and running[-2] == "!"
    assert e.execute("show running-config crypto ca trustpoint empty").output == (
        "crypto ca trustpoint empty\n!\n")
    assert e.execute("show configuration commit changes last 1").output.endswith(
        "crypto ca trustpoint empty\n!\ncrypto ca trustpool policy\n!\nend\n")


def test_show_configuration_lists_changes_in_running_config_order() -> None:
    """Typed in any order, the target configuration reads like `show running-config`: the
    reference's example types `retry count` before `retry period`, and running-config puts
    period first; `show configuration` and a commit's changes now do too."""
    e = Engine.in_memory()
    _run(e, "configure", "crypto ca trustpoint myca", "enrollment retry count 25",
         "enrollment retry period 2", "exit", "hostname myrouter")
    target = e.execute("show configuration").output
    assert target == ("Building configuration...\nhostname myrouter\n"
                      "crypto ca trustpoint myca\n enrollment retry period 2\n"
                      " enrollment retry count 25\n!\nend\n")
    _run(e, "commit", "end")
    body = e.execute("show running-config").output.split("!\n", 1)[1]
    assert target.split("\n", 1)[1] == body
    changes = e.execute("show configuration commit changes last 1").output
    assert changes.split("\n", 2)[2] == target.split("\n", 1)[1]


def test_do_question_mark_lists_the_exec_commands() -> None:
    """`do ?` in a configuration mode lists what `do` can run (it showed `LINE`), as
    `do show ?` already listed what follows `show`."""
    e = Engine.in_memory()
    _run(e, "configure", "crypto ca trustpoint t")
    listing = e.help("do ")
    words = [line.split()[0] for line in listing.splitlines()]
    assert {"show", "crypto", "clock", "rollback"} <= set(words) and "LINE" not in words
    assert "hostname" not in words  # exec's commands, not the configuration's
    assert e.help("do").splitlines()[0].split()[0] == "do"  # a partial word still completes


def test_do_lists_and_runs_only_what_it_runs_usefully() -> None:
    """`do ?` listed `exit` and `configure`: `do exit` did nothing at all and `do configure`
    is refused. Neither is listed now, and `do exit` says why it does not run."""
    e = Engine.in_memory()
    _run(e, "configure")
    words = [line.split()[0] for line in e.help("do ").splitlines()]
    assert "exit" not in words and "configure" not in words and "show" in words
    assert e.help("do ex") == "% Unrecognized command"
    r = e.execute("do exit")
    assert not r.ok and r.output == ("% 'exit' is not run with 'do': type 'exit' or 'end' to "
                                     "leave configuration mode.\n")
    assert e.session.mode is Mode.CONFIG
    assert e.execute("do show running-config hostname").ok  # `do show ...` as before
    assert "running-config" in e.help("do show ")


def test_an_ambiguous_word_is_called_ambiguous_by_help_and_by_show_running() -> None:
    """In `(config)`, `d` is `do` or `domain`: `d name ?` and `d ?` said `% Unrecognized
    command` (`d name ?` was read as `do name ?`) while `d name example.org` said ambiguous;
    `sh run cry ca trustp` (trustpoint or trustpool) said `% No such configuration item(s)`."""
    e = Engine.in_memory()
    _run(e, "configure")
    assert e.help("d name ") == '% Ambiguous command: "d name "'
    assert e.help("d ") == '% Ambiguous command: "d "'
    assert e.execute("d name example.org").output == ('% Ambiguous command: "d name '
                                                      'example.org"\n')
    assert [ln.split()[0] for ln in e.help("d").splitlines()] == ["do", "domain"]
    assert "name" in e.help("dom ")
    assert e.help("nosuch ") == "% Unrecognized command"  # not ambiguous: unknown
    _run(e, "end")
    r = e.execute("sh run cry ca trustp")
    assert not r.ok and r.output == '% Ambiguous command: "sh run cry ca trustp"\n'


def test_rsakeypair_names_only_a_key_crypto_key_generate_can_make() -> None:
    """`rsakeypair bad/label` was accepted, though `crypto key generate rsa bad/label` is
    refused: the trustpoint could never get its key. Refused now, caret under the label."""
    e = Engine.in_memory()
    _run(e, "configure", "crypto ca trustpoint t")
    res = e.execute("rsakeypair bad/label")
    assert res.error is not None and res.error.caret == len("rsakeypair ")
    assert "crypto key generate rsa" in res.output
    _run(e, "rsakeypair good_1.x-y")
    assert e.execute("show configuration").output == (
        "Building configuration...\ncrypto ca trustpoint t\n rsakeypair good_1.x-y\n!\nend\n")


def test_an_older_rsakeypair_line_still_replays() -> None:
    """The label rule screens what is typed; a configuration line that holds an older label
    still parses (replay reads it)."""
    from engine.parser import parse

    m = parse(GRAMMAR, Mode.TRUSTP, "rsakeypair bad/label")
    assert m is not None and m.args == {"label": "bad/label"}


def test_usage_keys_as_the_reference_spells_it() -> None:
    """The reference writes `crypto key generate rsa [usage keys | general-keys]`: typed so,
    it made usage keys labelled "keys". Both spellings now choose usage keys; `usage` alone
    is still the abbreviation of `usage-keys`, `?` and Tab offer only `usage-keys`."""
    from engine.parser import complete_word, parse

    def args(line: str) -> dict[str, str]:
        m = parse(GRAMMAR, Mode.EXEC, line)
        assert m is not None
        return dict(m.args)

    assert args("crypto key generate rsa usage keys") == {"usage": "usage-keys"}
    assert args("crypto key generate rsa usage keys vpn") == {"usage": "usage-keys",
                                                              "label": "vpn"}
    assert args("crypto key generate rsa usage vpn") == {"usage": "usage-keys", "label": "vpn"}
    assert args("crypto key generate rsa usage") == {"usage": "usage-keys"}
    assert args("crypto key generate rsa usage k") == {"usage": "usage-keys", "label": "k"}
    assert args("crypto key generate rsa usage-keys keys") == {"usage": "usage-keys",
                                                               "label": "keys"}
    assert args("crypto key import authentication rsa usage keys peer") == {
        "usage": "usage-keys", "label": "peer"}
    words = [c.word for c in choices(GRAMMAR, Mode.EXEC, "crypto key generate rsa ")]
    assert "usage" not in words and "keys" not in words and "usage-keys" in words
    assert complete_word(GRAMMAR, Mode.EXEC, "crypto key generate rsa us") == "usage-keys "


def test_usage_keys_typed_as_two_words_generates_two_pairs_under_the_default_label() -> None:
    e = Engine.in_memory()
    res = e.execute("crypto key generate rsa usage keys", answers=["2048", "2048"])
    assert res.ok, res.output
    assert "The name for the keys will be:the_default" in res.output
    assert "for your Signature Keypair" in res.output
    assert not e.state.keys.pairs_of(KeyAlgorithm.RSA, "keys")
    assert len(e.state.keys.pairs_of(KeyAlgorithm.RSA, "the_default")) == 2


def test_show_running_config_takes_a_section_abbreviated() -> None:
    """`show run cry ca trustpoi myca` names the section as `show run crypto ca trustpoint
    myca` does (it said "% No such configuration item(s)"); an ambiguous word is ambiguous,
    and `do`, an exec escape, is no section."""
    e = Engine.in_memory()
    _run(e, "configure", "hostname r1", "domain name ex.com", "crypto ca trustpoint myca",
         "enrollment terminal", "commit", "end")
    full = e.execute("show running-config crypto ca trustpoint myca").output
    assert full == "crypto ca trustpoint myca\n enrollment terminal\n!\n"
    assert e.execute("show run cry ca trustpoi myca").output == full
    assert e.execute("sh run host").output == "hostname r1\n"
    assert e.execute("show run do").output == "domain name ex.com\n"
    assert e.execute("show run cry ca trust").output == '% Ambiguous command: "show run cry ca ' \
                                                        'trust"\n'


def test_every_paste_prompt_ends_with_the_same_end_marker_line() -> None:
    """`crypto ca authenticate` and `crypto ca import` say IOS's `End with a blank line or the
    word "quit" on a line by itself`; `crypto key import authentication rsa` said "; end with
    a blank line or 'quit':" on its first line. One line now, the same, for expect scripts."""
    from engine.commands.paste import PASTE_CERT
    from engine.commands.trustpoint import PASTE_CA

    marker = 'End with a blank line or the word "quit" on a line by itself\n'
    assert PASTE_CA.endswith(marker) and PASTE_CERT.endswith(marker)
    e = Engine.in_memory()
    out = e.execute("crypto key import authentication rsa peer", answers=["quit"]).output
    assert out.splitlines()[1] + "\n" == marker
    assert out.splitlines()[0].startswith("Enter the public key")


def test_a_range_s_help_says_its_default() -> None:
    """`enrollment retry period ?` said `Minutes (default 1)`; the count and the CRL
    curl-timeout did not say theirs (10 and 5)."""
    assert _help(Mode.TRUSTP, "enrollment retry period ")["<1-60>"] == "Minutes (default 1)"
    assert _help(Mode.TRUSTP, "enrollment retry count ")["<1-100>"].endswith("(default 10)")
    assert _help(Mode.CONFIG, "crypto ca crl curl-timeout ")["<5-50>"].endswith("(default 5)")


def test_help_right_after_part_of_an_argument_names_the_argument() -> None:
    """`hostname ab?`, a URL up to its own `?` (an LDAP URL's attribute part): `?` named no
    argument and said `% Unrecognized command` for a line that was right so far; IOS lists the
    argument. A number is still typed in digits only."""
    e = Engine.in_memory()
    assert e.help("crypto ca crl request ldap://127.0.0.1:389/cn=Root%20CA,dc=example,dc=com") \
        == "  LINE  http:// or ldap:// url of the CRL"
    assert e.help("crypto ca trustpool import url c").splitlines() == [
        "  clean  Remove the downloaded certificates",
        "  WORD   http://, https:// or file: url of the bundle"]
    _run(e, "configure")
    assert e.help("hostname ab").split()[0] == "WORD"
    _run(e, "crypto ca trustpoint tp")
    assert e.help("enrollment retry period 7").split()[0] == "<1-60>"
    assert e.help("enrollment retry period x") == "% Unrecognized command"
    assert e.help("enrollment url http://ca.example/cgi-bin/pkiclient.exe").split()[0] == "WORD"
    e = Engine.in_memory()  # a month is typed by its name: a digit may be a day, not a month
    assert e.help("clock set 12:00:00 1") == "  <1-31>  Day of the month"
    assert e.help("clock set 12:00:00 ju") == "  MONTH  Month of the year"
    assert e.help("clock set 12:00:00 x") == "% Unrecognized command"


def test_help_after_whole_words_of_a_rest_of_line_argument_lists_it_and_the_end() -> None:
    """`show running-config crypto ?` (a section of several words): `?` said `% Unrecognized
    command` after the section's first word, though the line was right and runs; it lists
    the argument (more words may follow), <cr> and the output modifiers, as after
    `show running-config ?`."""
    e = Engine.in_memory()
    want = e.help("show running-config ")
    assert want.splitlines()[0].split()[0] == "LINE" and "<cr>" in want
    for typed in ("show running-config crypto ", "show running-config crypto ca trustpoint ",
                  "show running-config hostname "):
        assert e.help(typed) == want, typed
    assert e.help("show running-config crypto ca tr").split()[0] == "LINE"  # no <cr> yet


def test_a_crl_request_for_a_hostless_ldap_url_says_why_at_the_caret() -> None:
    """README: a hostless `ldap:///DN` is read from a trustpoint's query url server, and
    `crypto ca crl request` has none. Typed, it was a bare `% Invalid input detected at '^'
    marker.`; now the caret line says why. Nothing is fetched or recorded."""
    e = Engine.in_memory()
    head = e.store.head[0]
    res = e.execute("crypto ca crl request ldap:///cn=Root%20CA,dc=example,dc=com")
    assert res.error is not None and res.events == []
    assert res.output.splitlines()[-2:] == [
        " " * len("RP/0/RP0/CPU0:ios#crypto ca crl request ") + "^",
        "% 'crypto ca crl request' has no trustpoint whose query url could name the LDAP "
        "server: give it in the url (ldap://host[:port]/DN)."]
    assert e.store.head[0] == head


def test_help_after_part_of_a_name_lists_the_names_and_the_argument() -> None:
    """`crypto ca trustpoint ne?` (the reference's first step names a new trustpoint) and
    `crypto key generate rsa newk?` said `% Unrecognized command`: a partial name listed only
    the names that exist. The names that match come first, then the argument, as IOS lists it."""
    e = Engine.in_memory()
    _run(e, "configure", "crypto ca trustpoint ex", "commit", "end")
    assert e.help("crypto ca authenticate e").splitlines() == [
        "  ex    Trustpoint name", "  WORD  Trustpoint name"]
    assert e.help("crypto ca authenticate ne") == "  WORD  Trustpoint name"
    assert e.help("crypto key generate rsa newk") == "  WORD  RSA key pair label"
    _run(e, "configure")
    assert e.help("crypto ca trustpoint ne") == "  WORD  Trustpoint name"
    assert e.complete("crypto ca trustpoint e") == "ex "  # Tab still completes a name
