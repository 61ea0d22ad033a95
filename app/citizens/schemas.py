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
