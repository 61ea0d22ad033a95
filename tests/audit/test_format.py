"""The canonical form is what docs/audit-format.md says, byte for byte, and it is stable; the fast encoder
gives the bytes of the plain one.

The worked example is read from the page itself, so the page cannot drift from the code.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.audit.chain import (
    ADDED_IN_V2,
    CURRENT_FORMAT,
    FORMATS,
    GENESIS_HASH,
    MEMBERS,
    MEMBERS_V1,
    RECORD_MEMBERS,
    Head,
    _check,
    canonical,
    chain_events,
    event_hash,
    format_timestamp,
    link_hash,
)
from app.audit.errors import NotCanonicalisable
from app.cli import PROJECT_ROOT

DOC = PROJECT_ROOT / "docs" / "audit-format.md"
BLOCK = re.compile(r"```\w+ audit-example-(\d+)-(event|canonical|hash)\n(.*?)\n```", re.DOTALL)


def examples() -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for number, kind, body in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        found.setdefault(int(number), {})[kind] = body
    return found


def stored(document: dict[str, Any]) -> dict[str, Any]:
    """An event as the API shows it, with ``at`` as the timestamp the database holds."""
    return {**document, "at": datetime.fromisoformat(document["at"])}


def test_the_documented_example_is_what_the_code_computes() -> None:
    found = examples()
    assert sorted(found) == [1, 2, 3], "docs/audit-format.md lost its worked example"
    previous = GENESIS_HASH
    for number in sorted(found):
        blocks = found[number]
        event = stored(json.loads(blocks["event"]))
        # examples 1 and 2 were written in format 1 (no `format` member), example 3 in format 2
        assert set(event) == set(FORMATS[event.get("format", 1)])
        assert (number == 3) == ("format" in event)
        assert event["prev_hash"] == previous  # the second example links to the first
        assert canonical(event) == blocks["canonical"].encode("utf-8")
        assert event_hash(event) == blocks["hash"].strip()
        # ... which is SHA-256 over the previous hash's ASCII and the canonical bytes, nothing else
        expected = hashlib.sha256(previous.encode("ascii") + blocks["canonical"].encode("utf-8")).hexdigest()
        assert expected == blocks["hash"].strip()
        previous = blocks["hash"].strip()


def test_timestamps_always_have_six_digits_and_z() -> None:
    assert format_timestamp(datetime(2026, 11, 26, 2, 30, tzinfo=UTC)) == "2026-11-26T02:30:00.000000Z"
    hanoi = timezone(timedelta(hours=7))
    assert (
        format_timestamp(datetime(2026, 11, 26, 9, 30, 0, 42, tzinfo=hanoi)) == "2026-11-26T02:30:00.000042Z"
    )
    with pytest.raises(NotCanonicalisable):
        format_timestamp(datetime(2026, 11, 26, 2, 30))  # noqa: DTZ001 - the point of the test


def sample(**changes: Any) -> dict[str, Any]:
    event = stored(json.loads(examples()[1]["event"]))
    event.update(changes)
    return event


@pytest.mark.parametrize(
    "value",
    [1.5, float("nan"), 2**53, {1: "x"}, {"nested": {"deep": 0.1}}, "\ud800", b"bytes", {"a": {1, 2}}],
)
def test_values_without_one_canonical_form_are_refused(value: Any) -> None:
    with pytest.raises(NotCanonicalisable):
        canonical(sample(detail={"after": value}))


def test_control_characters_and_non_ascii_are_written_as_specified() -> None:
    text = canonical(sample(dossier_id='a"b\\c\n\t\x01\x7f\u2028Đ')).decode("utf-8")
    assert '"dossier_id":"a\\"b\\\\c\\n\\t\\u0001\x7f\u2028Đ"' in text


json_leaf = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
nfc_text = st.text(max_size=30).map(lambda s: unicodedata.normalize("NFC", s))
_V1_MEMBERS = {
    "event_id": st.uuids().map(str),
    "seq": st.integers(1, 2**40),
    "at": st.datetimes(
        min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(2100, 1, 1),  # noqa: DTZ001
        timezones=st.just(UTC),
    ),
    "request_id": st.none() | nfc_text,
    "client_id": st.none() | nfc_text,
    "actor": nfc_text,
    "action": nfc_text,
    "purpose": st.none() | nfc_text,
    "dossier_id": st.none() | nfc_text,
    "subject_ref": st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
    "fields": st.lists(nfc_text, max_size=5),
    "sensitive_fields": st.lists(nfc_text, max_size=5),
    "outcome": st.sampled_from(["allowed", "denied", "error"]),
    "status_code": st.integers(100, 599),
    "reason": st.none() | nfc_text,
    "detail": st.none() | st.dictionaries(st.text(max_size=8), json_value, max_size=4),
    "prev_hash": st.text("0123456789abcdef", min_size=64, max_size=64),
}
events_v1 = st.fixed_dictionaries(_V1_MEMBERS)
"""Events as format 1 wrote them (no `format` member: an export from before issue 15)."""
events = st.fixed_dictionaries(
    {
        **_V1_MEMBERS,
        "end_user": st.none() | st.from_regex(r"[A-Za-z0-9._@:-]{1,128}", fullmatch=True),
        "client_ip": st.none() | st.ip_addresses().map(str),
        "job_id": st.none() | st.uuids().map(str),
        "format": st.just(CURRENT_FORMAT),
    }
)
"""Events as the gateway writes them now (format 2)."""


@settings(max_examples=300, deadline=None)
@given(events)
def test_canonical_form_is_stable(event: dict[str, Any]) -> None:
    data = canonical(event)
    # Deterministic, whatever order the members and keys come in, and unaffected by members outside it
    shuffled = dict(reversed(list(event.items())))
    shuffled["hash"] = "ignored"
    assert canonical(shuffled) == data
    # Valid UTF-8 JSON that reads back as the event (at as its canonical text)
    parsed = json.loads(data.decode("utf-8"))
    assert parsed == {**event, "at": format_timestamp(event["at"])}
    # Already canonical: serialising what was read gives the same bytes again
    assert json.dumps(parsed, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode() == data
    # The round trip through JSON storage (a JSON column) changes nothing
    assert canonical({**json.loads(json.dumps(event, default=str)), "at": event["at"]}) == data
    assert event_hash(event) == link_hash(event["prev_hash"], data)
    assert re.fullmatch(r"[0-9a-f]{64}", event_hash(event))


@settings(max_examples=100, deadline=None)
@given(events | events_v1, st.sampled_from([m for m in MEMBERS if m not in {"at", "format"}]))
def test_every_member_is_covered_by_the_hash(event: dict[str, Any], member: str) -> None:
    if member not in event:  # a format 2 member, absent from a format 1 event
        return
    changed = dict(event)
    value = event[member]
    changed[member] = (
        value + 1
        if isinstance(value, int)
        else (value or "") + "x"
        if isinstance(value, str) or value is None
        else [*value, "x"]
        if isinstance(value, list)
        else {**value, "x": 1}
    )
    assert event_hash(changed) != event_hash(event)


# --- the fast encoder against the plain one ------------------------------------------------------------------


def reference_canonical(event: dict[str, Any]) -> bytes:
    """The canonical form the plain way (as ``canonical`` was first written): the whole document checked,
    then through ``json.dumps``. ``canonical`` encodes member by member for speed; the bytes must not change."""
    version = event.get("format", 1)
    members = FORMATS.get(version) if type(version) is int else None
    if members is None:
        raise NotCanonicalisable("unknown format")
    if version == 1 and any(event.get(name) is not None for name in ADDED_IN_V2):
        raise NotCanonicalisable("a format 1 event has a member of format 2")
    document: dict[str, Any] = {}
    for name in members:
        value = event[name]
        if name == "at":
            if not isinstance(value, datetime):
                raise NotCanonicalisable("`at` is not a timestamp")
            value = format_timestamp(value)
        else:
            _check(value)
        document[name] = value
    try:
        text = json.dumps(
            document, ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
        )
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise NotCanonicalisable(type(exc).__name__) from None


def encoded(encode: Any, event: dict[str, Any]) -> bytes | str:
    try:
        data: bytes = encode(event)
    except NotCanonicalisable:
        return "refused"
    return data


# Strings of what JSON escapes, non-ASCII, decomposed Vietnamese (not NFC: "Nguyễn" as "e" + U+0302 + U+0303),
# lone surrogates (not UTF-8) and any other character.
wild_text = st.lists(
    st.sampled_from(
        ['"', "\\", "\n", "\x00", "\x1f", "\x7f", "\u2028", "Đ", "Nguye\u0302\u0303n", "\u0303", "\ud800"]
    )
    | st.characters(exclude_categories=()),
    max_size=8,
).map("".join)
offsets = st.sampled_from([UTC, timezone(timedelta(hours=7)), timezone(timedelta(hours=-3, minutes=-30))])
wild_value = (
    st.none()
    | st.booleans()
    | st.integers(-(2**54), 2**54)
    | wild_text
    | st.lists(wild_text, max_size=4)
    | st.tuples(wild_text, wild_text)
    | st.floats()
    | st.datetimes(timezones=offsets, min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))  # noqa: DTZ001
    | st.lists(json_value, max_size=3)
    | st.dictionaries(wild_text, json_value, max_size=3)
    | st.dictionaries(st.integers(0, 3), json_value, max_size=2)
)
wild_at = (
    st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001 - hypothesis wants naive bounds
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=offsets,
    )
    | st.datetimes()  # naive: refused
    | wild_value
)


@settings(max_examples=1000, deadline=None)
@given(events, st.dictionaries(st.sampled_from(MEMBERS), wild_text, max_size=4), st.data())
def test_the_fast_encoder_gives_the_reference_bytes_for_any_values(
    event: dict[str, Any], texts: dict[str, str], data: st.DataObject
) -> None:
    """A valid event with a few members replaced: by wild strings, then by values of any kind."""
    event = {**event, **texts}
    for name in data.draw(st.lists(st.sampled_from(MEMBERS), max_size=3)):
        event[name] = data.draw(wild_at if name == "at" else wild_value)
    assert encoded(canonical, event) == encoded(reference_canonical, event)


@settings(max_examples=300, deadline=None)
@given(events | events_v1)
def test_the_fast_encoder_gives_the_reference_bytes_for_valid_events(event: dict[str, Any]) -> None:
    assert canonical(event) == reference_canonical(event)


@settings(max_examples=100, deadline=None)
@given(events_v1, st.sampled_from(ADDED_IN_V2), st.text(min_size=1, max_size=10))
def test_a_format_1_event_with_a_format_2_member_is_refused(
    event: dict[str, Any], member: str, value: str
) -> None:
    """The gateway never wrote one: a verifier must not accept a member slipped into an old event."""
    assert canonical({**event, member: None, "format": 1}) == canonical(event)
    with pytest.raises(NotCanonicalisable):
        canonical({**event, member: value})


@settings(max_examples=100, deadline=None)
@given(events)
def test_the_format_is_covered_and_unknown_formats_are_refused(event: dict[str, Any]) -> None:
    plain = {**event, **dict.fromkeys(ADDED_IN_V2)}
    # the same members read as format 1 hash differently: a format cannot be downgraded unnoticed
    assert event_hash({**plain, "format": 1}) != event_hash(plain)
    for version in (0, 3, "2", None, True):
        with pytest.raises(NotCanonicalisable):
            canonical({**event, "format": version})
    assert set(MEMBERS_V1) < set(MEMBERS)


@settings(max_examples=200, deadline=None)
@given(events, wild_text, st.lists(wild_text, max_size=3))
def test_chain_events_stores_and_hashes_strings_in_nfc(
    event: dict[str, Any], text: str, fields: list[str]
) -> None:
    """Whatever the normalisation of the strings it is given, the writer stores and hashes their NFC."""
    record = {name: event[name] for name in RECORD_MEMBERS}
    record.update(actor=text, fields=fields, detail={text: [text]})
    nfc = unicodedata.normalize
    expected = {
        **record,
        "actor": nfc("NFC", text),
        "fields": [nfc("NFC", f) for f in fields],
        "detail": {nfc("NFC", text): [nfc("NFC", text)]},
        "seq": 42,
        "prev_hash": GENESIS_HASH,
        "format": CURRENT_FORMAT,
    }
    try:
        expected_hash = link_hash(GENESIS_HASH, reference_canonical(expected))
    except NotCanonicalisable:  # a lone surrogate
        with pytest.raises(NotCanonicalisable):
            chain_events(Head("log", 41, GENESIS_HASH), [record])
        return
    (chained,) = chain_events(Head("log", 41, GENESIS_HASH), [record])
    assert {name: chained[name] for name in MEMBERS} == expected
    assert chained["hash"] == expected_hash
