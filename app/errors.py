"""The gateway's errors: domain classes that carry their HTTP status, stable code and titles.

Code below the routers raises these and nothing else HTTP-shaped; ``app.problems`` is the one place that
renders them (``application/problem+json``, Vietnamese or English). Feature packages add their own
subclasses in their ``errors.py``. The codes are the catalogue of docs/contract.md, Error codes
(``tests/test_docs.py`` keeps the two equal); a code, once published, never changes.

Hierarchy::

    GatewayError
    ├── BadRequest                    400 bad_request
    ├── InvalidToken                  401 invalid_token        (+ WWW-Authenticate: Bearer)
    ├── InsufficientScope             403 insufficient_scope
    ├── NotFound                      404 not_found
    ├── MethodNotAllowed              405 method_not_allowed
    ├── RequestTimeout                408 request_timeout      (answered by app.server, not a route)
    ├── PayloadTooLarge               413 payload_too_large
    ├── ValidationFailed              422 validation_failed    (+ errors: [{loc, code, message}])
    │   └── InvalidPersonalId         422 invalid_personal_id  (a citizen request's or an audit search's)
    ├── InternalError                 500 internal_error
    └── ServiceUnavailable            503 service_unavailable
        └── NotReady                  503 not_ready            (+ checks: {name: "ok" | "failed"})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypedDict


class FieldError(TypedDict):
    """One item of a validation problem's ``errors``: where, what kind, and a message that names no value."""

    loc: list[str | int]
    code: str
    message: str


