"""Errors of the citizen endpoints (docs/contract.md, Purpose of use, Citizens and Error codes).

Hierarchy::

    GatewayError
    ├── PurposeRequired        400 purpose_required
    ├── PurposeNotAllowed      403 purpose_not_allowed
    ├── EndUserRequired        400 end_user_required     (a grant with require_end_user, no X-End-User)
    ├── FieldNotAllowed        403 field_not_allowed     (+ fields: [...])
    ├── BatchTooLarge          413 batch_too_large
    ├── RateLimited            429 rate_limited          (+ Retry-After)
    │   └── SubjectQuotaExceeded  429 subject_quota_exceeded
    └── ServiceUnavailable
        └── LimitsUnavailable  503 limits_unavailable    (the shared rate-limit store cannot be reached)

A personal ID that is no personal ID is ``app.errors.InvalidPersonalId`` (the audit API refuses it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.errors import GatewayError, ServiceUnavailable


class PurposeRequired(GatewayError):
    status = 400
    code = "purpose_required"
    title_en = "Purpose of use required"
    title_vi = "Thiếu mục đích sử dụng"
    default_detail_en = "Every citizen request names its purpose of use in the X-Purpose header."
    default_detail_vi = "Mỗi yêu cầu về công dân phải nêu mục đích sử dụng trong tiêu đề X-Purpose."


class PurposeNotAllowed(GatewayError):
    status = 403
    code = "purpose_not_allowed"
    title_en = "Purpose of use not allowed"
    title_vi = "Mục đích sử dụng không được phép"
    default_detail_en = "The purpose is not registered or not in this client's grant."
    default_detail_vi = "Mục đích sử dụng chưa được đăng ký hoặc không thuộc quyền được cấp của hệ thống."


class EndUserRequired(GatewayError):
    """A grant with ``require_end_user`` and a call without ``X-End-User`` (citizen, statistics, confirmation)."""

    status = 400
    code = "end_user_required"
    title_en = "End user required"
    title_vi = "Thiếu người dùng cuối"
    default_detail_en = (
        "This client's grant requires every call to name the officer or account it is made for, in the "
        "X-End-User header."
    )
    default_detail_vi = (
        "Quyền được cấp của hệ thống yêu cầu mỗi yêu cầu nêu cán bộ hoặc tài khoản mà yêu cầu được thực hiện "
        "thay mặt, trong tiêu đề X-End-User."
    )


class FieldNotAllowed(GatewayError):
    status = 403
    code = "field_not_allowed"
    title_en = "Field not allowed"
    title_vi = "Trường thông tin không được phép"
    default_detail_en = "Some requested fields are outside this client's grant; see `fields`."
    default_detail_vi = "Một số trường thông tin được yêu cầu nằm ngoài quyền được cấp; xem `fields`."

    def __init__(self, fields: Sequence[str]) -> None:
        super().__init__()
        self.fields = sorted(fields)

    def extensions(self) -> dict[str, Any]:
        return {"fields": self.fields}


class BatchTooLarge(GatewayError):
    status = 413
    code = "batch_too_large"
    title_en = "Batch too large"
    title_vi = "Lô yêu cầu quá lớn"
    default_detail_en = "The batch has more items than the gateway accepts."
    default_detail_vi = "Lô yêu cầu có nhiều phần tử hơn mức cổng kết nối chấp nhận."

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"A batch may hold at most {limit} items.", detail_vi=f"Mỗi lô tối đa {limit} phần tử."
        )


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"
    title_en = "Too many requests"
    title_vi = "Quá nhiều yêu cầu"
    default_detail_en = "The client's request rate limit is used up; retry after the time given."
    default_detail_vi = "Đã vượt hạn mức số yêu cầu của hệ thống; vui lòng thử lại sau thời gian cho biết."

    def __init__(self, retry_after: int) -> None:
        super().__init__()
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class SubjectQuotaExceeded(RateLimited):
    code = "subject_quota_exceeded"
    title_en = "Daily resident quota used up"
    title_vi = "Đã hết hạn mức số công dân trong ngày"
    default_detail_en = "The client has reached the number of different residents it may query today (UTC)."
    default_detail_vi = "Hệ thống đã tra cứu đủ số công dân khác nhau được phép trong ngày (giờ UTC)."


class VerificationAttemptsExceeded(RateLimited):
    code = "verification_attempts_exceeded"
    title_en = "Verification attempts used up"
    title_vi = "Đã hết số lần xác thực sai"
    default_detail_en = (
        "This resident's verifications gave this client too many mismatching answers today (UTC); "
        "none is checked again before midnight UTC."
    )
    default_detail_vi = (
        "Hệ thống đã nhận quá nhiều kết quả không khớp khi xác thực công dân này trong ngày (giờ UTC); "
        "không kiểm tra thêm cho đến hết ngày."
    )


class LimitsUnavailable(ServiceUnavailable):
    code = "limits_unavailable"
    title_en = "Rate limits unavailable"
    title_vi = "Không kiểm tra được hạn mức"
    default_detail_en = "The shared rate-limit store cannot be reached; no data is released until it can."
    default_detail_vi = "Không kết nối được kho hạn mức dùng chung; chưa thể cung cấp dữ liệu."
