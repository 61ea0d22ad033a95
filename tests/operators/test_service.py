"""Operators' accounts, logins, lockout, codes and sessions (docs/contract.md, section 15)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.auth.errors import Conflict
from app.db import utcnow
from app.errors import ValidationFailed
from app.operators import credentials
from app.operators.models import Operator, OperatorSession
from app.operators.service import LOCKOUT, MAX_FAILED_LOGINS, OperatorService, token_hash
from tests.operators.conftest import Runner

NEW_PASSWORD = "Ngựa-vằn-bay-qua-sông-42"


async def make(run: Runner, username: str = "lan", roles: str = "admin,approver") -> str:
    _view, password = await run(lambda s: s.create(username, "Nguyễn Thị Lan", roles.split(",")))
    return password


async def ready_session(run: Runner, username: str = "lan") -> str:
    """Sign ``username`` in for the first time and change its password: a ``ready`` session's token."""
    password = await make(run, username)
    outcome = await run(lambda s: s.login(username, password))
    assert outcome.stage == "change_password"
    assert outcome.token
    token = outcome.token

    async def change(s: OperatorService) -> str:
        signed_in = await s.session_for(token, stages=("change_password",))
        assert signed_in is not None
        return await s.change_password(signed_in, password, NEW_PASSWORD, NEW_PASSWORD)

    assert await run(change) == "ready"
    return token


async def enrol(run: Runner, token: str) -> str:
    """Enrol an authenticator on the session; its secret."""

    async def go(s: OperatorService) -> str:
        signed_in = await s.session_for(token, stages=("ready", "enrol"))
        assert signed_in is not None
        secret = s.start_enrolment(signed_in)
        code = credentials.code_at(secret, credentials.current_step() - 1)
        assert await s.finish_enrolment(signed_in, code)
        return secret

    return await run(go)


async def test_create_shows_a_long_initial_password_once_and_records_the_event(run: Runner) -> None:
    password = await make(run)
    assert len(password) >= 20
    listed = await run(lambda s: s.list())
    assert [(o.username, o.roles, o.must_change_password) for o in listed] == [
        ("lan", ["admin", "approver"], True)
    ]
    events = await run.events()
    assert [(e.action, e.actor, e.outcome) for e in events] == [("operator.create", "cli", "allowed")]
    assert password not in str(events[0].detail)


@pytest.mark.parametrize(
    "roles", [["admin", "auditor"], ["root"], [], ["auditor", "admin", "analyst"]], ids=str
)
async def test_roles_are_known_and_admin_never_with_auditor(run: Runner, roles: list[str]) -> None:
    with pytest.raises(ValidationFailed):
        await run(lambda s: s.create("lan", "Lan", roles))


async def test_a_username_is_taken_once(run: Runner) -> None:
    await make(run)
    with pytest.raises(Conflict):
        await make(run)


async def test_the_last_admin_is_neither_disabled_nor_narrowed(run: Runner) -> None:
    await make(run, "lan", "admin")
    with pytest.raises(Conflict):
        await run(lambda s: s.set_status("lan", "disabled"))
    with pytest.raises(Conflict):
        await run(lambda s: s.set_roles("lan", ["approver"]))
    await make(run, "minh", "admin")
    assert (await run(lambda s: s.set_status("lan", "disabled"))).status == "disabled"


async def test_unknown_username_gets_the_wrong_password_answer_and_is_not_recorded_as_typed(
    run: Runner,
) -> None:
    password = await make(run)
    unknown = await run(lambda s: s.login("nobody-here", password))
    wrong = await run(lambda s: s.login("lan", "not the password at all"))
    assert unknown == wrong
    assert unknown.denied
    assert unknown.token is None
    events = [e for e in await run.events() if e.action == "operator.login"]
    assert [(e.actor, e.outcome, e.reason) for e in events] == [
        ("op:?", "denied", "bad_credentials"),
        ("op:lan", "denied", "bad_credentials"),
    ]
    assert "nobody-here" not in repr([(e.actor, e.detail) for e in events])


async def test_five_failures_lock_the_account_for_fifteen_minutes_then_it_opens(run: Runner) -> None:
    password = await make(run)
    for _ in range(MAX_FAILED_LOGINS):
        assert (await run(lambda s: s.login("lan", "wrong password!!"))).denied
    assert (await run(lambda s: s.login("lan", password))).denied  # the right password, while locked
    events = [e for e in await run.events() if e.action == "operator.login"]
    assert events[-1].reason == "locked"
    assert events[MAX_FAILED_LOGINS - 1].detail is not None
    assert "locked_until" in events[MAX_FAILED_LOGINS - 1].detail

    async def lock_ends(s: OperatorService) -> None:
        until = await s.session.scalar(select(Operator.locked_until))
        assert until is not None
        assert until - utcnow() > LOCKOUT - timedelta(minutes=1)
        await s.session.execute(update(Operator).values(locked_until=utcnow() - timedelta(seconds=1)))

    await run(lock_ends)
    assert not (await run(lambda s: s.login("lan", password))).denied


