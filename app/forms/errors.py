"""Errors of the forms context (docs/contract.md, 18. Forms: prefill and confirmation; 2. Error codes).

Hierarchy::

    GatewayError
    ├── FormNotFound                404 form_not_found
    ├── NotFound
    │   └── ConfirmationNotFound    404 not_found               (unknown, or another client's)
    ├── Conflict
    │   ├── FormExists              409 conflict
    │   └── ConfirmationDone        409 conflict                (already confirmed)
    ├── ConfirmationCodeInvalid     400 confirmation_code_invalid  (+ attempts_left)
    ├── ConfirmationLocked          423 confirmation_locked
    ├── ConfirmationExpired         410 confirmation_expired
    └── RateLimited
        └── ResendRefused           429 rate_limited            (+ Retry-After)
"""

from __future__ import annotations

from typing import Any

from app.auth.errors import Conflict
from app.citizens.errors import RateLimited
from app.errors import GatewayError, NotFound


class FormNotFound(GatewayError):
    status = 404
    code = "form_not_found"
    title_en = "Form not found"
    title_vi = "Không tìm thấy mẫu tờ khai"
    default_detail_en = "No form template with this code is defined (or it was retired)."
    default_detail_vi = "Chưa có mẫu tờ khai với mã này (hoặc mẫu đã ngừng sử dụng)."


class FormExists(Conflict):
    default_detail_en = "A form template with this code is already defined; replace it with PUT."
    default_detail_vi = "Mẫu tờ khai với mã này đã được định nghĩa; dùng PUT để thay thế."


class ConfirmationNotFound(NotFound):
    default_detail_en = "No confirmation with this id was started by this client."
    default_detail_vi = "Không có yêu cầu xác nhận nào với mã này do hệ thống này tạo."


class ConfirmationDone(Conflict):
    default_detail_en = "This confirmation is already confirmed; its receipt was in that answer."
    default_detail_vi = "Yêu cầu xác nhận này đã được xác nhận; biên nhận đã nằm trong câu trả lời đó."


class ConfirmationCodeInvalid(GatewayError):
    status = 400
    code = "confirmation_code_invalid"
    title_en = "Wrong confirmation code"
    title_vi = "Mã xác nhận không đúng"
    default_detail_en = "The code is not the one sent to the resident's mobile; see `attempts_left`."
    default_detail_vi = "Mã không đúng với mã đã gửi tới số điện thoại của công dân; xem `attempts_left`."

    def __init__(self, attempts_left: int) -> None:
        super().__init__()
        self.attempts_left = attempts_left

    def extensions(self) -> dict[str, Any]:
        return {"attempts_left": self.attempts_left}


class ConfirmationLocked(GatewayError):
    status = 423
    code = "confirmation_locked"
    title_en = "Confirmation locked"
    title_vi = "Yêu cầu xác nhận đã bị khóa"
    default_detail_en = "Five wrong codes were entered; start a new confirmation."
    default_detail_vi = "Đã nhập sai mã năm lần; hãy tạo yêu cầu xác nhận mới."


class ConfirmationExpired(GatewayError):
    status = 410
    code = "confirmation_expired"
    title_en = "Confirmation expired"
    title_vi = "Yêu cầu xác nhận đã hết hạn"
    default_detail_en = "The code was valid for 5 minutes; start a new confirmation."
    default_detail_vi = "Mã chỉ có hiệu lực 5 phút; hãy tạo yêu cầu xác nhận mới."


class ResendRefused(RateLimited):
    """A resend too soon after the last code (60 s apart) or after the third one."""

    def __init__(self, retry_after: int, *, too_many: bool) -> None:
        super().__init__(retry_after)
        if too_many:
            self.detail = "A code may be sent again at most 3 times; start a new confirmation."
            self.detail_vi = "Chỉ được gửi lại mã tối đa 3 lần; hãy tạo yêu cầu xác nhận mới."
        else:
            self.detail = "A code may be sent again 60 seconds after the last one; see Retry-After."
            self.detail_vi = "Chỉ được gửi lại mã sau 60 giây kể từ lần gửi trước; xem Retry-After."
