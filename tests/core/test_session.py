import json

import pytest

from explorer.core.selection import Selection
from explorer.core.session import (
    FORMAT_VERSION,
    ModelRef,
    Session,
    SessionError,
    parse_session,
    read_session,
    write_session,
)


def sample() -> Session:
    return Session(ModelRef("smollm2", "ab" * 32), "Hello\nthere 🙂",
                   Selection(token=2, layer=3, head=1, hide_first=True), {"columns": ["a"]}, {"seed": 7})


def test_round_trip(tmp_path):
    path = write_session(sample(), tmp_path / "s.json")
    assert read_session(path) == sample()
    assert json.loads(path.read_text())["version"] == FORMAT_VERSION


@pytest.mark.parametrize("text,reason", [
    ("", "not complete JSON"),
    ('{"format": "attention-explorer-session", "version": 1, "model": {"spec": "smol', "not complete JSON"),
    ("[]", "top level"),
    ('{"format": "other", "version": 1}', "'format'"),
    ('{"format": "attention-explorer-session", "version": "1"}', "'version'"),
    ('{"format": "attention-explorer-session", "version": 1, "model": {"spec": ""}}', "model.spec"),
    ('{"format": "attention-explorer-session", "version": 1, "model": {"spec": "x"}, '
     '"selection": {"token": -1}}', "selection.token"),
    ('{"format": "attention-explorer-session", "version": 1, "model": {"spec": "x"}, '
     '"selection": {"hide_first": "yes"}}', "selection.hide_first"),
])
def test_malformed_sessions_are_refused_with_the_reason(text, reason):
    with pytest.raises(SessionError, match="Not a valid session file") as info:
        parse_session(text)
    assert reason in str(info.value)


def test_future_version_is_refused():
    text = sample().to_json().replace(f'"version": {FORMAT_VERSION}', '"version": 99')
    with pytest.raises(SessionError, match="newer Attention Explorer"):
        parse_session(text)


def test_consent_is_never_stored_or_read():
    text = sample().to_json()
    assert "trust_remote_code" not in text and "pickle" not in text
    data = json.loads(text)
    data["model"]["trust_remote_code"] = True  # a crafted file cannot grant consent
    data["model"]["allow_pickle"] = True
    session = parse_session(json.dumps(data))
    assert session.model == ModelRef("smollm2", "ab" * 32)  # only spec and fingerprint survive


@pytest.mark.parametrize("extras", [
    {"generation": {"max_new_tokens": 1e20}},
    {"generation": {"seed": 2**40}},
    {"comparison": {"columns": [[[[[[[[[["deep"]]]]]]]]]]}},
])
def test_extras_with_unusable_values_are_refused(extras):
    data = json.loads(sample().to_json())
    data.update(extras)
    with pytest.raises(SessionError, match="out-of-range number|nested too deeply"):
        parse_session(json.dumps(data))


def test_nan_is_refused():
    text = sample().to_json().replace('"seed": 7', '"seed": NaN')
    with pytest.raises(SessionError, match="not a number JSON allows"):
        parse_session(text)