async def test_first_login_only_opens_the_password_change(run: Runner) -> None:
    password = await make(run)
    outcome = await run(lambda s: s.login("lan", password))
    assert outcome.stage == "change_password"
    token = outcome.token
    assert await run(lambda s: s.session_for(token)) is None  # not a ready session

    async def bad_changes(s: OperatorService) -> list[str]:
        signed_in = await s.session_for(token, stages=("change_password",))
        assert signed_in is not None
        codes = []
        for current, new, confirm in [
            ("wrong current pw", NEW_PASSWORD, NEW_PASSWORD),
            (password, "short", "short"),
            (password, "lan-is-my-name-2026", "lan-is-my-name-2026"),
            (password, "password1234", "password1234"),
            (password, NEW_PASSWORD, NEW_PASSWORD + "x"),
        ]:
            with pytest.raises(ValidationFailed) as caught:
                await s.change_password(signed_in, current, new, confirm)
            codes.append(caught.value.errors[0]["code"])
        return codes

    assert await run(bad_changes) == [
        "password_wrong",
        "password_too_short",
        "password_contains_username",
        "password_common",
        "password_mismatch",
    ]


async def test_totp_is_required_after_enrolment_and_a_code_is_accepted_once(run: Runner) -> None:
    token = await ready_session(run)
    secret = await enrol(run, token)
    first = await run(lambda s: s.login("lan", NEW_PASSWORD))
    assert first.stage == "code"
    assert first.token
    code = credentials.code_at(secret, credentials.current_step())
    done = await run(lambda s: s.login_code(first.token or "", code))
    assert done.stage == "ready"
    assert done.token not in (None, first.token)
    # the same code again, on a new password step: a replay
    second = await run(lambda s: s.login("lan", NEW_PASSWORD))
    replay = await run(lambda s: s.login_code(second.token or "", code))
    assert replay.denied
    events = [e for e in await run.events() if e.action == "operator.login"]
    assert (events[-1].outcome, events[-1].reason, events[-1].detail) == (
        "denied",
        "totp_invalid",
        {"step": "code", "replay": True},
    )
    wrong = await run(lambda s: s.login_code(second.token or "", "000000"))
    assert wrong.denied


async def test_required_totp_sends_a_new_operator_to_enrolment(run: Runner) -> None:
    password = await make(run)
    outcome = await run(lambda s: s.login("lan", password), require_totp=True)
    token = outcome.token or ""

    async def change(s: OperatorService) -> str:
        signed_in = await s.session_for(token, stages=("change_password",))
        assert signed_in is not None
        return await s.change_password(signed_in, password, NEW_PASSWORD, NEW_PASSWORD)

    assert await run(change, require_totp=True) == "enrol"
    await enrol(run, token)
    assert await run(lambda s: s.session_for(token)) is not None


async def test_idle_and_absolute_timeouts_and_logout_end_a_session(run: Runner) -> None:
    token = await ready_session(run)
    assert await run(lambda s: s.session_for(token)) is not None

    async def idle(s: OperatorService) -> None:
        await s.session.execute(update(OperatorSession).values(last_seen_at=utcnow() - timedelta(minutes=16)))

    await run(idle)
    assert await run(lambda s: s.session_for(token)) is None

    outcome = await run(lambda s: s.login("lan", NEW_PASSWORD))
    token = outcome.token or ""

    async def old(s: OperatorService) -> None:
        await s.session.execute(update(OperatorSession).values(created_at=utcnow() - timedelta(hours=8)))

    await run(old)
    assert await run(lambda s: s.session_for(token)) is None

    token = (await run(lambda s: s.login("lan", NEW_PASSWORD))).token or ""

    async def logout(s: OperatorService) -> None:
        signed_in = await s.session_for(token)
        assert signed_in is not None
        await s.logout(signed_in)

    await run(logout)
    assert await run(lambda s: s.session_for(token)) is None
    assert (await run.events())[-1].action == "operator.logout"


async def test_disable_reset_and_role_changes_end_the_sessions(run: Runner) -> None:
    token = await ready_session(run)
    await make(run, "minh", "admin")
    await run(lambda s: s.set_status("lan", "disabled"))
    assert await run(lambda s: s.session_for(token)) is None
    assert (await run(lambda s: s.login("lan", NEW_PASSWORD))).denied
    assert (await run.events())[-1].reason == "disabled"
    await run(lambda s: s.set_status("lan", "active"))
    token = (await run(lambda s: s.login("lan", NEW_PASSWORD))).token or ""
    new_password = await run(lambda s: s.reset_password("lan"))
    assert await run(lambda s: s.session_for(token)) is None
    assert (await run(lambda s: s.login("lan", new_password))).stage == "change_password"


def test_the_session_row_keeps_a_hash_of_the_cookie_only() -> None:
    assert token_hash("abc") != "abc"
    assert len(token_hash("abc")) == 64


def test_codes_of_the_neighbouring_steps_match_and_others_do_not() -> None:
    secret = credentials.new_totp_secret()
    step = credentials.current_step()
    for offset in (-1, 0, 1):
        assert credentials.matching_step(secret, credentials.code_at(secret, step + offset)) is not None
    assert credentials.matching_step(secret, credentials.code_at(secret, step + 3)) is None
    assert credentials.matching_step(secret, "12345x") is None
    assert credentials.totp_qr_svg(secret, "lan").startswith("<svg")
