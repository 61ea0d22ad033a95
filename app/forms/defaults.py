"""Templates of real administrative forms, installed by ``dancu forms install-defaults``.

Each follows the printed form field by field, in its order and with its labels; a field the record cannot fill
(the office addressed, the request itself, the head of household's name and ID, which are another resident's
data) has no source and is left for the resident to write.

CT01, *Tờ khai thay đổi thông tin cư trú*, is the form of Thông tư 66/2023/TT-BCA (17/11/2023), which replaced
the CT01 of Thông tư 56/2021/TT-BCA: items 1-11 below, after "Kính gửi". The 2023 form dropped the old ID card
(CMND) number from items 4 and 9 and the residence and occupation items of the 2021 form.
"""

from __future__ import annotations

from typing import Any, Final

CT01_PURPOSE: Final = "CT01.thay-doi-cu-tru"
"""The purpose a CT01 prefill declares, registered by ``install-defaults`` when missing."""
CT01_PURPOSE_TITLE: Final = "Khai tờ khai thay đổi thông tin cư trú (mẫu CT01) trong thủ tục đăng ký cư trú"
CT01_LEGAL_BASIS: Final = "Luật Cư trú 2020; Thông tư 66/2023/TT-BCA, mẫu CT01"

CT01: Final[dict[str, Any]] = {
    "code": "CT01",
    "title": "Tờ khai thay đổi thông tin cư trú",
    "purpose": CT01_PURPOSE,
    "legal_basis": (
        "Mẫu CT01 ban hành kèm theo Thông tư 66/2023/TT-BCA ngày 17/11/2023 của Bộ trưởng Bộ Công an "
        "(thay thế mẫu CT01 của Thông tư 56/2021/TT-BCA)"
    ),
    "fields": [
        {"name": "addressee", "label": "Kính gửi", "source": None},
        {"name": "full_name", "label": "1. Họ, chữ đệm và tên", "source": "full_name", "format": "upper"},
        {
            "name": "date_of_birth",
            "label": "2. Ngày, tháng, năm sinh",
            "source": "date_of_birth",
            "format": "date_dmy",
        },
        {"name": "gender", "label": "3. Giới tính", "source": "gender", "format": "gender_vi"},
        {"name": "personal_id", "label": "4. Số định danh cá nhân", "source": "personal_id"},
        {"name": "phone", "label": "5. Số điện thoại liên hệ", "source": "phone"},
        {"name": "email", "label": "6. Email", "source": "email"},
        {"name": "head_full_name", "label": "7. Họ, chữ đệm và tên chủ hộ", "source": None},
        {
            "name": "relation_to_head",
            "label": "8. Mối quan hệ với chủ hộ",
            "source": "relation_to_head",
            "format": "relation_vi",
        },
        {"name": "head_personal_id", "label": "9. Số định danh cá nhân của chủ hộ", "source": None},
        {"name": "request", "label": "10. Nội dung đề nghị", "source": None},
        {
            "name": "members_changing",
            "label": "11. Những thành viên trong hộ gia đình cùng thay đổi",
            "source": None,
        },
    ],
}

DEFAULTS: Final = (CT01,)
"""Every default template."""
PURPOSES: Final = {CT01_PURPOSE: (CT01_PURPOSE_TITLE, CT01_LEGAL_BASIS)}
"""The purposes the default templates declare: code -> (title, legal basis)."""
