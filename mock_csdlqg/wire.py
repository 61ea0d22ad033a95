"""The mock national database's wire format: Vietnamese field names, as the upstream would send them.

These models document the contract (they feed ``openapi/csdlqg.json``) and let tests validate what the
mock answers. The service itself returns the stored JSON bytes as they are, so the hot path never
re-serialises a record. The gateway's backend adapter maps these names to the API's English ones:

======================  ==========================  ======================
wire (this module)      API field                   note
======================  ==========================  ======================
soDinhDanh              personal_id                 12 digits
hoVaTen                 full_name                   NFC, family name first
tenGoiKhac              other_names                 list
ngaySinh                date_of_birth               YYYY, YYYY-MM or YYYY-MM-DD
gioiTinh                gender                      "Nam" / "Nữ"
noiSinh                 place_of_birth              legacy units
noiDangKyKhaiSinh       birth_registration_place    legacy units
queQuan                 hometown                    legacy units
danToc                  ethnicity                   GSO code + name
tonGiao                 religion                    code + name, "00" = Không
quocTich                nationality                 ISO 3166-1 alpha-2 list
nhomMau                 blood_type                  A, B, AB, O or null
soCmnd                  old_id_number               9 digits or null
soDinhDanhCu            previous_ids                cancelled IDs
theCanCuoc              id_cards                    loai: cccd, can_cuoc, cmnd12
thanNhan                relatives
noiThuongTru            permanent_address           2025 units
noiTamTru               temporary_address           2025 units
noiOHienTai             current_address             2025 units
tamVang                 temporary_absence
soHoSoCuTru             residence_file_number
tinhTrangHonNhan        marital_status              doc_than, da_ket_hon, ly_hon, goa
maHo                    household_id
quanHeVoiChuHo          relation_to_head            see RELATION_TO_HEAD
ngayMat                 date_of_death
soDienThoai             phone                       10-digit mobile
email                   email
capNhatLuc              _meta.record_updated_at     RFC 3339, UTC
======================  ==========================  ======================
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

GENDER = {"Nam": "male", "Nữ": "female"}
MARITAL_STATUS = {"doc_than": "single", "da_ket_hon": "married", "ly_hon": "divorced", "goa": "widowed"}
RELATION_TO_HEAD = {
    "chu_ho": "head",
    "vo_chong": "spouse",
    "con": "child",
    "cha_me": "parent",
    "chau": "grandchild",
    "ong_ba": "grandparent",
    "anh_chi_em": "sibling",
    "con_dau": "daughter_in_law",
    "con_re": "son_in_law",
    "khac": "other",
}
RELATIVE = {
    "cha": "father",
    "me": "mother",
    "vo_chong": "spouse",
    "con": "child",
    "nguoi_dai_dien": "legal_representative",
    "nguoi_duoc_dai_dien": "represented_person",
}

PERSONAL_ID_PATTERN = r"^[0-9]{12}$"
PARTIAL_DATE_PATTERN = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$"


class WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DiaDanhCu(WireModel):
    """A place recorded in the pre-2025 units (birth place, birth registration, hometown)."""

    maTinhCu: str = Field(pattern=r"^[0-9]{3}$", description="legacy three-digit province code, e.g. 052")
    tenTinhCu: str
    chiTiet: str = Field(description="the place as recorded, in words")


class DiaChi(WireModel):
    """An address in 2025 units: province and commune-level unit, no district."""

    maTinh: str = Field(pattern=r"^[0-9]{2}$")
    tenTinh: str
    maXa: str = Field(pattern=r"^[0-9]{5}$")
    tenXa: str
    chiTiet: str = Field(description="house number, street, hamlet")
    diaChiDayDu: str = Field(description="the whole address as one line")


class MaTen(WireModel):
    ma: str = Field(pattern=r"^[0-9]{2}$")
    ten: str


class TheCanCuoc(WireModel):
    loai: Literal["cccd", "can_cuoc", "cmnd12"]
    so: str = Field(pattern=PERSONAL_ID_PATTERN)
    ngayCap: str = Field(pattern=PARTIAL_DATE_PATTERN)
    noiCap: str
    ngayHetHan: str | None = None


class ThanNhan(WireModel):
    quanHe: Literal["cha", "me", "vo_chong", "con", "nguoi_dai_dien", "nguoi_duoc_dai_dien"]
    soDinhDanh: str | None = Field(default=None, pattern=PERSONAL_ID_PATTERN)
    soCmnd: str | None = Field(default=None, pattern=r"^[0-9]{9}$")
    hoVaTen: str
    quocTich: str = Field(pattern=r"^[A-Z]{2}$")


class TamVang(WireModel):
    tuNgay: str
    denNgay: str | None
    lyDo: str
    noiDen: str


class CongDan(WireModel):
    """One resident's full record, as the national database holds it (Luật Căn cước 2023, Art. 9)."""

    soDinhDanh: str = Field(pattern=PERSONAL_ID_PATTERN)
    hoVaTen: str
    tenGoiKhac: list[str]
    ngaySinh: str = Field(pattern=PARTIAL_DATE_PATTERN)
    gioiTinh: Literal["Nam", "Nữ"]
    noiSinh: DiaDanhCu | None
    noiDangKyKhaiSinh: DiaDanhCu
    queQuan: DiaDanhCu | None
    danToc: MaTen
    tonGiao: MaTen
    quocTich: list[str] = Field(min_length=1)
    nhomMau: Literal["A", "B", "AB", "O"] | None
    soCmnd: str | None = Field(pattern=r"^[0-9]{9}$")
    soDinhDanhCu: list[str]
    theCanCuoc: list[TheCanCuoc]
    thanNhan: list[ThanNhan]
    noiThuongTru: DiaChi | None
    noiTamTru: DiaChi | None
    noiOHienTai: DiaChi | None
    tamVang: TamVang | None
    soHoSoCuTru: str | None
    tinhTrangHonNhan: Literal["doc_than", "da_ket_hon", "ly_hon", "goa"] | None
    maHo: str | None
    quanHeVoiChuHo: (
        Literal[
            "chu_ho",
            "vo_chong",
            "con",
            "cha_me",
            "chau",
            "ong_ba",
            "anh_chi_em",
            "con_dau",
            "con_re",
            "khac",
        ]
        | None
    )
    ngayMat: str | None = Field(pattern=PARTIAL_DATE_PATTERN)
    soDienThoai: str | None = Field(pattern=r"^0[35789][0-9]{8}$")
    email: str | None
    capNhatLuc: str = Field(description="when the record last changed, RFC 3339 UTC")


