"""Upstream failures, as the caller sees them (docs/contract.md, Error codes).

Hierarchy::

    GatewayError
    ├── UpstreamBadResponse           502 upstream_bad_response       redirect, oversized or malformed body
    │   └── UpstreamIdentityMismatch  502 upstream_identity_mismatch  a record for another ID
    ├── ServiceUnavailable
    │   └── UpstreamUnavailable       503 upstream_unavailable        error status, connection failure, breaker open
    │       └── BreakerOpen           503 upstream_unavailable        (the circuit breaker refuses calls: /readyz)
    ├── UpstreamTimeout               504 upstream_timeout            the call's overall deadline passed
    └── NoRegisteredContact           409 no_registered_contact       no mobile number on the resident's record
"""

from __future__ import annotations

from app.errors import GatewayError, ServiceUnavailable


class UpstreamBadResponse(GatewayError):
    status = 502
    code = "upstream_bad_response"
    title_en = "Bad response from the population database"
    title_vi = "CSDL quốc gia về dân cư trả lời không hợp lệ"
    default_detail_en = "The population database sent an answer the gateway cannot use."
    default_detail_vi = "CSDL quốc gia về dân cư trả về dữ liệu mà cổng kết nối không sử dụng được."

    def __init__(
        self, detail: str | None = None, *, detail_vi: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(detail, detail_vi=detail_vi)
        self.reason = reason
        """For logs and tests only, never the answer: what was wrong (``redirect``, ``oversized``,
        ``malformed_json``, ``shape:<wire path>``, ``identity``), naming no value."""


class UpstreamIdentityMismatch(UpstreamBadResponse):
    code = "upstream_identity_mismatch"
    title_en = "The population database answered for another resident"
    title_vi = "CSDL quốc gia về dân cư trả về thông tin của người khác"
    default_detail_en = "The record returned does not belong to the resident asked for; nothing was released."
    default_detail_vi = "Bản ghi trả về không thuộc về công dân được hỏi; không dữ liệu nào được cung cấp."


class UpstreamUnavailable(ServiceUnavailable):
    code = "upstream_unavailable"
    title_en = "Population database unavailable"
    title_vi = "CSDL quốc gia về dân cư tạm thời không khả dụng"
    default_detail_en = "The population database cannot be reached right now; try again later."
    default_detail_vi = "Hiện không kết nối được CSDL quốc gia về dân cư; vui lòng thử lại sau."

    def __init__(self, detail: str | None = None, *, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class BreakerOpen(UpstreamUnavailable):
    """The adapter's circuit breaker is open: every call fails at once until ``retry_after`` seconds pass."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the circuit breaker is open", retry_after=retry_after)


class UpstreamTimeout(GatewayError):
    status = 504
    code = "upstream_timeout"
    title_en = "Population database timed out"
    title_vi = "CSDL quốc gia về dân cư phản hồi quá thời gian"
    default_detail_en = "The population database did not answer in time."
    default_detail_vi = "CSDL quốc gia về dân cư không trả lời kịp thời hạn."


class NoRegisteredContact(GatewayError):
    """The resident has no mobile number on record: a one-time code cannot be sent."""

    status = 409
    code = "no_registered_contact"
    title_en = "No registered mobile number"
    title_vi = "Không có số điện thoại đã đăng ký"
    default_detail_en = (
        "The population database holds no mobile number for this resident; the declaration cannot be "
        "confirmed by a one-time code."
    )
    default_detail_vi = (
        "CSDL quốc gia về dân cư không có số điện thoại của công dân này; không thể xác nhận tờ khai bằng mã "
        "một lần."
    )
