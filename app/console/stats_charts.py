"""The statistics page's charts as SVG drawn on the server (docs/console.md, Statistics): an age pyramid by
sex and a horizontal bar chart of one dimension.

Plain SVG, no script and no style attribute (the console's CSP), colours as presentation attributes. Each chart
is an image with a ``<title>`` and a ``<desc>`` (``role="img"``, ``aria-labelledby``), labelled axes and the
count written at the end of every bar; every bar carries its value in ``data-count`` (empty when the cell is
suppressed, with ``data-suppressed="true"``), so a test can compare the drawing with the API's answer. Every
text is escaped; numbers are formatted as the console's language writes them (14.879 / 14,879).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from markupsafe import Markup, escape

MALE: Final = "#0b4f8a"
FEMALE: Final = "#b03a2e"
BAR: Final = "#0b4f8a"
INK: Final = "#1b1f24"
MUTED: Final = "#57606a"
RULE: Final = "#aab1ba"
FONT: Final = 12
ROW: Final = 20
BAR_HEIGHT: Final = 14

Count = int | None
"""A published count; None: suppressed (1 to k-1 residents)."""


def number(value: int, lang: str) -> str:
    """``14879`` as ``14.879`` in Vietnamese, ``14,879`` in English."""
    text = f"{value:,}"
    return text.replace(",", ".") if lang == "vi" else text


def _ticks(top: int) -> list[int]:
    """Round axis values from 0 up to ``top``: a step of 1, 2 or 5 times a power of ten, about four steps."""
    if top <= 0:
        return [0]
    raw = top / 4
    magnitude = 10 ** math.floor(math.log10(raw)) if raw >= 1 else 1
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    return list(range(0, top + 1, step))


def _text(x: float, y: float, body: str, *, anchor: str = "start", fill: str = INK, extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{FONT}" fill="{fill}"{extra}>'
        f"{escape(body)}</text>"
    )


def _open(testid: str, width: int, height: int, title: str, desc: str) -> list[str]:
    return [
        f'<svg class="stats-chart" data-testid="{testid}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{testid}-title {testid}-desc" '
        f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif">',
        f'<title id="{testid}-title">{escape(title)}</title>',
        f'<desc id="{testid}-desc">{escape(desc)}</desc>',
    ]


@dataclass(frozen=True, slots=True)
class PyramidLabels:
    title: str
    desc: str
    male: str
    female: str
    age: str
    axis: str
    hidden: str


def pyramid(
    ages: Sequence[str],
    male: Mapping[str, Count],
    female: Mapping[str, Count],
    labels: PyramidLabels,
    lang: str,
) -> Markup:
    """Men to the left, women to the right, one row per age value (``ages`` youngest first, drawn at the
    bottom). An age missing from a side has no resident there (0); a None count is drawn as "hidden"."""
    width, centre_gap, number_room, side = 720, 64, 58, 16
    half = (width - centre_gap) / 2 - number_room - side
    top = max([c for c in (*male.values(), *female.values()) if c is not None] or [0])
    scale = half / top if top else 0.0
    cx = width / 2
    head, rows = 40, len(ages)
    axis_y = head + rows * ROW + 4
    height = axis_y + 42
    parts = _open("stats-pyramid", width, height, labels.title, labels.desc)
    parts.append(
        _text(cx - centre_gap / 2 - 4, 16, labels.male, anchor="end", fill=MALE, extra=' font-weight="600"')
    )
    parts.append(_text(cx + centre_gap / 2 + 4, 16, labels.female, fill=FEMALE, extra=' font-weight="600"'))
    parts.append(_text(cx, head - 8, labels.age, anchor="middle", fill=MUTED))
    for row, age in enumerate(reversed(ages)):
        y = head + row * ROW
        parts.append(_text(cx, y + BAR_HEIGHT - 2, age, anchor="middle"))
        for sex, counts, colour, sign in (("male", male, MALE, -1), ("female", female, FEMALE, 1)):
            inner = cx + sign * centre_gap / 2
            count = counts.get(age, 0)
            name = labels.male if sign < 0 else labels.female
            if count is None:
                parts.append(
                    f'<rect x="{inner - (8 if sign < 0 else 0):.1f}" y="{y}" width="8" height="{BAR_HEIGHT}" '
                    f'fill="none" stroke="{colour}" stroke-dasharray="2 2" data-sex="{sex}" '
                    f'data-age="{escape(age)}" data-count="" data-suppressed="true">'
                    f"<title>{escape(name)} {escape(age)}: {escape(labels.hidden)}</title></rect>"
                )
                label, at = labels.hidden, inner + sign * 12
            else:
                bar = count * scale
                x = inner - bar if sign < 0 else inner
                parts.append(
                    f'<rect x="{x:.1f}" y="{y}" width="{bar:.1f}" height="{BAR_HEIGHT}" fill="{colour}" '
                    f'data-sex="{sex}" data-age="{escape(age)}" data-count="{count}">'
                    f"<title>{escape(name)} {escape(age)}: {escape(number(count, lang))}</title></rect>"
                )
                label, at = number(count, lang), inner + sign * (bar + 4)
            parts.append(
                _text(
                    at,
                    y + BAR_HEIGHT - 2,
                    label,
                    anchor="end" if sign < 0 else "start",
                    fill=INK if count is not None else MUTED,
                    extra=f' data-sex="{sex}" data-age="{escape(age)}"',
                )
            )
    for sign in (-1, 1):
        inner = cx + sign * centre_gap / 2
        outer = inner + sign * half
        parts.append(f'<line x1="{inner:.1f}" y1="{axis_y}" x2="{outer:.1f}" y2="{axis_y}" stroke="{RULE}"/>')
        for tick in _ticks(top):
            x = inner + sign * tick * scale
            parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="{RULE}"/>')
            parts.append(_text(x, axis_y + 16, number(tick, lang), anchor="middle", fill=MUTED))
        parts.append(_text((inner + outer) / 2, axis_y + 34, labels.axis, anchor="middle", fill=MUTED))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped text only


@dataclass(frozen=True, slots=True)
class BarLabels:
    title: str
    desc: str
    dimension: str
    axis: str
    hidden: str


def bars(values: Sequence[tuple[str, str, Count]], labels: BarLabels, lang: str) -> Markup:
    """One horizontal bar per ``(key, label, count)`` in the given order; a None count is drawn as "hidden"."""
    width, label_room, number_room = 720, 230, 60
    span = width - label_room - number_room
    top = max([c for _, _, c in values if c is not None] or [0])
    scale = span / top if top else 0.0
    head = 24
    axis_y = head + len(values) * ROW + 4
    height = axis_y + 42
    parts = _open("stats-bars", width, height, labels.title, labels.desc)
    parts.append(_text(label_room - 8, 14, labels.dimension, anchor="end", fill=MUTED))
    for row, (key, label, count) in enumerate(values):
        y = head + row * ROW
        shown = label if len(label) <= 34 else label[:33] + "…"
        parts.append(_text(label_room - 8, y + BAR_HEIGHT - 2, shown, anchor="end"))
        if count is None:
            parts.append(
                f'<rect x="{label_room}" y="{y}" width="8" height="{BAR_HEIGHT}" fill="none" stroke="{BAR}" '
                f'stroke-dasharray="2 2" data-key="{escape(key)}" data-count="" data-suppressed="true">'
                f"<title>{escape(label)}: {escape(labels.hidden)}</title></rect>"
            )
            parts.append(_text(label_room + 12, y + BAR_HEIGHT - 2, labels.hidden, fill=MUTED))
            continue
        bar = count * scale
        parts.append(
            f'<rect x="{label_room}" y="{y}" width="{bar:.1f}" height="{BAR_HEIGHT}" fill="{BAR}" '
            f'data-key="{escape(key)}" data-count="{count}">'
            f"<title>{escape(label)}: {escape(number(count, lang))}</title></rect>"
        )
        parts.append(
            _text(
                label_room + bar + 4,
                y + BAR_HEIGHT - 2,
                number(count, lang),
                extra=f' data-key="{escape(key)}"',
            )
        )
    parts.append(
        f'<line x1="{label_room}" y1="{axis_y}" x2="{label_room + span}" y2="{axis_y}" stroke="{RULE}"/>'
    )
    for tick in _ticks(top):
        x = label_room + tick * scale
        parts.append(f'<line x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}" stroke="{RULE}"/>')
        parts.append(_text(x, axis_y + 16, number(tick, lang), anchor="middle", fill=MUTED))
    parts.append(_text(label_room + span / 2, axis_y + 34, labels.axis, anchor="middle", fill=MUTED))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - numbers and escaped text only


Translate = Callable[[str], str]
