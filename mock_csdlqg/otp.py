"""One-time codes sent to a resident's registered mobile: the population database's side of a confirmation.

The national database generates a 6-digit code, sends it by SMS to the mobile number on the resident's record
and later says whether a code typed by the resident is the one sent; the caller (the gateway) never learns the
code. This mock keeps, per challenge, only a keyed hash of the code (HMAC-SHA256 under a key made when the desk
starts), its expiry and how many checks it has had; a challenge is used up by a right code, by
``MAX_CHECKS`` wrong ones, or by its expiry. "Sending" appends the SMS to an outbox, the one place the code
exists in clear, which tests read (``GET /_mock/outbox``, only when the mock runs with ``--faults`` or
``--test-outbox``; ``OtpDesk.outbox_for`` for the embedded backend). Nothing here logs a code or a number.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

CODE_DIGITS: Final = 6
TTL_SECONDS: Final = 300
MAX_CHECKS: Final = 5
OUTBOX_SIZE: Final = 1000
MAX_CHALLENGES: Final = 100_000


@dataclass(slots=True)
class _Challenge:
    personal_id: str
    code_mac: bytes
    expires_at: float
    checks: int = 0


@dataclass(frozen=True, slots=True)
class Sent:
    challenge_id: str
    destination_hint: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Sms:
    at: float
    personal_id: str
    destination: str
    text: str


def destination_hint(phone: str) -> str:
    """``0905123103`` → ``09******03``: enough for the resident to recognise the number, not to dial it."""
    return phone[:2] + "*" * max(0, len(phone) - 4) + phone[-2:]


def sms_text(code: str, about: str) -> str:
    return (
        f"Ma xac nhan {code} cho to khai {about}. Hieu luc {TTL_SECONDS // 60} phut. "
        "Khong cung cap ma nay cho bat ky ai."
    )


class OtpDesk:
    """Challenges in this process's memory (a mock: a restart forgets them, as an SMS gateway's codes expire)."""

    def __init__(self, *, clock: Callable[[], float] = time.time, ttl: float = TTL_SECONDS) -> None:
        self._key = secrets.token_bytes(32)
        self._clock = clock
        self._ttl = ttl
        self._challenges: dict[str, _Challenge] = {}
        self._outbox: deque[Sms] = deque(maxlen=OUTBOX_SIZE)

    def _mac(self, challenge_id: str, code: str) -> bytes:
        return hmac.new(self._key, f"{challenge_id}:{code}".encode(), hashlib.sha256).digest()

    def _sweep(self, now: float) -> None:
        if len(self._challenges) >= MAX_CHALLENGES:
            for cid in [c for c, ch in self._challenges.items() if ch.expires_at <= now]:
                del self._challenges[cid]
            while len(self._challenges) >= MAX_CHALLENGES:
                del self._challenges[next(iter(self._challenges))]

    def send(self, personal_id: str, phone: str, about: str) -> Sent:
        """A new code for ``personal_id``, "sent" to ``phone``; earlier challenges of that resident stay valid
        until they expire or are used (the caller decides which challenge it checks against)."""
        now = self._clock()
        self._sweep(now)
        challenge_id = secrets.token_urlsafe(18)
        code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
        expires_at = now + self._ttl
        self._challenges[challenge_id] = _Challenge(personal_id, self._mac(challenge_id, code), expires_at)
        self._outbox.append(Sms(now, personal_id, phone, sms_text(code, about)))
        return Sent(challenge_id, destination_hint(phone), expires_at)

    def check(self, challenge_id: str, code: str) -> bool:
        """Whether ``code`` is the one sent for ``challenge_id``; False for an unknown, used-up or expired
        challenge. A right code uses the challenge up; so do ``MAX_CHECKS`` wrong ones."""
        challenge = self._challenges.get(challenge_id)
        if challenge is None:
            return False
        if challenge.expires_at <= self._clock():
            del self._challenges[challenge_id]
            return False
        challenge.checks += 1
        right = hmac.compare_digest(challenge.code_mac, self._mac(challenge_id, code))
        if right or challenge.checks >= MAX_CHECKS:
            del self._challenges[challenge_id]
        return right

    def outbox_for(self, personal_id: str) -> list[dict[str, Any]]:
        """The SMS sent to the resident's number, oldest first, as ``GET /_mock/outbox`` answers them."""
        return [
            {
                "at": datetime.fromtimestamp(sms.at, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "destination": sms.destination,
                "text": sms.text,
            }
            for sms in self._outbox
            if sms.personal_id == personal_id
        ]


def phone_of(record: Any) -> str | None:
    """The registered mobile of a wire record (``soDienThoai``), or None."""
    phone = record.get("soDienThoai") if isinstance(record, dict) else None
    return phone if isinstance(phone, str) and phone else None