class GatewayError(Exception):
    """Root of every error the gateway answers on purpose.

    The class names the status, the stable ``code``, both titles and default details; an instance may give a
    more precise ``detail`` (English) and ``detail_vi``. Neither may contain personal data or secrets.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    title_en: ClassVar[str] = "Internal error"
    title_vi: ClassVar[str] = "Lỗi hệ thống"
    default_detail_en: ClassVar[str] = "The gateway could not complete the request."
    default_detail_vi: ClassVar[str] = "Cổng kết nối không thể hoàn tất yêu cầu."

    def __init__(self, detail: str | None = None, *, detail_vi: str | None = None) -> None:
        self.detail = detail if detail is not None else self.default_detail_en
        self.detail_vi = detail_vi if detail_vi is not None else self.default_detail_vi
        super().__init__(self.detail)

    def headers(self) -> dict[str, str]:
        """Response headers this error adds (``WWW-Authenticate``, ``Retry-After``, ``Allow``...)."""
        return {}

    def extensions(self) -> dict[str, Any]:
        """Members added to the problem body besides the standard ones."""
        return {}


class BadRequest(GatewayError):
    status = 400
    code = "bad_request"
    title_en = "Bad request"
    title_vi = "Yêu cầu không hợp lệ"
    default_detail_en = "The request could not be read."
    default_detail_vi = "Không đọc được yêu cầu."


class InvalidToken(GatewayError):
    """A missing, malformed, expired or revoked access token."""

    status = 401
    code = "invalid_token"
    title_en = "Invalid access token"
    title_vi = "Mã truy cập không hợp lệ"
    default_detail_en = "A valid Bearer access token is required."
    default_detail_vi = "Cần có mã truy cập Bearer hợp lệ."

    def __init__(
        self, detail: str | None = None, *, detail_vi: str | None = None, token_sent: bool = True
    ) -> None:
        super().__init__(detail, detail_vi=detail_vi)
        self.token_sent = token_sent

    def headers(self) -> dict[str, str]:
        # RFC 6750 §3.1: name the error only when the caller actually sent a token.
        return {"WWW-Authenticate": 'Bearer error="invalid_token"' if self.token_sent else "Bearer"}


class InsufficientScope(GatewayError):
    status = 403
    code = "insufficient_scope"
    title_en = "Insufficient scope"
    title_vi = "Không đủ phạm vi truy cập"
    default_detail_en = "The access token does not carry the scope this operation needs."
    default_detail_vi = "Mã truy cập không có phạm vi cần cho thao tác này."


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    title_en = "Not found"
    title_vi = "Không tìm thấy"
    default_detail_en = "Nothing was found here."
    default_detail_vi = "Không tìm thấy nội dung được yêu cầu."


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"
    title_en = "Method not allowed"
    title_vi = "Phương thức không được hỗ trợ"
    default_detail_en = "This path does not accept this HTTP method."
    default_detail_vi = "Đường dẫn này không hỗ trợ phương thức HTTP đã dùng."

    def __init__(self, allow: str | None = None) -> None:
        super().__init__()
        self.allow = allow

    def headers(self) -> dict[str, str]:
        return {"Allow": self.allow} if self.allow else {}


class RequestTimeout(GatewayError):
    """A request body that stalled: no byte of it for ``DANCU_HEADER_TIMEOUT_SECONDS`` (``app.server``)."""

    status = 408
    code = "request_timeout"
    title_en = "Request timeout"
    title_vi = "Hết thời gian chờ yêu cầu"
    default_detail_en = "The request body stopped arriving; send the whole request without pausing."
    default_detail_vi = "Phần thân yêu cầu ngừng được gửi; hãy gửi toàn bộ yêu cầu liên tục."


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"
    title_en = "Payload too large"
    title_vi = "Dữ liệu gửi lên quá lớn"
    default_detail_en = "The request body is larger than the gateway accepts."
    default_detail_vi = "Nội dung yêu cầu lớn hơn mức cổng kết nối chấp nhận."

    def __init__(self, limit_bytes: int | None = None) -> None:
        if limit_bytes is None:
            super().__init__()
        else:
            super().__init__(
                f"The request body is larger than {limit_bytes} bytes.",
                detail_vi=f"Nội dung yêu cầu vượt quá {limit_bytes} byte.",
            )


MAX_ERRORS = 20
"""The most ``errors`` a validation problem lists (a batch of 250,000 bad items answered 21.6 MB of them)."""


class ValidationFailed(GatewayError):
    """The request does not match its schema; ``errors`` says where, never with the submitted value."""

    status = 422
    code = "validation_failed"
    title_en = "Validation failed"
    title_vi = "Dữ liệu không hợp lệ"
    default_detail_en = "The request does not match the expected schema; see `errors`."
    default_detail_vi = "Yêu cầu không đúng lược đồ dữ liệu; xem `errors`."

    def __init__(
        self,
        errors: Sequence[FieldError] = (),
        detail: str | None = None,
        *,
        detail_vi: str | None = None,
        more: int = 0,
    ) -> None:
        """``errors`` beyond the first ``MAX_ERRORS`` are left out and counted in ``errors_truncated``, as
        are ``more`` errors the caller did not even list (docs/contract.md, Conventions)."""
        super().__init__(detail, detail_vi=detail_vi)
        self.errors = list(errors[:MAX_ERRORS])
        self.truncated = max(0, len(errors) - MAX_ERRORS) + more

    def extensions(self) -> dict[str, Any]:
        if self.truncated:
            return {"errors": self.errors, "errors_truncated": self.truncated}
        return {"errors": self.errors}


class InvalidPersonalId(ValidationFailed):
    code = "invalid_personal_id"
    title_en = "Invalid personal ID"
    title_vi = "Số định danh cá nhân không hợp lệ"
    default_detail_en = "A personal ID is 12 ASCII digits starting with one of the 63 province codes."
    default_detail_vi = "Số định danh cá nhân gồm 12 chữ số, bắt đầu bằng một trong 63 mã tỉnh."

    def __init__(self, loc: Sequence[str | int] = ("body", "personal_id")) -> None:
        error: FieldError = {
            "loc": list(loc),
            "code": "invalid_personal_id",
            "message": self.default_detail_en,
        }
        super().__init__([error])


class InternalError(GatewayError):
    """Anything unexpected: the answer says nothing more, the log has the request id."""


class ServiceUnavailable(GatewayError):
    """A dependency is down; the feature-specific 503s (upstream, limits, audit) derive from this.

    Every 503 carries ``Retry-After`` (docs/contract.md, Conventions): ``retry_after`` when the gateway knows
    when to try again (the breaker's cool-down, the upstream's own header), else ``DEFAULT_RETRY_AFTER``.
    """

    status = 503
    code = "service_unavailable"
    title_en = "Service unavailable"
    title_vi = "Dịch vụ tạm thời không khả dụng"
    default_detail_en = "A service the gateway depends on is unavailable; try again later."
    default_detail_vi = "Một dịch vụ mà cổng kết nối phụ thuộc đang không khả dụng; vui lòng thử lại sau."
    DEFAULT_RETRY_AFTER: ClassVar[int] = 5

    retry_after: int | None = None

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, self.retry_after or self.DEFAULT_RETRY_AFTER))}


class NotReady(ServiceUnavailable):
    """``/readyz``: at least one readiness check failed."""

    code = "not_ready"
    title_en = "Not ready"
    title_vi = "Chưa sẵn sàng"
    default_detail_en = "At least one readiness check failed; see `checks`."
    default_detail_vi = "Có ít nhất một mục kiểm tra sẵn sàng không đạt; xem `checks`."

    def __init__(
        self,
        checks: Mapping[str, str],
        *,
        reasons_en: Sequence[str] = (),
        reasons_vi: Sequence[str] = (),
        retry_after: int | None = None,
    ) -> None:
        """``reasons_*``: why some checks failed, for the operator (appended to ``detail``)."""
        super().__init__(
            " ".join([self.default_detail_en, *(r + "." for r in reasons_en)]),
            detail_vi=" ".join([self.default_detail_vi, *(r + "." for r in reasons_vi)]),
        )
        self.checks = dict(checks)
        self.retry_after = retry_after

    def extensions(self) -> dict[str, Any]:
        return {"checks": self.checks}
