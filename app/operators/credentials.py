"""Passwords (argon2id) and authenticator codes (TOTP, RFC 6238) of operators (docs/contract.md, section 15).

Passwords: at least 12 characters, not containing the username, not in a list of common passwords; stored as
argon2id hashes (argon2-cffi's defaults, which follow RFC 9106's second recommended option). An unknown
username is checked against a dummy hash of the same cost, so it takes about as long as a wrong password.

TOTP: SHA-1, 6 digits, 30-second steps, the current step and one either side accepted. A code is accepted
once: the operator row keeps the step of the last accepted code, and a code of that step or an earlier one
is refused (a replay), even inside its window.
"""

from __future__ import annotations

import hmac
import io
import secrets
import string
import time
from functools import lru_cache
from typing import Final

import pyotp
import segno
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_CHARS: Final = 12
MAX_PASSWORD_CHARS: Final = 256
TOTP_STEP_SECONDS: Final = 30
TOTP_DIGITS: Final = 6
TOTP_WINDOW: Final = 1
ISSUER: Final = "dancu-gateway"

_HASHER: Final = PasswordHasher()  # argon2id

COMMON_PASSWORDS: Final = frozenset(
    """
    123456789012 1234567890123 12345678901234 123456789123 111111111111 000000000000 123123123123
    password1234 password12345 password123456 passwordpassword password@123 password!123 p@ssw0rd1234
    qwertyuiop12 qwertyuiop123 qwerty123456 qwertyqwerty 1q2w3e4r5t6y 1qaz2wsx3edc asdfghjkl123
    zaq12wsxcde3 iloveyou1234 welcome12345 welcome@1234 admin1234567 administrator adminadmin12
    letmein12345 abc123456789 abcdefghijkl abcd12345678 changeme1234 changeme@123 trustno11234
    matkhau12345 matkhau@1234 matkhau123456 matkhaumoi12 anhyeuem1234 anhyeuem123456 emyeuanh1234
    vietnam12345 vietnam@1234 hanoi1234567 saigon123456 hochiminh123 dancu1234567 dancu@123456
    congan123456 canbo1234567 quantri12345 quantri@1234 kiemtoan1234 123456abcdef 987654321098
    football1234 baseball1234 sunshine1234 princess1234 monkey123456 dragon123456 superman1234
    """.split()  # noqa: SIM905 - a word list reads better as text
)
"""Common passwords of 12 characters or more (shorter ones fail the length rule first), lower case."""


class PasswordProblem(ValueError):
    """Why a new password is refused: ``code`` is stable, the message names no part of the password."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def password_problem(password: str, username: str) -> PasswordProblem | None:
    """What is wrong with ``password`` as ``username``'s new password, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return PasswordProblem("password_too_short", f"At least {MIN_PASSWORD_CHARS} characters.")
    if len(password) > MAX_PASSWORD_CHARS:
        return PasswordProblem("password_too_long", f"At most {MAX_PASSWORD_CHARS} characters.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in password):
        return PasswordProblem("control_character", "No control characters.")
    folded = password.casefold()
    if username.casefold() in folded:
        return PasswordProblem("password_contains_username", "The password contains the username.")
    if folded in COMMON_PASSWORDS or len(set(folded)) <= 2:
        return PasswordProblem("password_common", "The password is too common.")
    return None


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with ``stored_hash`` None (no such operator) a dummy hash is checked so
    that the answer takes about as long as for a wrong password, and is False."""
    target = stored_hash if stored_hash is not None else _dummy_hash()
    try:
        matched = _HASHER.verify(target, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return matched and stored_hash is not None


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(16))


def new_initial_password() -> str:
    """24 random characters from letters and digits (shown once; changed at first login)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(24))


# --- TOTP ---------------------------------------------------------------------------------------------------


def new_totp_secret() -> str:
    """A base32 secret of 160 bits (RFC 4226's recommended length)."""
    return pyotp.random_base32(32)


def totp_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).provisioning_uri(
        name=username, issuer_name=ISSUER
    )


def totp_qr_svg(secret: str, username: str) -> str:
    """The provisioning URI as an SVG QR code (made on the server: no script, no third party)."""
    buffer = io.BytesIO()
    segno.make(totp_uri(secret, username), error="m").save(
        buffer, kind="svg", scale=4, xmldecl=False, svgns=True, nl=False
    )
    return buffer.getvalue().decode("utf-8")


def current_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // TOTP_STEP_SECONDS)


def code_at(secret: str, step: int) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_STEP_SECONDS).at(step * TOTP_STEP_SECONDS)


def matching_step(secret: str, code: str, *, now: float | None = None) -> int | None:
    """The step (current ±1) whose code is ``code``, or None; compared in constant time."""
    code = code.strip().replace(" ", "")
    if len(code) != TOTP_DIGITS or not code.isascii() or not code.isdigit():
        return None
    step = current_step(now)
    found: int | None = None
    for candidate in range(step - TOTP_WINDOW, step + TOTP_WINDOW + 1):
        if hmac.compare_digest(code_at(secret, candidate), code) and found is None:
            found = candidate
    return found
