"""Errors of the forms context (docs/contract.md, 18. Forms: prefill and confirmation; 2. Error codes).

Hierarchy::

    GatewayError
    ├── FormNotFound                404 form_not_found
    └── Conflict
        └── FormExists              409 conflict
"""

from __future__ import annotations

from app.auth.errors import Conflict
from app.errors import GatewayError


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
