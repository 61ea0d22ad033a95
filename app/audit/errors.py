"""The audit context's errors.

Hierarchy::

    GatewayError
    ├── ValidationFailed
    │   └── InvalidCursor              422 validation_failed (a cursor this query did not hand out)
    └── ServiceUnavailable
        └── AuditUnavailable           503 audit_unavailable (the access could not be recorded)

    StoreUnavailable                   an append failed before it reached its records (the store's fault)
    NotCanonicalisable (ValueError)    a value the canonical form of an event does not define
    CheckpointKeyError (ValueError)    the checkpoint key cannot be used
    CheckpointFileError (ValueError)   a checkpoint file given to the verifier cannot be read
"""

from __future__ import annotations

from app.errors import ServiceUnavailable, ValidationFailed


class NotCanonicalisable(ValueError):
    """A value the canonical form does not define (a float, a naive timestamp, a non-string key...)."""


class StoreUnavailable(Exception):
    """An append failed before it reached its records (no connection, no transaction, no lock on the head):
    the store's fault, whatever the records hold, so retrying other records now is pointless. Its cause is
    the driver's error."""


class CheckpointKeyError(ValueError):
    """The checkpoint key cannot be used; the message names the setting and the file, never key material."""


class CheckpointFileError(ValueError):
    """A checkpoint file given to the verifier cannot be read as JSON (a usage error, not damage)."""


class InvalidCursor(ValidationFailed):
    """A ``cursor`` that is not one this query handed out (422 ``validation_failed``)."""

    default_detail_en = "The cursor is not valid for this query; start again without one."
    default_detail_vi = (
        "Con trỏ phân trang không hợp lệ cho truy vấn này; hãy bắt đầu lại không dùng con trỏ."
    )

    def __init__(self) -> None:
        super().__init__(
            [
                {
                    "loc": ["body", "cursor"],
                    "code": "invalid_cursor",
                    "message": "Not a cursor this query handed out.",
                }
            ]
        )


class AuditUnavailable(ServiceUnavailable):
    code = "audit_unavailable"
    title_en = "Audit log unavailable"
    title_vi = "Nhật ký kiểm toán tạm thời không khả dụng"
    default_detail_en = "The access could not be recorded, so no data was released; try again later."
    default_detail_vi = (
        "Không ghi được nhật ký truy cập nên không dữ liệu nào được cung cấp; vui lòng thử lại sau."
    )
