"""The published OpenAPI document says what the gateway really does, beyond what FastAPI derives.

``problem_openapi`` (``app.problems``) already files every error under ``application/problem+json``; this
module adds the rest, applied once when the document is first built (``app.main``):

* **Alternative scopes.** A scope alias accepts any one of its scopes (``require_scope("metrics.read",
  "admin", "audit.read")``), but FastAPI writes them as one requirement, which OpenAPI reads as "all of them".
  Each becomes its own requirement object, so the list reads "any one of".
* **What a portal developer reads first**: ``servers``, ``info.description`` and tag descriptions in Vietnamese
  and English, ``X-Purpose`` marked required (its absence is 400 ``purpose_required``, not a 422), the response
  headers (``X-Request-Id`` on every answer, ``Retry-After`` on 429 and 503, ``WWW-Authenticate`` on 401).
* **Examples**: for the citizen and token operations a request and an answer; for every problem response one
  example per code it may carry, built from the error classes themselves (so titles never drift).
"""

from __future__ import annotations

import re
from typing import Any

from app.errors import GatewayError
from app.problems import PROBLEM_MEDIA_TYPE, problem_type

_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for path_item in document.get("paths", {}).values()
        for method, operation in path_item.items()
        if method in _METHODS and isinstance(operation, dict)
    ]


def alternative_scopes(document: dict[str, Any]) -> dict[str, Any]:
    """Split every multi-scope security requirement into one requirement per scope (any one suffices)."""
    for operation in _operations(document):
        security = operation.get("security")
        if not security:
            continue
        split: list[dict[str, list[str]]] = []
        for requirement in security:
            if len(requirement) == 1:
                ((scheme, scopes),) = requirement.items()
                if len(scopes) > 1:
                    split.extend({scheme: [scope]} for scope in scopes if {scheme: [scope]} not in split)
                    continue
            if requirement not in split:
                split.append(requirement)
        operation["security"] = split
    return document


DESCRIPTION = """\
**Cổng kết nối dancu-gateway** cho phép các hệ thống của tỉnh (cổng dịch vụ công, phần mềm một cửa) xác thực
thông tin công dân và tra cứu dữ liệu dân cư từ CSDL quốc gia về dân cư, có kiểm soát quyền truy cập và ghi nhật ký
kiểm toán cho mọi truy cập. Mỗi lời gọi về công dân phải nêu mục đích sử dụng (`X-Purpose`) và có thể nêu số hồ sơ
(`X-Dossier-Id`); số định danh cá nhân không bao giờ nằm trong URL. Lỗi trả về theo RFC 9457
(`application/problem+json`) với `code` ổn định; khi cần hỗ trợ, hãy gửi kèm `X-Request-Id` của câu trả lời.
Gateway chạy ở chế độ thử nghiệm (`DANCU_SANDBOX=true`, như `make run` và môi trường staging) nhận header
`X-Sandbox-Fault` (ví dụ `status=503`, `malformed`, `latency=3000`) để cổng diễn tập lỗi của CSDL quốc gia.

**dancu-gateway** lets provincial systems (public-service portals, one-stop-shop software) verify residents'
identity and read population data from the national population database, with access control and an audit event
for every access. Every citizen call names its purpose of use (`X-Purpose`) and may name its dossier
(`X-Dossier-Id`); a personal ID never appears in a URL. Errors are RFC 9457 problems (`application/problem+json`)
with a stable `code`; when asking for support, quote the answer's `X-Request-Id`. A sandbox gateway
(`DANCU_SANDBOX=true`, as `make run` and the staging stack are) takes `X-Sandbox-Fault` (e.g. `status=503`,
`malformed`, `latency=3000`) on any call, so a portal rehearses the national database's failures (502, 503, 504).

Authentication: OAuth 2.0 client credentials at `/oauth2/token` (client secret or `private_key_jwt`); tokens
are Bearer JWTs. The contract in words: `docs/contract.md`; the portal guide: `docs/integration.md`.
"""

SERVERS = [
    {
        "url": "http://127.0.0.1:8000",
        "description": "`make run` / `dancu serve` on this machine (development)",
    },
]

TAG_DESCRIPTIONS = {
    "citizens": "Công dân: xác thực, xác thực theo lô, tra cứu, hộ gia đình. / Citizens: verify, batch verify, "
    "lookup, household (scopes `citizen.verify`, `citizen.read`, `household.read`).",
    "auth": "Mã truy cập OAuth 2.0 và khóa công khai. / OAuth 2.0 access tokens, the JWKS and the server "
    "metadata (no token needed).",
    "admin": "Quản trị ứng dụng khách, quyền, mục đích sử dụng và khóa ký. / Administration of clients, grants, "
    "purposes and signing keys (scope `admin`).",
    "audit": "Nhật ký kiểm toán: tìm kiếm, xuất, thống kê, báo cáo truy cập, điểm kiểm tra. / The audit log: "
    "search, export, counts, access reports, checkpoints and integrity (scope `audit.read`).",
    "health": "Tình trạng hoạt động và số liệu giám sát. / Liveness, readiness and metrics.",
    "statistics": "Thống kê dân số (có kiểm soát tiết lộ). / Population statistics with disclosure control "
    "(scope `stats.read`).",
    "forms": "Điền sẵn biểu mẫu và xác nhận của công dân. / Form prefill and residents' confirmations.",
}
_GENERIC_TAG = "Xem docs/contract.md. / See docs/contract.md."

