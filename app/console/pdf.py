"""The resident access report as a PDF (fpdf2), in the console's language, Vietnamese by default.

Text is drawn with DejaVu Sans, vendored in ``fonts/`` with its licence and embedded in every PDF (as a
subset of the glyphs used), so Vietnamese letters with their diacritics (ạ, ờ, ữ, Đ...) show the same on any
reader, and nothing is fetched at run time. Text is put in NFC first: a name stored decomposed (a letter and
combining marks) would otherwise be drawn mark by mark.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import TableCellFillMode

FONTS: Final = Path(__file__).parent / "fonts"
FAMILY: Final = "DejaVuSans"
VIETNAM: Final = ZoneInfo("Asia/Ho_Chi_Minh")
_COLUMNS: Final = (
    ("report.when", 32),
    ("report.who", 50),
    ("report.action", 30),
    ("report.purpose", 58),
    ("report.fields", 56),
    ("report.dossier", 32),
    ("report.outcome", 19),
)
"""Each column's heading and width in millimetres (A4 landscape leaves 277 mm between the margins)."""


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def vn_time(at: datetime) -> str:
    return at.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M:%S")


class _Report(FPDF):
    def __init__(self, footer: str, page_words: str) -> None:
        super().__init__(orientation="L", unit="mm", format="A4")
        self._footer_text = footer
        self._page_words = page_words

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FAMILY, size=7)
        self.set_text_color(90, 96, 106)
        self.cell(0, 5, self._footer_text, align="L")
        self.set_x(-60)
        self.cell(0, 5, self._page_words.format(page=self.page_no(), pages="{nb}"), align="R")


def report_pdf(
    t: Callable[[str], str],
    lang: str,
    *,
    personal_id: str,
    rows: Sequence[dict[str, Any]],
    more: bool,
    limit: int,
    made_at: datetime,
    made_by: str,
    **_: Any,
) -> bytes:
    """The report's PDF: a heading with the resident and who made it when, then one table row per access."""
    pdf = _Report(_nfc(t("report.footer")), t("report.page"))
    pdf.add_font(FAMILY, "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font(FAMILY, "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    pdf.set_title(_nfc(t("report.title")))
    pdf.set_lang("vi" if lang == "vi" else "en")
    pdf.set_creator("dancu-gateway")
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.alias_nb_pages()
    pdf.add_page()

    pdf.set_font(FAMILY, "B", 14)
    pdf.multi_cell(0, 8, _nfc(t("report.title")), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)
    pdf.set_font(FAMILY, size=9)
    for label, value in (
        (t("report.subject"), personal_id),
        (t("report.made_at"), vn_time(made_at)),
        (t("report.made_by"), made_by),
        (t("report.count"), str(len(rows))),
    ):
        pdf.set_font(FAMILY, "B", 9)
        pdf.cell(45, 5.5, _nfc(label + ":"))
        pdf.set_font(FAMILY, size=9)
        pdf.cell(0, 5.5, _nfc(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)

    if not rows:
        pdf.multi_cell(0, 6, _nfc(t("report.none")), new_x="LMARGIN", new_y="NEXT")
        return bytes(pdf.output())

    pdf.set_font(FAMILY, size=8)
    with pdf.table(
        col_widths=[width for _key, width in _COLUMNS],
        text_align="LEFT",
        line_height=4.2,
        padding=1.2,
        cell_fill_color=(242, 244, 247),
        cell_fill_mode=TableCellFillMode.ROWS,
        first_row_as_headings=True,
        repeat_headings=1,
    ) as table:
        heading = table.row()
        for key, _width in _COLUMNS:
            heading.cell(_nfc(t(key)))
        for item in rows:
            row = table.row()
            row.cell(vn_time(item["at"]))
            row.cell(_nfc(str(item["who"])))
            row.cell(_nfc(t("action." + item["action"])))
            purpose = str(item["purpose_text"])
            if item.get("legal_basis"):
                purpose += f"\n({item['legal_basis']})"
            row.cell(_nfc(purpose))
            row.cell(_nfc(", ".join(t("field." + name) for name in item["fields"]) or "–"))
            row.cell(_nfc(str(item.get("dossier_id") or "–")))
            row.cell(_nfc(t("audit.outcome." + item["outcome"])))
    if more:
        pdf.ln(2)
        pdf.multi_cell(0, 5, _nfc(t("report.more").format(limit=limit)), new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
