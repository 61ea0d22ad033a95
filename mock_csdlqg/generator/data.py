"""Static tables the generator draws from.

Population figures are rounded 2023–2024 GSO estimates (millions), summed over the 2025 mergers
(Resolution 202/2025/QH15); they only weight where residents live and where births were registered.
Ethnic shares per province are rounded census-2019 orders of magnitude, enough to place Jrai, Bahnar and
Ê Đê residents where they live. Ethnic codes are the GSO 1979 list (Decision 121-TCTK/PPCĐ). Religion codes
are the mock's own list in the same two-digit style (the GSO list is not vendored); ``00`` is Không.
"""

from __future__ import annotations

from vnid.ethnicities import ETHNIC_GROUPS

# Legacy (pre-2025) province populations, millions, keyed by the ID prefix (birth-registration code).
LEGACY_POPULATION: dict[str, float] = {
    "001": 8.6, "002": 0.9, "004": 0.55, "006": 0.32, "008": 0.8, "010": 0.77, "011": 0.64, "012": 0.48,
    "014": 1.3, "015": 0.84, "017": 0.88, "019": 1.33, "020": 0.8, "022": 1.38, "024": 1.9, "025": 1.5,
    "026": 1.2, "027": 1.5, "030": 1.95, "031": 2.1, "033": 1.3, "034": 1.9, "035": 0.88, "036": 1.9,
    "037": 1.0, "038": 3.7, "040": 3.4, "042": 1.3, "044": 0.92, "045": 0.65, "046": 1.16, "048": 1.25,
    "049": 1.5, "051": 1.25, "052": 1.5, "054": 0.88, "056": 1.25, "058": 0.6, "060": 1.25, "062": 0.58,
    "064": 1.6, "066": 1.9, "067": 0.67, "068": 1.33, "070": 1.0, "072": 1.2, "074": 2.8, "075": 3.3,
    "077": 1.2, "079": 9.5, "080": 1.7, "082": 1.8, "083": 1.3, "084": 1.0, "086": 1.0, "087": 1.6,
    "089": 1.9, "091": 1.75, "092": 1.25, "093": 0.73, "094": 1.2, "095": 0.92, "096": 1.2,
}  # fmt: skip

# Ethnic groups: GSO code -> name (1979 list); the list is vnid's, shared with the gateway.
ETHNICITIES = ETHNIC_GROUPS

RELIGIONS: dict[str, str] = {
    "00": "Không", "01": "Phật giáo", "02": "Công giáo", "03": "Tin lành", "04": "Cao Đài",
    "05": "Phật giáo Hòa Hảo", "06": "Hồi giáo",
}  # fmt: skip

# Share of households of each minority group, by 2025 province (the rest are Kinh).
ETHNIC_MIX: dict[str, dict[str, float]] = {
    "04": {"02": 0.40, "07": 0.30, "08": 0.10, "09": 0.10},
    "08": {"02": 0.25, "08": 0.20, "09": 0.10, "07": 0.05},
    "11": {"03": 0.38, "08": 0.35},
    "12": {"08": 0.40, "03": 0.30, "09": 0.10},
    "14": {"03": 0.53, "08": 0.17, "06": 0.05},
    "15": {"08": 0.20, "02": 0.15, "09": 0.12},
    "19": {"02": 0.15, "07": 0.05, "09": 0.03},
    "20": {"07": 0.42, "02": 0.35, "09": 0.04},
    "25": {"06": 0.20},
    "38": {"06": 0.09, "03": 0.06},
    "40": {"03": 0.10},
    "51": {"14": 0.10, "19": 0.08, "13": 0.05},
    "52": {"10": 0.20, "13": 0.09},
    "56": {"17": 0.06, "21": 0.05},
    "66": {"12": 0.15, "20": 0.03, "10": 0.02, "07": 0.03, "02": 0.03},
    "68": {"16": 0.08, "20": 0.05},
    "79": {"04": 0.04},
    "86": {"05": 0.10},
    "91": {"05": 0.06, "17": 0.01},
    "92": {"05": 0.12, "04": 0.02},
}