HEADERS = {
    "X-Request-Id": {
        "description": "Mã yêu cầu: giá trị của bên gọi nếu hợp lệ, nếu không là mã mới; hãy gửi kèm khi cần hỗ "
        "trợ. / The request id: the caller's own when it is 1-64 characters of `[A-Za-z0-9._-]`, else a new "
        "one; quote it to support.",
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
        "example": "4f0c2b8e-portal-7781",
    },
    "Retry-After": {
        "description": "Số giây nên chờ trước khi thử lại. / Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
        "example": 5,
    },
    "WWW-Authenticate": {
        "description": 'RFC 6750: `Bearer`, with `error="invalid_token"` when a token was sent.',
        "schema": {"type": "string"},
        "example": 'Bearer error="invalid_token"',
    },
}

PURPOSE = "1.001234.000.00.00.H12"
END_USER = "lan.nguyen@gialai.gov.vn"
"""An officer of the calling portal, as `X-End-User` names one."""
PERSON = "052068000108"
_ATTESTATION = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6IksxIiwidHlwIjoidmVyaWZpY2F0aW9uK2p3dCJ9.eyJtYXRjaCI6dHJ1ZX0.c2lnbmF0dXJl"
)
_ADDRESS = {
    "province_code": "52",
    "province_name": "Gia Lai",
    "ward_code": "21583",
    "ward_name": "Phường Quy Nhơn",
    "detail": "Số 12 Lê Lợi",
    "text": "Số 12 Lê Lợi, Phường Quy Nhơn, Tỉnh Gia Lai",
}
_VERIFIED = {
    "verification_id": "0b9f6c1e-6f5d-4c0e-9a53-8d0f3f1f2a11",
    "match": True,
    "reason": None,
    "fields": {
        "full_name": {"result": "match", "tier": "exact", "score": 100},
        "date_of_birth": {"result": "match", "precision": "day"},
        "gender": {"result": "not_checked"},
    },
    "attestation": _ATTESTATION,
}
EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/citizens/verify"): {
        "request": {"personal_id": PERSON, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"},
        "response": _VERIFIED,
    },
    ("post", "/v1/citizens/verify/batch"): {
        "request": {
            "items": [
                {"personal_id": PERSON, "full_name": "Nguyễn Văn Thành", "date_of_birth": "1968-04-15"},
                {"personal_id": "123", "gender": "male"},
            ]
        },
        "response": {
            "results": [
                {"index": 0, **_VERIFIED},
                {
                    "index": 1,
                    "problem": {
                        "type": problem_type("invalid_personal_id"),
                        "title": "Invalid personal ID",
                        "status": 422,
                        "code": "invalid_personal_id",
                    },
                },
            ]
        },
    },
    ("post", "/v1/citizens/lookup"): {
        "request": {"personal_id": PERSON, "fields": ["full_name", "date_of_birth", "current_address"]},
        "response": {
            "personal_id": PERSON,
            "full_name": "Nguyễn Văn Thành",
            "date_of_birth": "1968-04-15",
            "current_address": _ADDRESS,
            "_meta": {
                "source": "csdlqg",
                "retrieved_at": "2026-12-05T01:30:00Z",
                "record_updated_at": "2026-11-20T08:00:00Z",
            },
        },
    },
    ("post", "/v1/citizens/household"): {
        "request": {"personal_id": PERSON},
        "response": {
            "household_id": "525360708430",
            "head": {"personal_id": PERSON, "full_name": "Nguyễn Văn Thành"},
            "members": [
                {"personal_id": PERSON, "full_name": "Nguyễn Văn Thành", "relation_to_head": "head"},
                {"personal_id": "052170000109", "full_name": "Trần Thị Mai", "relation_to_head": "spouse"},
            ],
        },
    },
    ("post", "/oauth2/token"): {
        "request": {"grant_type": "client_credentials", "scope": "citizen.verify citizen.read"},
        "response": {
            "access_token": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCJ9.eyJzdWIiOiJjXzEyMyJ9.c2ln",
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "citizen.verify citizen.read",
        },
    },
    ("get", "/healthz"): {"response": {"status": "ok"}},
    ("get", "/.well-known/jwks.json"): {
        "response": {
            "keys": [
                {
                    "kty": "EC",
                    "crv": "P-256",
                    "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                    "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
                    "kid": "Xz4hN8B0pYx8qk2m3S7w1tq9Vv6cQe0aJrLhUoPzK4E",
                    "alg": "ES256",
                    "use": "sig",
                }
            ]
        }
    },
    ("get", "/.well-known/oauth-authorization-server"): {
        "response": {
            "issuer": "https://dancu.gialai.gov.vn",
            "token_endpoint": "https://dancu.gialai.gov.vn/oauth2/token",
            "jwks_uri": "https://dancu.gialai.gov.vn/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "private_key_jwt",
            ],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "scopes_supported": ["citizen.verify", "citizen.read", "household.read"],
            "audience": "dancu-gateway",
        }
    },
    ("get", "/readyz"): {
        "response": {
            "status": "ready",
            "checks": {"database": "ok", "backend": "ok", "limits": "ok", "audit": "ok"},
        }
    },
}


