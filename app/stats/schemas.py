"""Bodies of ``POST /v1/statistics/population`` (docs/contract.md, section 14)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator
from pydantic_core import PydanticCustomError

from app.inputs import FIRST_YEAR, RequestModel

Dimension = Literal[
    "ward",
    "age_band",
    "age_group",
    "sex",
    "ethnicity",
    "residence_status",
    "household_size",
    "marital_status",
]
MAX_DIMENSIONS = 3
MAX_WARDS = 200
MAX_AGE = 150


class PopulationFilters(RequestModel):
    """Who is counted besides province and wards; members left out (or null) do not filter."""

    sex: Literal["male", "female"] | None = None
    age_min: int | None = Field(default=None, ge=0, le=MAX_AGE, description="lowest age, completed years")
    age_max: int | None = Field(default=None, ge=0, le=MAX_AGE, description="highest age, completed years")
    ethnicity: list[Annotated[str, Field(pattern=r"^[0-9]{2}$")]] | None = Field(
        default=None, min_length=1, max_length=54, description="GSO ethnic group codes (01-54)"
    )
    residence_status: list[Literal["permanent", "temporary", "other"]] | None = Field(
        default=None, min_length=1, max_length=3
    )


class PopulationRequest(RequestModel):
    province: str | None = Field(
        default=None,
        pattern=r"^[0-9]{2}$",
        description="2025 province code; required unless the grant names exactly one province",
    )
    wards: list[Annotated[str, Field(pattern=r"^[0-9]{5}$")]] | None = Field(
        default=None, min_length=1, max_length=MAX_WARDS, description="only these wards of the province"
    )
    group_by: list[Dimension] = Field(
        default_factory=list, max_length=MAX_DIMENSIONS, description="0 to 3 distinct dimensions"
    )
    filters: PopulationFilters = Field(default_factory=PopulationFilters)
    as_of: date | None = Field(
        default=None, description="the date ages are computed at (default: the data's)"
    )

    @field_validator("as_of")
    @classmethod
    def _in_range(cls, value: date | None) -> date | None:
        if value is not None and value.year < FIRST_YEAR:
            raise PydanticCustomError("datetime_out_of_range", "Must lie between the years 1900 and 9999.")
        return value


class CountOut(BaseModel):
    count: int | None = Field(description="the published (perturbed) count; null when suppressed")
    suppressed: bool


class MethodOut(BaseModel):
    name: Literal["cell_key"]
    threshold: int = Field(description="k: counts of 1 to k-1 residents are suppressed")
    max_noise: int = Field(description="d: a published count is within d of the true count")


class PopulationResponse(BaseModel):
    province: str
    as_of: date
    group_by: list[Dimension]
    items: list[dict[str, Any]] = Field(
        description=(
            "every non-empty combination, sorted by the dimensions: one member per dimension (`ward` and "
            "`ethnicity` as `{code, name}`), plus `count` (null when suppressed) and `suppressed`"
        )
    )
    total: CountOut
    method: MethodOut