# Religion weights by ethnic group (code -> weight); the default applies to everyone else.
RELIGION_MIX: dict[str, dict[str, float]] = {
    "default": {"00": 0.86, "01": 0.05, "02": 0.065, "03": 0.01, "04": 0.01, "05": 0.005},
    "10": {"00": 0.60, "03": 0.32, "02": 0.08},
    "12": {"00": 0.55, "03": 0.40, "02": 0.05},
    "13": {"00": 0.60, "02": 0.30, "03": 0.10},
    "05": {"01": 0.92, "00": 0.08},
    "17": {"06": 0.35, "00": 0.65},
    "04": {"01": 0.45, "00": 0.55},
}

# Kinh family names with rough frequencies (Nguyễn far ahead).
KINH_FAMILY: dict[str, float] = {
    "Nguyễn": 38.4, "Trần": 11.0, "Lê": 9.5, "Phạm": 7.1, "Hoàng": 5.1, "Huỳnh": 2.0, "Phan": 4.5,
    "Vũ": 3.9, "Võ": 2.0, "Đặng": 2.1, "Bùi": 2.0, "Đỗ": 1.4, "Hồ": 1.3, "Ngô": 1.3, "Dương": 1.0,
    "Lý": 0.5, "Đinh": 0.7, "Đào": 0.5, "Trương": 0.6, "Lương": 0.4, "Cao": 0.4, "Mai": 0.3,
    "Tạ": 0.3, "Hà": 0.4, "Lâm": 0.3, "Tô": 0.2, "Đoàn": 0.4, "Thái": 0.2, "Chu": 0.2, "Quách": 0.1,
}  # fmt: skip

MIDDLE_MALE = ("Văn", "Văn", "Văn", "Đức", "Minh", "Quang", "Hữu", "Thành", "Công", "Quốc", "Xuân",
               "Đình", "Ngọc", "Anh", "Trọng", "Gia", "Hoàng", "Thanh", "Tuấn", "Bảo")  # fmt: skip
MIDDLE_FEMALE = ("Thị", "Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Kim", "Mỹ", "Thùy", "Phương",
                 "Bảo", "Hồng", "Minh", "Khánh", "Diệu", "Hoài", "Thảo", "Lan", "Quỳnh")  # fmt: skip
GIVEN_MALE = ("An", "Bình", "Cường", "Dũng", "Đức", "Hải", "Hiếu", "Hùng", "Huy", "Khang", "Khoa",
              "Lâm", "Long", "Minh", "Nam", "Nghĩa", "Phong", "Phúc", "Quân", "Sơn", "Tài", "Thắng",
              "Thành", "Thịnh", "Toàn", "Trung", "Tuấn", "Tùng", "Việt", "Vinh", "Hoàng", "Khôi",
              "Bảo", "Đạt", "Hòa", "Thủy", "Tú", "Lộc", "Quang", "Hưng", "Kiên", "Đông", "Trí",
              "Nhân", "Tâm", "Tiến", "Vũ", "Duy", "Hậu", "Thuận")  # fmt: skip
GIVEN_FEMALE = ("Anh", "Chi", "Dung", "Giang", "Hà", "Hạnh", "Hằng", "Hiền", "Hoa", "Hòa", "Hương",
                "Huyền", "Lan", "Liên", "Linh", "Loan", "Mai", "My", "Nga", "Ngân", "Ngọc", "Nhung",
                "Oanh", "Phương", "Quyên", "Quỳnh", "Thảo", "Thủy", "Thúy", "Trang", "Trâm", "Uyên",
                "Vân", "Vy", "Yến", "Xuân", "Hoa", "Thoa", "Khuê", "Tuyết", "Ly", "Nhi", "Hậu",
                "Thư", "Tâm", "Diệp", "Duyên", "Lụa", "Mận", "Đào")  # fmt: skip

# Family names of northern and southern minority groups that otherwise follow the Kinh pattern.
MINORITY_FAMILY: dict[str, tuple[str, ...]] = {
    "02": ("Hoàng", "Nông", "Lương", "Triệu", "Ma", "La", "Hà"),
    "03": ("Lò", "Lường", "Cầm", "Quàng", "Vi", "Điêu", "Hà"),
    "06": ("Bùi", "Đinh", "Quách", "Hà", "Xa"),
    "07": ("Hoàng", "Nông", "Lương", "Vi", "Lý", "Chu"),
    "08": ("Giàng", "Vàng", "Sùng", "Lý", "Thào", "Mùa", "Hầu", "Lầu"),
    "09": ("Triệu", "Bàn", "Đặng", "Lý", "Phùng"),
    "04": ("Lâm", "Trương", "Lý", "Quách", "Mã", "Châu", "Hứa"),
    "05": ("Thạch", "Danh", "Sơn", "Lâm", "Kim", "Châu", "Thị"),
    "14": ("A", "Y", "Đinh"),
    "19": ("Đinh", "Phạm", "Đinh"),
    "16": ("K'", "Ka", "Kơ"),
    "20": ("Điểu", "Thị", "Y"),
    "17": ("Thiên", "Đàng", "Châu", "Lưu", "Quảng"),
    "21": ("Chamaléa", "Pinăng", "Katơr"),
}

