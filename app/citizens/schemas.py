"""Request and response bodies of the citizen endpoints (docs/contract.md, Citizens)."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from app.backends.base import RESIDENT_FIELDS
from app.citizens.matching import PartialDate
from app.inputs import RequestModel

PARTIAL_DATE = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$"
FieldName = Literal[RESIDENT_FIELDS]  # type: ignore[valid-type]


class _Request(RequestModel):
    # Unknown members are refused (no mass assignment); the input never comes back in an error; no control
    # characters in any text (app.inputs).
    model_config = ConfigDict(str_strip_whitespace=False)


CLAIMED_FIELDS = ("full_name", "date_of_birth", "gender")
"""A verification compares at least one of these (docs/contract.md, Verification)."""


class VerifyRequest(_Request):
    # The rule "at least one claim" is in the schema too, as alternatives of required members.
    model_config = ConfigDict(json_schema_extra={"anyOf": [{"required": [name]} for name in CLAIMED_FIELDS]})

    personal_id: str = Field(max_length=64, description="12 ASCII digits; checked for structure")
    full_name: str | None = Field(default=None, min_length=1, max_length=200)
    date_of_birth: str | None = Field(
        default=None, pattern=PARTIAL_DATE, description="YYYY, YYYY-MM or YYYY-MM-DD"
    )
    gender: Literal["male", "female"] | None = None
    name_match: Literal["exact", "normalized", "fuzzy"] = "normalized"
    threshold: int = Field(default=90, ge=1, le=100)

    @field_validator("date_of_birth")
    @classmethod
    def _real_date(cls, value: str | None) -> str | None:
        if value is not None:
            PartialDate.parse(value)  # ValueError (a 422) for 1968-02-30 and the like
        return value

    @model_validator(mode="after")
    def _something_to_check(self) -> Self:
        if self.full_name is None and self.date_of_birth is None and self.gender is None:
            # Its own error type, so the problem's message names the rule (app.problems) and `code` says it.
            raise PydanticCustomError(
                "claim_required", "at least one of full_name, date_of_birth, gender is required"
            )
        return self


class NameResult(BaseModel):
    result: Literal["match", "mismatch", "not_on_record", "not_checked"]
    tier: Literal["exact", "normalized", "fuzzy"] | None = None
    score: int | None = Field(default=None, ge=0, le=100)


class DateResult(BaseModel):
    result: Literal["match", "mismatch", "not_on_record", "not_checked"]
    precision: Literal["day", "month", "year"] | None = None


class GenderResult(BaseModel):
    result: Literal["match", "mismatch", "not_on_record", "not_checked"]


class FieldResults(BaseModel):
    full_name: NameResult
    date_of_birth: DateResult
    gender: GenderResult


class VerifyResponse(BaseModel):
    verification_id: str
    match: bool
    reason: Literal["not_found", "mismatch", "deceased"] | None
    fields: FieldResults | None = Field(default=None, description="only for grants with verify_details")
    attestation: str = Field(description="compact JWS, typ verification+jwt, signed by a key in the JWKS")


class BatchVerifyRequest(_Request):
    items: list[dict[str, Any]] = Field(min_length=1, description="verify bodies, 1 to DANCU_BATCH_MAX_ITEMS")


class ItemProblem(BaseModel):
    type: str
    title: str
    status: int
    code: str


class BatchVerifyResponse(BaseModel):
    results: list[dict[str, Any]] = Field(
        description="per item, in order: {index, ...verify answer} or {index, problem: {type, title, status, code}}"
    )


class LookupRequest(_Request):
    personal_id: str = Field(max_length=64)
    fields: list[FieldName] | None = Field(
        default=None, min_length=1, description="omit for every granted field"
    )


class HouseholdRequest(_Request):
    personal_id: str = Field(max_length=64)


class HouseholdPerson(BaseModel):
    personal_id: str
    full_name: str


class HouseholdMemberOut(HouseholdPerson):
    relation_to_head: str


class HouseholdResponse(BaseModel):
    household_id: str
    head: HouseholdPerson | None = Field(description="null when the head lives outside the grant's provinces")
    members: list[HouseholdMemberOut]


# --- the resident record as a lookup answers it (docs/contract.md, Resident fields) ---------------------------
# Every member but `personal_id` and `_meta` is present only when asked for (or granted, when none are named);
# a value the register does not hold is null.


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Address(_Shape):
    """An address in the 2025 administrative units (province and ward; no district level)."""

    province_code: str | None = Field(description="two-digit 2025 province code", examples=["52"])
    province_name: str | None = Field(examples=["Gia Lai"])
    ward_code: str | None = Field(description="five-digit ward code", examples=["21583"])
    ward_name: str | None = Field(examples=["Phường Quy Nhơn"])
    detail: str | None = Field(description="house number and street", examples=["Số 12 Lê Lợi"])
    text: str | None = Field(description="the whole address as one line")


class LegacyPlace(_Shape):
    """A place recorded in the pre-2025 units: birth registration place, hometown, place of birth."""

    legacy_province_code: str | None = Field(description="three-digit legacy code", examples=["052"])
    legacy_province_name: str | None = Field(examples=["Bình Định"])
    text: str | None = None


class CodeName(_Shape):
    """A GSO code and its name: ethnicity (dân tộc), religion (tôn giáo; none is code 00)."""

    code: str = Field(description="two-digit GSO code", examples=["01"])
    name: str = Field(examples=["Kinh"])


class IdCard(_Shape):
    type: Literal["cccd", "can_cuoc", "cmnd12"]
    number: str
    issued_on: str | None = Field(description="YYYY-MM-DD")
    issuer: str | None
    expires_on: str | None = Field(description="YYYY-MM-DD, or null (no expiry)")


class Relative(_Shape):
    relation: Literal["father", "mother", "spouse", "child", "legal_representative", "represented_person"]
    personal_id: str | None = None
    old_id_number: str | None = None
    full_name: str
    nationality: str | None = Field(default=None, description="ISO 3166-1 alpha-2", examples=["VN"])


class TemporaryAbsence(_Shape):
    from_: str | None = Field(alias="from", description="YYYY-MM-DD")
    to: str | None = Field(description="YYYY-MM-DD")
    reason: str | None
    destination: str | None


class LookupMeta(_Shape):
    source: str = Field(description="which register answered (`csdlqg`, or `mock_csdlqg` in development)")
    retrieved_at: str = Field(description="RFC 3339 UTC: when the gateway read the record")
    record_updated_at: str = Field(description="RFC 3339 UTC: when the register last changed the record")


class LookupResponse(_Shape):
    """A resident's record, limited to the requested (or granted) fields (docs/contract.md, Lookup)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    personal_id: str = Field(description="số định danh cá nhân: always returned")
    full_name: str | None = Field(default=None, description="họ, chữ đệm và tên khai sinh")
    other_names: list[str] | None = Field(default=None, description="tên gọi khác")
    date_of_birth: str | None = Field(default=None, description="ngày sinh: YYYY-MM-DD, YYYY-MM or YYYY")
    gender: Literal["male", "female"] | None = Field(default=None, description="giới tính")
    place_of_birth: LegacyPlace | None = Field(default=None, description="nơi sinh")
    birth_registration_place: LegacyPlace | None = Field(default=None, description="nơi đăng ký khai sinh")
    hometown: LegacyPlace | None = Field(default=None, description="quê quán")
    ethnicity: CodeName | None = Field(default=None, description="dân tộc (sensitive: granted by name)")
    religion: CodeName | None = Field(default=None, description="tôn giáo (sensitive: granted by name)")
    nationality: list[str] | None = Field(default=None, description="quốc tịch: ISO 3166-1 alpha-2 codes")
    blood_type: Literal["A", "B", "AB", "O"] | None = Field(
        default=None, description="nhóm máu (sensitive: granted by name)"
    )
    old_id_number: str | None = Field(default=None, description="số CMND cũ (9 or 12 digits)")
    previous_ids: list[str] | None = Field(default=None, description="cancelled personal IDs of the person")
    id_cards: list[IdCard] | None = Field(default=None, description="thẻ căn cước / CCCD / CMND")
    relatives: list[Relative] | None = Field(
        default=None, description="cha, mẹ, vợ/chồng, con, người đại diện"
    )
    permanent_address: Address | None = Field(default=None, description="nơi thường trú")
    temporary_address: Address | None = Field(default=None, description="nơi tạm trú")
    current_address: Address | None = Field(default=None, description="nơi ở hiện tại")
    temporary_absence: TemporaryAbsence | None = Field(default=None, description="tạm vắng")
    residence_file_number: str | None = Field(default=None, description="số hồ sơ cư trú")
    marital_status: Literal["single", "married", "divorced", "widowed"] | None = Field(
        default=None, description="tình trạng hôn nhân"
    )
    household_id: str | None = Field(default=None, description="mã hộ (số hộ khẩu)")
    relation_to_head: str | None = Field(default=None, description="quan hệ với chủ hộ")
    date_of_death: str | None = Field(default=None, description="ngày mất")
    phone: str | None = Field(default=None, description="số điện thoại")
    email: str | None = None
    meta: LookupMeta = Field(alias="_meta")