class ThanhVienHo(WireModel):
    soDinhDanh: str = Field(pattern=PERSONAL_ID_PATTERN)
    hoVaTen: str
    quanHeVoiChuHo: str


class HoGiaDinh(WireModel):
    """A household: its head and members (the head included, relation ``chu_ho``)."""

    maHo: str
    chuHo: ThanhVienHo
    diaChi: DiaChi | None
    thanhVien: list[ThanhVienHo]


class LookupRequest(WireModel):
    soDinhDanh: str = Field(pattern=PERSONAL_ID_PATTERN)


class BatchGetRequest(WireModel):
    ids: list[Annotated[str, Field(pattern=PERSONAL_ID_PATTERN)]] = Field(min_length=1, max_length=1000)


class BatchGetResponse(WireModel):
    records: list[CongDan]
    missing: list[str]


class Persona(WireModel):
    personal_id: str
    scenario: str
    description: str


class OtpSendRequest(WireModel):
    """Send a one-time code to the resident's registered mobile; ``noiDung`` says what it confirms."""

    soDinhDanh: str = Field(pattern=PERSONAL_ID_PATTERN)
    noiDung: str = Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]*$")


class OtpSendResponse(WireModel):
    """``da_gui``: sent (the other members set); ``khong_co_so_dien_thoai``: no mobile on record."""

    ketQua: Literal["da_gui", "khong_co_so_dien_thoai"]
    soDinhDanh: str = Field(pattern=PERSONAL_ID_PATTERN)
    maYeuCau: str | None = Field(default=None, description="the challenge to check the code against")
    kenh: Literal["sms"] | None = None
    soDienThoaiAn: str | None = Field(default=None, description="the number with its middle digits hidden")
    hetHanLuc: str | None = Field(default=None, description="RFC 3339 UTC: the code's expiry")