# Jrai and Ê Đê are matrilineal: children take their mother's clan name.
JRAI_CLANS = ("Ksor", "Rơ Châm", "Rơ Mah", "Siu", "Nay", "Kpă", "Puih", "Rah Lan", "Rơ Lan", "Kpuih")
JRAI_GIVEN_MALE = ("Bơi", "Tuyn", "Blứ", "Thuk", "Hyoi", "Jơn", "Dơk", "Yuh", "Khăm", "Phăm", "Kheo")
JRAI_GIVEN_FEMALE = ("H'Bia", "H'Lan", "H'Nguyên", "H'Ngăm", "H'Mai", "H'Linh", "H'Plin", "H'Yuh", "H'Dơn")
EDE_CLANS = ("Niê", "Êban", "Mlô", "Byă", "Ayun", "Adrơng", "Ksơr", "Hwing", "Knul", "Buôn Yă")
EDE_GIVEN_MALE = ("Y Bih", "Y Ngông", "Y Thuột", "Y Jut", "Y Bhin", "Y Kông", "Y Wang", "Y Blơ")
EDE_GIVEN_FEMALE = ("H'Hen", "H'Ly", "H'Blúp", "H'Nga", "H'Ra", "H'Năm", "H'Yam", "H'Zen")
BAHNAR_FAMILY = ("Đinh", "Đinh", "Đinh", "Nay", "Rơ")
BAHNAR_GIVEN = ("Hrêl", "Blui", "Hmưn", "Jơk", "Krăn", "Plơi", "Hlin", "Yưh", "Plưn", "Gưl", "Sơk", "Byưk")

# Naming systems: which family name a child takes.
MATRILINEAL = frozenset({"10", "12"})

# Age pyramid (share of population by 5-year band starting at the key), used for singles and parents.
AGE_BANDS: dict[int, float] = {
    0: 7.0, 5: 7.8, 10: 7.9, 15: 7.0, 20: 6.8, 25: 7.3, 30: 8.0, 35: 8.0, 40: 7.4, 45: 6.6, 50: 5.9,
    55: 5.3, 60: 4.5, 65: 3.6, 70: 2.6, 75: 1.6, 80: 1.1, 85: 0.7, 90: 0.4,
}  # fmt: skip

STREETS = ("Lê Lợi", "Trần Hưng Đạo", "Nguyễn Huệ", "Hai Bà Trưng", "Lý Thường Kiệt", "Quang Trung",
           "Hùng Vương", "Phan Bội Châu", "Nguyễn Trãi", "Lê Duẩn", "Võ Thị Sáu", "Điện Biên Phủ",
           "Nguyễn Thái Học", "Phạm Văn Đồng", "Trường Chinh", "Nguyễn Văn Cừ", "Tôn Đức Thắng",
           "Xuân Diệu", "An Dương Vương", "Nguyễn Tất Thành")  # fmt: skip
ABSENCE_REASONS = (
    "Đi làm ăn xa",
    "Đi học",
    "Lao động có thời hạn",
    "Chăm sóc người thân",
    "Đi nghĩa vụ quân sự",
)
EMAIL_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "vnpt.vn", "fpt.vn")
MOBILE_PREFIXES = ("032", "033", "034", "035", "036", "037", "038", "039", "070", "076", "077", "078",
                   "079", "081", "082", "083", "084", "085", "086", "088", "089", "090", "091", "093",
                   "094", "096", "097", "098", "056", "058", "059")  # fmt: skip
FOREIGN_NATIONALITIES = ("US", "FR", "AU", "KR", "JP", "DE", "CA", "LA", "KH", "CN")
