"""The backends' one-time code calls (docs/contract.md, 18. Forms): sending and checking a code are not reads, so
the HTTP adapter never retries them (a retry could send a second SMS or count a second check); answers are checked
like records (identity, shape); the fake and the mock's desk keep the contract."""

from __future__ import annotations

import orjson
import pytest

from app.backends.base import CodeSent
from app.backends.errors import (
    NoRegisteredContact,
    UpstreamBadResponse,
    UpstreamIdentityMismatch,
    UpstreamUnavailable,
)
from mock_csdlqg.otp import MAX_CHECKS, OtpDesk, destination_hint
from tests.backends.test_http import Upstream, backend, json_response, problem

PID = "052068000108"
SENT = {
    "ketQua": "da_gui",
    "soDinhDanh": PID,
    "maYeuCau": "abc_DEF-123",
    "kenh": "sms",
    "soDienThoaiAn": "09******08",
    "hetHanLuc": "2026-12-05T01:05:00Z",
}


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_sending_and_checking_are_never_retried(status: int) -> None:
    upstream = Upstream(problem(status))
    async with backend(upstream) as b:
        with pytest.raises(UpstreamUnavailable):
            await b.send_code(PID, "CT01")
        with pytest.raises(UpstreamUnavailable):
            await b.check_code("abc", "123456")
    assert len(upstream.requests) == 2
    assert b.retries == 0


async def test_a_code_sent_is_mapped_and_the_body_names_no_code() -> None:
    upstream = Upstream(json_response(SENT))
    async with backend(upstream) as b:
        sent = await b.send_code(PID, "CT01 (Cổng DVC)")
    assert sent == CodeSent("abc_DEF-123", "09******08")
    assert orjson.loads(upstream.requests[0].content) == {"soDinhDanh": PID, "noiDung": "CT01 (Cổng DVC)"}
    assert upstream.requests[0].url.path == "/api/v1/residents/otp/send"


async def test_no_mobile_unknown_resident_and_bad_answers() -> None:
    cases = [
        (json_response({"ketQua": "khong_co_so_dien_thoai", "soDinhDanh": PID}), NoRegisteredContact),
        (json_response({**SENT, "soDinhDanh": "052085000103"}), UpstreamIdentityMismatch),
        (json_response({**SENT, "soDienThoaiAn": "0914068108"}), UpstreamBadResponse),  # never a full number
        (json_response({**SENT, "ketQua": "maybe"}), UpstreamBadResponse),
    ]
    for answer, error in cases:
        async with backend(Upstream(answer)) as b:
            with pytest.raises(error):
                await b.send_code(PID, "CT01")
    async with backend(Upstream(problem(404))) as b:
        assert await b.send_code(PID, "CT01") is None
    async with backend(Upstream(json_response({"hopLe": "yes"}))) as b:
        with pytest.raises(UpstreamBadResponse):
            await b.check_code("abc", "123456")
    async with backend(Upstream(json_response({"hopLe": True}))) as b:
        assert await b.check_code("abc", "123456") is True


def test_the_desk_keeps_hashes_uses_challenges_up_and_expires_them() -> None:
    now = [1000.0]
    desk = OtpDesk(clock=lambda: now[0])
    sent = desk.send(PID, "0914068108", "CT01")
    code = desk.outbox_for(PID)[-1]["text"].split()[3]

    assert code.isdigit()
    assert len(code) == 6
    assert code not in repr(desk.__dict__["_challenges"]), "only a keyed hash of the code is kept"
    assert sent.destination_hint == destination_hint("0914068108") == "09******08"
    assert desk.check(sent.challenge_id, code) is True
    assert desk.check(sent.challenge_id, code) is False, "a right code uses the challenge up"

    other = desk.send(PID, "0914068108", "CT01")
    other_code = desk.outbox_for(PID)[-1]["text"].split()[3]
    wrong = f"{(int(other_code) + 1) % 1_000_000:06d}"
    assert [desk.check(other.challenge_id, wrong) for _ in range(MAX_CHECKS)] == [False] * MAX_CHECKS
    assert desk.check(other.challenge_id, other_code) is False, "five wrong checks use it up"

    late = desk.send(PID, "0914068108", "CT01")
    late_code = desk.outbox_for(PID)[-1]["text"].split()[3]
    now[0] += 301
    assert desk.check(late.challenge_id, late_code) is False, "expired after 5 minutes"
    assert desk.outbox_for("052085000103") == []


async def test_the_fake_sends_and_checks_codes() -> None:
    from app.backends.base import ResidentRecord
    from app.backends.fake import FakeBackend

    with_phone = ResidentRecord(PID, {"phone": "0914068108"}, "2026-01-01T00:00:00Z", "fake")
    without = ResidentRecord("064138000102", {"phone": None}, "2026-01-01T00:00:00Z", "fake")
    fake = FakeBackend([with_phone, without])

    sent = await fake.send_code(PID, "CT01")
    assert sent is not None
    assert sent.destination_hint == "09******08"
    code = fake.outbox[-1][2].split()[0]
    assert await fake.check_code(sent.challenge_id, "000000" if code != "000000" else "111111") is False
    assert await fake.check_code(sent.challenge_id, code) is True
    assert await fake.send_code("052099000999", "CT01") is None
    with pytest.raises(NoRegisteredContact):
        await fake.send_code("064138000102", "CT01")
