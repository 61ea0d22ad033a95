"""Errors of the statistics endpoint (docs/contract.md, section 14 and Error codes).

Hierarchy::

    GatewayError
    └── ProvinceNotAllowed     403 province_not_allowed

Purpose refusals are the citizen endpoints' (``purpose_required``, ``purpose_not_allowed``).
"""

from __future__ import annotations

from app.errors import GatewayError


class ProvinceNotAllowed(GatewayError):
    status = 403
    code = "province_not_allowed"
    title_en = "Province not allowed"
    title_vi = "Tỉnh không thuộc phạm vi được cấp"
    default_detail_en = "The province is outside this client's grant."
    default_detail_vi = "Tỉnh được yêu cầu nằm ngoài phạm vi quyền được cấp của hệ thống."
