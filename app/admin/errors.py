"""Errors of the admin API's four-eyes approval flow (the client, grant and purpose errors are the auth context's).

Hierarchy::

    GatewayError
    ├── NotFound
    │   └── ChangeNotFound            404 not_found
    ├── SelfApprovalForbidden         403 self_approval
    └── Conflict                      409 conflict
        ├── ChangeNotPending          409 conflict (already approved or rejected)
        └── ChangeOutdated            409 conflict (the target changed since the request)
"""

from __future__ import annotations

from app.auth.errors import Conflict
from app.errors import GatewayError, NotFound


class ChangeNotFound(NotFound):
    title_en = "Change not found"
    title_vi = "Không tìm thấy thay đổi"
    default_detail_en = "No pending or decided change has this change_id."
    default_detail_vi = "Không có thay đổi nào có change_id này."


class SelfApprovalForbidden(GatewayError):
    """Four eyes: the administrator who requested a change cannot approve it."""

    status = 403
    code = "self_approval"
    title_en = "Own change"
    title_vi = "Không được tự phê duyệt"
    default_detail_en = (
        "A change must be approved by a different administrator than the one who requested it."
    )
    default_detail_vi = "Thay đổi phải được một quản trị viên khác với người yêu cầu phê duyệt."


class ChangeNotPending(Conflict):
    default_detail_en = "The change has already been approved or rejected."
    default_detail_vi = "Thay đổi này đã được phê duyệt hoặc từ chối."


class ChangeOutdated(Conflict):
    default_detail_en = (
        "The client or its grant changed after this change was requested; reject it and request it again."
    )
    default_detail_vi = (
        "Ứng dụng khách hoặc quyền được cấp đã thay đổi sau khi yêu cầu này được tạo; "
        "hãy từ chối và gửi lại yêu cầu."
    )
