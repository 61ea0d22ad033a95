"""Errors of the operators context (docs/contract.md, section 15).

Hierarchy::

    GatewayError
    ├── NotFound
    │   └── OperatorNotFound          404 not_found
    ├── ValidationFailed              422 validation_failed (username, roles, password rules)
    └── Conflict                      409 conflict
        ├── OperatorExists            409 conflict
        └── LastAdminOperator         409 conflict
"""

from __future__ import annotations

from app.auth.errors import Conflict
from app.errors import FieldError, NotFound, ValidationFailed


class OperatorNotFound(NotFound):
    title_en = "Operator not found"
    title_vi = "Không tìm thấy cán bộ vận hành"
    default_detail_en = "No operator has this username."
    default_detail_vi = "Không có cán bộ vận hành nào có tên đăng nhập này."


class OperatorExists(Conflict):
    default_detail_en = "An operator with this username already exists."
    default_detail_vi = "Đã có cán bộ vận hành với tên đăng nhập này."


class LastAdminOperator(Conflict):
    default_detail_en = (
        "This is the last active operator holding `admin`: disabling it or taking `admin` from it would "
        "leave nobody able to administer the gateway from the console. Make another administrator first."
    )
    default_detail_vi = (
        "Đây là cán bộ cuối cùng đang hoạt động có vai trò `admin`: vô hiệu hóa hoặc bỏ vai trò này sẽ "
        "không còn ai quản trị được cổng từ bảng điều khiển. Hãy tạo một quản trị viên khác trước."
    )


def invalid(member: str, code: str, message: str) -> ValidationFailed:
    """A 422 naming one member (never its value)."""
    error: FieldError = {"loc": ["body", member], "code": code, "message": message}
    return ValidationFailed([error])
