"""Check a confirmation receipt offline: the gateway signed it, and it is about this very document.

A portal files the receipt (``confirmation+jwt``) with the declaration. Any office can later check, without
calling the gateway, that the resident confirmed exactly that document: the signature verifies against the
gateway's published keys (a copy of ``/.well-known/jwks.json`` is enough), the header says
``typ: confirmation+jwt``, and the SHA-256 of the document file equals the receipt's ``document_sha256``.

    python examples/verify_receipt.py --jwks jwks.json --receipt receipt.jwt --document to-khai-ct01.pdf \\
        [--issuer https://dancu.example.gov.vn]

Prints the receipt's claims and exits 0 when everything holds; otherwise says why and exits 1.
Needs PyJWT with its cryptography extra (``pip install "pyjwt[crypto]"``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import jwt

RECEIPT_TYP = "confirmation+jwt"
METHOD = "otp_registered_mobile"


class ReceiptRejected(Exception):
    """Why a receipt does not hold (never the receipt's content)."""


def verify_receipt(
    receipt: str, jwks: dict[str, Any], document: bytes, *, issuer: str | None = None
) -> dict[str, Any]:
    """The receipt's claims when it holds for ``document``; ReceiptRejected otherwise."""
    try:
        header = jwt.get_unverified_header(receipt)
    except jwt.PyJWTError as err:
        raise ReceiptRejected(f"not a compact JWS: {type(err).__name__}") from None
    if header.get("typ") != RECEIPT_TYP:
        raise ReceiptRejected("not a confirmation receipt (typ)")
    keys = {key.get("kid"): key for key in jwks.get("keys", [])}
    if header.get("kid") not in keys:
        raise ReceiptRejected("signed by a key that is not in this JWKS")
    key = jwt.PyJWK(keys[header["kid"]])
    try:
        claims: dict[str, Any] = jwt.decode(
            receipt,
            key=key,
            algorithms=["ES256"],
            issuer=issuer,
            options={"require": ["iss", "iat"], "verify_aud": False},
        )
    except jwt.PyJWTError as err:
        raise ReceiptRejected(f"signature or claims do not verify: {type(err).__name__}") from None
    if claims.get("method") != METHOD:
        raise ReceiptRejected("not confirmed by a one-time code to the registered mobile")
    if claims.get("document_sha256") != hashlib.sha256(document).hexdigest():
        raise ReceiptRejected("the receipt is about another document (document_sha256 differs)")
    return claims


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jwks", type=Path, required=True, help="a copy of the gateway's JWKS")
    parser.add_argument("--receipt", type=Path, required=True, help="the receipt (compact JWS) as filed")
    parser.add_argument("--document", type=Path, required=True, help="the declaration as filed")
    parser.add_argument("--issuer", help="the gateway's issuer URL, to check `iss` too")
    args = parser.parse_args(argv)
    try:
        claims = verify_receipt(
            args.receipt.read_text(encoding="ascii").strip(),
            json.loads(args.jwks.read_text(encoding="utf-8")),
            args.document.read_bytes(),
            issuer=args.issuer,
        )
    except ReceiptRejected as err:
        print(f"REJECTED: {err}", file=sys.stderr)
        return 1
    print(json.dumps(claims, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
