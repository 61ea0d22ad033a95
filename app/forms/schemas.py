"""Request and response bodies of the forms endpoints (docs/contract.md, 18. Forms: prefill and confirmation)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from app.inputs import RequestModel

FORM_CODE_PATTERN = r"^[A-Za-z0-9._-]{1,32}$"
FormCode = Annotated[str, StringConstraints(pattern=FORM_CODE_PATTERN)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Basis = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
MAX_FIELDS = 200


class FormFieldIn(RequestModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = Field(
        description="the value's key in a prefill answer"
    )
    label: Label = Field(description="the field as the printed form labels it (Vietnamese)")
    source: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        description="a resident field or `field.member`; null for a field filled by hand"
    )
    format: Annotated[str, StringConstraints(max_length=32)] | None = Field(
        default=None, description="`date_dmy`, `upper`, `gender_vi` or `relation_vi`"
    )


class FormIn(RequestModel):
    code: FormCode
    title: Title
    purpose: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="the registered purpose a prefill of this form must declare in X-Purpose"
    )
    legal_basis: Basis | None = Field(default=None, description="the legal document that issues the form")
    fields: list[FormFieldIn] = Field(min_length=1, max_length=MAX_FIELDS)


class FormReplace(RequestModel):
    """``PUT /v1/admin/forms/{code}``: the whole definition; ``code``, when sent, must be the path's."""

    code: FormCode | None = None
    title: Title
    purpose: Annotated[str, StringConstraints(max_length=64)]
    legal_basis: Basis | None = None
    fields: list[FormFieldIn] = Field(min_length=1, max_length=MAX_FIELDS)


class FormFieldOut(BaseModel):
    name: str
    label: str
    source: str | None
    format: str | None


class FormOut(BaseModel):
    code: str
    title: str
    purpose: str
    legal_basis: str | None
    fields: list[FormFieldOut]
    status: Literal["active", "retired"]
    created_at: datetime
    updated_at: datetime


class FormPage(BaseModel):
    items: list[FormOut]
    next_cursor: str | None = Field(
        default=None, description="always null: every template is on the one page (forms are few)"
    )


def field_specs(fields: list[FormFieldIn]) -> list[dict[str, Any]]:
    return [f.model_dump() for f in fields]


class PrefillRequest(RequestModel):
    personal_id: str = Field(max_length=64, description="12 ASCII digits; checked for structure")
    form: FormCode


class PrefillResponse(BaseModel):
    form: str
    values: dict[str, Any] = Field(description="each field's value as the form writes it, or null")
    withheld: list[str] = Field(description="fields left null because the grant does not allow their source")
    meta: dict[str, Any] = Field(alias="_meta", description="source, retrieved_at, record_updated_at")


SHA256_HEX = r"^[0-9A-Fa-f]{64}$"


class ConfirmationStart(RequestModel):
    personal_id: str = Field(max_length=64, description="12 ASCII digits; checked for structure")
    form: FormCode
    document_sha256: str = Field(
        pattern=SHA256_HEX, description="SHA-256 of the declaration as the portal will file it, 64 hex digits"
    )


class ConfirmationComplete(RequestModel):
    code: str = Field(min_length=1, max_length=16, description="the 6 digits the resident received by SMS")


class ConfirmationOut(BaseModel):
    confirmation_id: str
    status: Literal["pending"]
    channel: Literal["sms"]
    destination_hint: str = Field(description="the registered mobile with its middle digits hidden")
    expires_at: str = Field(description="RFC 3339 UTC: the code's expiry (5 minutes after it was sent)")


class ConfirmationDoneOut(BaseModel):
    status: Literal["confirmed"]
    receipt: str = Field(description="compact JWS, typ confirmation+jwt, signed by a key in the JWKS")
