"""The typed trustpoint configuration is folded once, when its commit arrives.

`DeviceState.trustpoint_configs` must always equal what reading the running configuration's
text produces (`parse_trustpoint_config`, the reader every use went through before), after any
sequence of edits, commits, rollbacks and removals, and after a replay of the log. The lines
are the ones the tests configure, including one an older build accepted (an ftp:// URL) and
no-forms.
"""

from __future__ import annotations

from pathlib import Path

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from engine import Engine
from engine.ports import FakeClock
from engine.state import DeviceState
from engine.trustpoints import (
    TrustpointConfig,
    parse_trustpoint_config,
    trustpoint_config,
    trustpoint_names,
)

LINES = [
    "enrollment terminal", "no enrollment terminal", "enrollment url http://10.0.0.9",
    "enrollment url https://ca.example/scep", "enrollment url http://127.0.0.1:9/",
    "no enrollment url", "enrollment retry count 7", "no enrollment retry count",
    "enrollment retry period 2", "no enrollment retry period", "rsakeypair mykey",
    "no rsakeypair", "subject-name CN=r1,OU=NET,O=Example", "subject-name O=Cisco Systems",
    "no subject-name", "ip-address 10.1.1.1", "no ip-address", "serial-number",
    "no serial-number", "crl optional", "no crl optional",
    "query url ldap://10.0.0.2/cn=Root%20CA,o=Example", "no query url",
    "message-digest sha256", "message-digest md5", "no message-digest", "description hello",
    "no description",
]
NAMES = ["myca", "other"]

STEP = st.one_of(
    st.tuples(st.just("edit"), st.sampled_from(NAMES), st.lists(st.sampled_from(LINES),
                                                               min_size=1, max_size=4)),
    st.tuples(st.just("remove"), st.sampled_from(NAMES), st.just([])),
    st.tuples(st.just("rollback"), st.sampled_from(["1", "2"]), st.just([])),
)


def reread(state: DeviceState) -> dict[str, TrustpointConfig | None]:
    return {name: parse_trustpoint_config(state.config, name)
            for name in trustpoint_names(state)}


def folded(state: DeviceState) -> dict[str, TrustpointConfig | None]:
    return {name: trustpoint_config(state, name) for name in trustpoint_names(state)}


def apply(e: Engine, step: tuple[str, str, list[str]]) -> None:
    kind, arg, lines = step
    if kind == "rollback":
        e.execute(f"rollback configuration last {arg}", answers=["yes"])
        return
    e.execute("configure")
    if kind == "remove":
        e.execute(f"no crypto ca trustpoint {arg}")
    else:
        e.execute(f"crypto ca trustpoint {arg}")
        for line in lines:
            e.execute(line)
    e.execute("commit", answers=["yes"])
    e.execute("end", answers=["no"])


@settings(max_examples=80, deadline=None)
@given(steps=st.lists(STEP, min_size=1, max_size=8))
def test_folded_configuration_equals_the_reread_one(steps: list[tuple[str, str, list[str]]]
                                                    ) -> None:
    e = Engine.in_memory()
    for step in steps:
        apply(e, step)
        assert set(e.state.trustpoint_configs) == set(trustpoint_names(e.state))
        assert folded(e.state) == reread(e.state)


@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(STEP, min_size=1, max_size=6))
def test_replay_folds_the_same_configuration(tmp_path_factory: object,
                                              steps: list[tuple[str, str, list[str]]]) -> None:
    root = Path(tmp_path_factory.mktemp("tp"))  # type: ignore[attr-defined]
    e = Engine.open(root, clock=FakeClock(), user="tester")
    for step in steps:
        apply(e, step)
    live = e.state.trustpoint_configs
    e.close()
    again = Engine.open(root, clock=FakeClock(), user="tester")
    try:
        assert again.state.trustpoint_configs == live
        assert folded(again.state) == reread(again.state)
    finally:
        again.close()


def test_an_edit_is_seen_at_once() -> None:
    e = Engine.in_memory()
    apply(e, ("edit", "myca", ["enrollment url http://10.0.0.9", "enrollment retry count 7",
                               "rsakeypair mykey"]))
    cfg = trustpoint_config(e.state, "myca")
    assert cfg == TrustpointConfig("myca", enrollment_url="http://10.0.0.9", retry_count=7,
                                   key_label="mykey")
    assert cfg is not None and cfg.scep_url == "http://10.0.0.9/cgi-bin/pkiclient.exe"
    apply(e, ("remove", "myca", []))
    assert trustpoint_config(e.state, "myca") is None


def test_a_line_an_older_build_accepted_is_ignored_as_before() -> None:
    """An ftp:// URL no longer parses: like the reader before, the fold skips the line."""
    from engine.config import Change
    from events.device import ConfigurationCommitted

    e = Engine.in_memory()
    apply(e, ("edit", "myca", ["description hello"]))
    ev = ConfigurationCommitted(e.state.next_commit_id, "u", "", "", (
        Change(("crypto ca trustpoint myca", "enrollment"), None, "enrollment url ftp://ca/"),), 0)
    from engine.state import evolve
    state = evolve(e.state, ev, 1)
    assert trustpoint_config(state, "myca") == TrustpointConfig("myca", description="hello")
    assert folded(state) == reread(state)


SAMPLES = {  # one line of each trustpoint submode command, and the value it folds to
    "enrollment url http://10.0.0.9": ("enrollment_url", "http://10.0.0.9"),
    "enrollment terminal": ("terminal", True),
    "enrollment retry period 2": ("retry_period", 2),
    "enrollment retry count 7": ("retry_count", 7),
    "query url ldap://10.0.0.2/o=Example": ("query_url", "ldap://10.0.0.2/o=Example"),
    "rsakeypair mykey": ("key_label", "mykey"),
    "subject-name CN=r1,O=Example": ("subject_name", "CN=r1,O=Example"),
    "ip-address 10.1.1.1": ("ip_address", "10.1.1.1"),
    "serial-number": ("serial_number", True),
    "crl optional": ("crl_optional", True),
    "message-digest sha256": ("message_digest", "sha256"),
    "description hello": ("description", "hello"),
    "auto-enroll 70": ("auto_enroll", 70),
    "renewal-message-type renewalreq": ("renewal_message_type", "renewalreq"),
}


def test_every_trustpoint_command_is_read_into_its_field() -> None:
    """CONFIG_FIELDS (engine/trustpoints.py) names every command of the trustpoint submode,
    and each line folds into exactly its own field."""
    from engine.grammar import GRAMMAR, Mode
    from engine.trustpoints import CONFIG_FIELDS

    declared = {c.name for c in GRAMMAR.commands
                if Mode.TRUSTP in c.modes and c.key is not None and c.enters is None}
    assert declared == set(CONFIG_FIELDS)
    for line, (name, value) in SAMPLES.items():
        e = Engine.in_memory()
        apply(e, ("edit", "myca", [line]))
        assert trustpoint_config(e.state, "myca") == TrustpointConfig("myca", **{name: value})
    assert {f for f, _ in SAMPLES.values()} == {f for f, _ in CONFIG_FIELDS.values()}
