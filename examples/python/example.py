"""dancu-gateway from Python 3.11+ with httpx and PyJWT (pip install httpx "pyjwt[crypto]").
Ví dụ gọi dancu-gateway từ Python 3.11+ bằng httpx và PyJWT.

    DANCU_GATEWAY=http://127.0.0.1:8000 DANCU_CLIENT_ID=... DANCU_CLIENT_SECRET=... \
    DANCU_PRIVATE_KEY_FILE=portal-key.pem DANCU_KEY_ID=portal-key-1 python example.py

What it shows (examples/README.md): a token with the client secret and one with private_key_jwt, each cached
until shortly before it expires; verify, lookup and household; the verification's attestation checked offline
against the gateway's JWKS; problem+json answers, retrying only what may be retried and honouring Retry-After.
It prints no personal data: counts, outcomes and request ids only.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import sys
import time
import unicodedata
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

GATEWAY = os.environ.get("DANCU_GATEWAY", "http://127.0.0.1:8000").rstrip("/")
CLIENT_ID = os.environ.get("DANCU_CLIENT_ID", "")
CLIENT_SECRET = os.environ.get("DANCU_CLIENT_SECRET", "")
PRIVATE_KEY_FILE = os.environ.get("DANCU_PRIVATE_KEY_FILE")  # PKCS#8 PEM, EC P-256 (ES256) or RSA (RS256)
KEY_ID = os.environ.get("DANCU_KEY_ID")  # the kid registered with the gateway (optional)
PURPOSE = os.environ.get("DANCU_PURPOSE", "DEMO-1.000001")
# A fault to rehearse against a gateway run with DANCU_SANDBOX=true, e.g. "status=503".
SANDBOX_FAULT = os.environ.get("DANCU_SANDBOX_FAULT")

# The demo resident (a persona of the mock national database, docs/personas.md).
RESIDENT = {"personal_id": "052068000108", "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"}
CANCELLED_ID = "052081000125"  # a cancelled ID: answered 404 not_found

REFRESH_MARGIN_S = 30  # fetch a new token this long before the cached one expires
MAX_ATTEMPTS = 3  # one call and at most two retries
MAX_WAIT_S = 10  # a Retry-After longer than this is not waited for: the problem goes to the caller
# Codes that say "the same request may succeed later"; everything else is final (docs/integration.md).
RETRYABLE = {
    "rate_limited",
    "upstream_unavailable",
    "upstream_timeout",
    "upstream_bad_response",
    "limits_unavailable",
    "audit_unavailable",
    "temporarily_unavailable",  # the token endpoint's OAuth form of the same
}


class Problem(Exception):
    """An application/problem+json answer (or a token endpoint's OAuth error) with what the caller needs."""

    def __init__(self, response: httpx.Response) -> None:
        body: dict[str, Any] = response.json() if "json" in response.headers.get("content-type", "") else {}
        self.status = response.status_code
        self.code: str = body.get("code") or body.get("error") or f"http_{self.status}"
        super().__init__(f"{self.status} {self.code}")
        self.title = body.get("title") or body.get("error_description") or ""
        # Validation failures list [{loc, code, message}]; field_not_allowed lists the refused field names.
        self.errors: list[dict[str, Any]] = body.get("errors", [])
        self.fields: list[str] = body.get("fields", [])
        # What to quote to support: the request id (yours, when you sent one).
        self.request_id = body.get("request_id") or response.headers.get("x-request-id")
        self.retry_after = parse_retry_after(response.headers.get("retry-after"))
        self.retried = 0

    @property
    def retryable(self) -> bool:
        return self.code in RETRYABLE or (self.code.startswith("http_") and self.status in (502, 503, 504))


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:  # an HTTP date
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def answer(response: httpx.Response) -> httpx.Response:
    if response.is_error:
        raise Problem(response)
    return response


def with_retries(attempt: Any) -> httpx.Response:
    """``attempt()`` again while it fails with a retryable problem, waiting Retry-After (or a short back-off)."""
    n = 1
    while True:
        try:
            return answer(attempt())
        except Problem as problem:
            problem.retried = n - 1
            wait = problem.retry_after if problem.retry_after is not None else 0.5 * 2 ** (n - 1)
            if not problem.retryable or n >= MAX_ATTEMPTS or wait > MAX_WAIT_S:
                raise
            print(f"retry: status={problem.status} code={problem.code} wait_s={wait:g} attempt={n}")
            time.sleep(wait)
            n += 1


class TokenSource:
    """Access tokens for one way of authenticating, cached until shortly before they expire."""

    def __init__(self, http: httpx.Client, method: str, token_endpoint: str) -> None:
        self.http = http
        self.method = method  # "client_secret_basic" or "private_key_jwt"
        self.audience = token_endpoint  # a client assertion's aud: the token endpoint URL from the metadata
        self.token: str | None = None
        self.expires_at = 0.0
        self.fetched = self.used = 0
        self.alg = ""
        if method == "private_key_jwt":
            key = load_pem_private_key(Path(PRIVATE_KEY_FILE or "").read_bytes(), password=None)
            if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
                raise ValueError("DANCU_PRIVATE_KEY_FILE: an EC P-256 or RSA private key is needed")
            self.key = key
            self.alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"

    def get(self) -> str:
        self.used += 1
        if self.token and time.time() < self.expires_at - REFRESH_MARGIN_S:
            return self.token
        body = with_retries(self._request).json()
        self.token = body["access_token"]
        self.expires_at = time.time() + body["expires_in"]
        self.fetched += 1
        alg = f" alg={self.alg}" if self.alg else ""
        print(f"token: method={self.method}{alg} fetched expires_in={body['expires_in']}")
        return body["access_token"]  # type: ignore[no-any-return]

    def invalidate(self) -> None:
        self.token = None

    def _request(self) -> httpx.Response:
        form = {"grant_type": "client_credentials"}
        if self.method == "client_secret_basic":
            return self.http.post("/oauth2/token", data=form, auth=(CLIENT_ID, CLIENT_SECRET))
        form["client_assertion_type"] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        form["client_assertion"] = self._assertion()  # a new one per attempt: each jti is single-use
        return self.http.post("/oauth2/token", data=form)

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": self.audience, "iat": now, "exp": now + 120}
        claims["jti"] = str(uuid.uuid4())
        headers = {"kid": KEY_ID} if KEY_ID else None
        return jwt.encode(claims, self.key, algorithm=self.alg, headers=headers)


class Gateway:
    """Citizen calls: the token, the purpose, problem handling and retries in one place."""

    def __init__(self, http: httpx.Client, tokens: TokenSource) -> None:
        self.http = http
        self.tokens = tokens

    def post(self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
        def attempt() -> httpx.Response:
            return self.http.post(
                path,
                json=body,
                headers={
                    "Authorization": f"Bearer {self.tokens.get()}",
                    "Accept-Language": "vi",  # problem titles in Vietnamese; "en" for English
                    "X-Purpose": PURPOSE,
                    "X-Request-Id": f"portal-{uuid.uuid4()}",  # your own id, echoed back and kept in the audit log
                    **(headers or {}),
                },
            )

        try:
            return with_retries(attempt)
        except Problem as problem:
            if problem.status != 401:
                raise
            self.tokens.invalidate()  # an expired or revoked token: fetch a new one once, then give up
            return with_retries(attempt)


def check_attestation(
    http: httpx.Client,
    jws: str,
    jwks: dict[str, Any],
    issuer: str,
    expected: dict[str, Any],
    sent: dict[str, str],
) -> tuple[str, dict[str, Any]]:
    """Checks a verification attestation (compact JWS, ES256) against the JWKS: signature, type, issuer, content,
    and that its input_hash is the hash of the values we sent (what a dossier keeps to prove what was checked)."""
    header = jwt.get_unverified_header(jws)
    if header.get("alg") != "ES256" or header.get("typ") != "verification+jwt":
        raise ValueError("not an attestation")
    keys = {key.get("kid"): key for key in jwks["keys"]}
    if header["kid"] not in keys:  # a key rotated in after we fetched the set: fetch it once more
        jwks["keys"] = http.get("/.well-known/jwks.json").json()["keys"]
        keys = {key.get("kid"): key for key in jwks["keys"]}
    jwk = keys[header["kid"]]
    if jwk.get("kty") != "EC" or jwk.get("crv") != "P-256":
        raise ValueError("no ES256 key with this kid")
    try:
        claims: dict[str, Any] = jwt.decode(
            jws,
            jwt.PyJWK(jwk, algorithm="ES256"),
            algorithms=["ES256"],
            issuer=issuer,
            options={"require": ["iss", "iat"], "verify_aud": False},
        )
    except jwt.InvalidSignatureError:
        raise ValueError("bad signature") from None
    for name, value in expected.items():
        if claims.get(name) != value:
            raise ValueError(f"{name} differs")
    # SHA-256 of the salt, then "name=value" lines: personal_id, then each checked field in order (text in NFC).
    lines = [
        f"{name}={unicodedata.normalize('NFC', sent[name])}\n"
        for name in ["personal_id", *claims["checked_fields"]]
    ]
    digest = hashlib.sha256(f"{claims['input_salt']}\n{''.join(lines)}".encode()).hexdigest()
    if digest != claims["input_hash"]:
        raise ValueError("input_hash is not the hash of what was sent")
    return header["kid"], claims


def report(problem: Problem) -> None:
    extra = f" fields={','.join(problem.fields)}" if problem.fields else ""
    if problem.errors:
        extra += " errors=" + ",".join(".".join(map(str, error["loc"])) for error in problem.errors)
    print(
        f"problem: status={problem.status} code={problem.code} retried={problem.retried}"
        f" request_id={problem.request_id}{extra}"
    )


def expect_problem(call: Any) -> None:
    try:
        call()
        print("problem: none")
    except Problem as problem:
        report(problem)


def main() -> None:
    if not CLIENT_ID:
        sys.exit("set DANCU_CLIENT_ID (and DANCU_CLIENT_SECRET and/or DANCU_PRIVATE_KEY_FILE)")
    with httpx.Client(base_url=GATEWAY, timeout=30) as http:
        metadata = http.get("/.well-known/oauth-authorization-server").json()
        jwks = http.get("/.well-known/jwks.json").json()
        print(f"gateway: {GATEWAY} issuer={metadata['issuer']}")

        # 1. Client secret: one token serves every call until shortly before it expires.
        by_secret = TokenSource(http, "client_secret_basic", metadata["token_endpoint"])
        gateway = Gateway(http, by_secret)

        verified = gateway.post("/v1/citizens/verify", RESIDENT, {"X-Dossier-Id": "HS-DEMO-0001"})
        result = verified.json()
        reason = "null" if result["reason"] is None else result["reason"]
        match = str(result["match"]).lower()
        print(f"verify: match={match} reason={reason} request_id={verified.headers['x-request-id']}")

        kid, claims = check_attestation(
            http,
            result["attestation"],
            jwks,
            metadata["issuer"],
            {
                "verification_id": result["verification_id"],
                "personal_id": RESIDENT["personal_id"],
                "match": result["match"],
            },
            RESIDENT,
        )
        print(
            f"attestation: valid kid={kid} verification_id={claims['verification_id']}"
            f" match={str(claims['match']).lower()} input_hash=checked"
        )

        record = gateway.post("/v1/citizens/lookup", {"personal_id": RESIDENT["personal_id"]})
        released = [name for name in record.json() if name != "_meta"]
        print(
            f"lookup: fields={len(released)} source={record.json()['_meta']['source']}"
            f" request_id={record.headers['x-request-id']}"
        )

        household = gateway.post("/v1/citizens/household", {"personal_id": RESIDENT["personal_id"]})
        members = len(household.json()["members"])
        print(f"household: members={members} request_id={household.headers['x-request-id']}")

        # 2. Problems: final answers are reported at once, never retried.
        expect_problem(lambda: gateway.post("/v1/citizens/lookup", {"personal_id": CANCELLED_ID}))
        expect_problem(
            lambda: gateway.post("/v1/citizens/verify", {"personal_id": "000000000000", "gender": "male"})
        )
        print(f"token: method={by_secret.method} fetched={by_secret.fetched} used={by_secret.used}")

        # 3. private_key_jwt: no shared secret on the wire; the assertion is signed with the portal's own key.
        if PRIVATE_KEY_FILE:
            by_key = TokenSource(http, "private_key_jwt", metadata["token_endpoint"])
            keyed = Gateway(http, by_key)
            again = keyed.post(
                "/v1/citizens/verify", {"personal_id": RESIDENT["personal_id"], "gender": "male"}
            )
            body = again.json()
            reason = "null" if body["reason"] is None else body["reason"]
            print(
                f"verify: match={str(body['match']).lower()} reason={reason}"
                f" request_id={again.headers['x-request-id']}"
            )
            keyed.post("/v1/citizens/household", {"personal_id": RESIDENT["personal_id"]})
            print(f"token: method={by_key.method} fetched={by_key.fetched} used={by_key.used}")
        else:
            print("token: method=private_key_jwt skipped (DANCU_PRIVATE_KEY_FILE is not set)")

        # 4. Rehearse an upstream failure against a sandbox gateway (DANCU_SANDBOX=true there).
        if SANDBOX_FAULT:
            expect_problem(
                lambda: gateway.post("/v1/citizens/verify", RESIDENT, {"X-Sandbox-Fault": SANDBOX_FAULT})
            )
        print("done")


if __name__ == "__main__":
    try:
        main()
    except Problem as failure:
        report(failure)
        sys.exit(1)