class OtpCheckRequest(WireModel):
    maYeuCau: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    maXacNhan: str = Field(pattern=r"^[0-9]{6}$")


class OtpCheckResponse(WireModel):
    hopLe: bool = Field(
        description="the code is the one sent; false also for an unknown or expired challenge"
    )


class OutboxItem(WireModel):
    at: str
    destination: str
    text: str


class Outbox(WireModel):
    items: list[OutboxItem]


class PersonaList(WireModel):
    items: list[Persona]


class SampleList(WireModel):
    items: list[str]


class FaultMode(WireModel):
    """Faults applied to every ``/api/v1`` route except health (members left out are off)."""

    latency_ms: int = Field(default=0, ge=0, le=60_000)
    status: int | None = Field(default=None, ge=400, le=599)
    malformed: bool = False
    wrong_id: bool = False
    trickle: bool = False


# ------------------------------------------------------------------------------------------ statistics
StatsDimension = Literal["xa", "doTuoi", "nhomTuoi", "gioiTinh", "danToc", "cuTru", "quyMoHo", "honNhan"]


class LocThongKe(WireModel):
    """Who is counted, besides province and wards (members left out do not filter)."""

    gioiTinh: Literal["Nam", "Nữ"] | None = None
    tuoiTu: int | None = Field(default=None, ge=0, le=150, description="lowest age in completed years")
    tuoiDen: int | None = Field(default=None, ge=0, le=150, description="highest age in completed years")
    danToc: list[Annotated[str, Field(pattern=r"^[0-9]{2}$")]] | None = Field(default=None, max_length=54)
    cuTru: list[Literal["thuong_tru", "tam_tru", "khac"]] | None = Field(default=None, max_length=3)


class ThongKeRequest(WireModel):
    """A raw population aggregate: residents alive at ``ngayTinh`` whose residence is in the province."""

    maTinh: str = Field(pattern=r"^[0-9]{2}$", description="2025 province code")
    maXa: list[Annotated[str, Field(pattern=r"^[0-9]{5}$")]] | None = Field(
        default=None, max_length=200, description="only these wards of the province"
    )
    nhomTheo: list[StatsDimension] = Field(
        default_factory=list,
        max_length=3,
        description=(
            "dimensions: xa (ward code), doTuoi (0-4 … 80-84, 85+), nhomTuoi (0-5, 6-10, 11-14, 15-17, 18-59, "
            "60+), gioiTinh (Nam, Nữ), danToc (GSO code), cuTru (thuong_tru: at the permanent address, "
            "tam_tru: at a registered temporary one, khac), quyMoHo (household members 1 … 5, 6+), honNhan "
            "(doc_than, da_ket_hon, ly_hon, goa, chua_ro)"
        ),
    )
    loc: LocThongKe = Field(default_factory=LocThongKe)
    ngayTinh: date | None = Field(
        default=None, description="the date ages are computed at (default: the data set's)"
    )


class OThongKe(WireModel):
    giaTri: list[str] = Field(description="the cell's value of each dimension, in ``nhomTheo`` order")
    soNguoi: int = Field(ge=1, description="residents in the cell (raw, never published as such)")
    tongKhoa: int = Field(ge=0, description="the sum of their record keys (each in 0..255)")


class ThongKeResponse(WireModel):
    maTinh: str
    ngayTinh: str
    nhomTheo: list[str]
    o: list[OThongKe] = Field(description="every non-empty cell, in the order of the dimensions' codes")
    nhan: dict[str, dict[str, str]] = Field(description="names of the coded values: xa and danToc")