def error_classes() -> dict[str, type[GatewayError]]:
    """Every problem code the gateway's error classes define, with the class that defines it first."""
    found: dict[str, type[GatewayError]] = {GatewayError.code: GatewayError}
    pending: list[type[GatewayError]] = [GatewayError]
    while pending:
        for sub in pending.pop(0).__subclasses__():
            found.setdefault(sub.code, sub)
            pending.append(sub)
    return found


def problem_example(error: type[GatewayError]) -> dict[str, Any]:
    """An example problem body for ``error`` (English; ``Accept-Language: vi`` answers in Vietnamese)."""
    body: dict[str, Any] = {
        "type": problem_type(error.code),
        "title": error.title_en,
        "status": error.status,
        "detail": error.default_detail_en,
        "code": error.code,
        "request_id": "4f0c2b8e-portal-7781",
    }
    if error.status == 422:
        body["errors"] = [{"loc": ["body", "personal_id"], "code": "missing", "message": "Field required."}]
    if error.code == "field_not_allowed":
        body["fields"] = ["ethnicity"]
    return body


_CODE_IN_DESCRIPTION = re.compile(r"`([a-z_]+)`:")


def documented(document: dict[str, Any]) -> dict[str, Any]:
    """servers, info.description, tags, required X-Purpose, response headers, examples."""
    document["servers"] = SERVERS
    document.setdefault("info", {})["description"] = DESCRIPTION
    used = sorted({tag for operation in _operations(document) for tag in operation.get("tags", [])})
    document["tags"] = [{"name": tag, "description": TAG_DESCRIPTIONS.get(tag, _GENERIC_TAG)} for tag in used]
    components = document.setdefault("components", {})
    components.setdefault("headers", {}).update(HEADERS)
    errors = error_classes()
    # Every problem code, also those any route may answer (405, 413, 500, ...): one named example each.
    components.setdefault("examples", {}).update(
        {
            f"problem_{code}": {
                "summary": f"{error.status} {error.title_en}",
                "value": problem_example(error),
            }
            for code, error in sorted(errors.items())
        }
    )
    for path, path_item in document.get("paths", {}).items():
        for method, operation in path_item.items():
            if method not in _METHODS or not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter.get("name") == "X-Purpose":
                    parameter["required"] = True
                    # No length in the schema: a route that checks the header's length before the token
                    # answers 422 there, and a negative test of "no token" must still meet its 401 first.
                    parameter["schema"] = {"type": "string"}
                    parameter["description"] = (
                        "Mã mục đích sử dụng đã đăng ký (registered purpose of use code, 1-64 characters of "
                        "`A-Z a-z 0-9 . _ -`); missing: 400 `purpose_required`, not registered or not granted: "
                        "403 `purpose_not_allowed`."
                    )
                    parameter["example"] = PURPOSE
                elif parameter.get("in") == "header" and parameter.get("name") == "X-End-User":
                    parameter["example"] = END_USER
            example = EXAMPLES.get((method, path), {})
            if "request" in example:
                for media in operation.get("requestBody", {}).get("content", {}).values():
                    media["example"] = example["request"]
            for status, response in operation.get("responses", {}).items():
                headers = response.setdefault("headers", {})
                headers["X-Request-Id"] = {"$ref": "#/components/headers/X-Request-Id"}
                if status in ("429", "503"):
                    headers["Retry-After"] = {"$ref": "#/components/headers/Retry-After"}
                if status == "401":
                    headers["WWW-Authenticate"] = {"$ref": "#/components/headers/WWW-Authenticate"}
                content = response.get("content", {})
                if status.startswith("2") and "response" in example:
                    for media in content.values():
                        media["example"] = example["response"]
                problem = content.get(PROBLEM_MEDIA_TYPE)
                if problem is not None:
                    codes = _CODE_IN_DESCRIPTION.findall(response.get("description", ""))
                    examples = {
                        code: {"summary": errors[code].title_en, "value": problem_example(errors[code])}
                        for code in codes
                        if code in errors
                    }
                    if examples:
                        problem["examples"] = examples
    return document


def gateway_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Every refinement of this module, in order."""
    return documented(alternative_scopes(document))
