"""Small icons drawn with QPainter: one per trace step kind and per document kind, an error
variant of each, and the frames of the running-step indicator. Drawn once, then cached.

Every icon is a coloured badge with a white glyph, so it reads the same on light and dark
themes. Each is drawn at 16 px and at 32 px (high-DPI screens pick the larger one). Needs a
QGuiApplication, like any pixmap.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QPainter, QPainterPath, QPen, QPixmap

SIZES = (16, 32)
GLYPH = QColor("#ffffff")
ERROR = QColor("#c62828")
RUNNING = QColor("#1e88e5")      # a mid-tone blue: visible on white and on dark grey
SPINNER_FRAMES = 8

# One hue per step kind, far enough apart to tell at a glance.
KIND_COLORS = {
    "run": "#546e7a",         # blue grey: the whole run
    "root_call": "#8e24aa",   # purple: the root model
    "code": "#00897b",        # teal: a REPL cell
    "peek": "#039be5",        # light blue: reading a slice
    "grep": "#ef6c00",        # orange: searching
    "partition": "#6d4c41",   # brown: chunking
    "llm_query": "#d81b60",   # pink: a child model call
    "rlm_query": "#3949ab",   # indigo: a recursive run
    "final": "#2e7d32",       # green: the answer
}
OTHER_KIND = "#757575"

DOCUMENT_COLORS = {
    "pdf": "#d32f2f", "docx": "#1565c0", "email": "#00838f", "log": "#546e7a",
    "text": "#616161", "markdown": "#37474f", "csv": "#2e7d32", "json": "#6a1b9a",
    "html": "#e65100", "zip": "#8d6e63", "rtf": "#283593",
}
DOCUMENT_ALIASES = {"eml": "email", "msg": "email", "mbox": "email", "mail": "email",
                    "txt": "text", "md": "markdown", "htm": "html", "doc": "docx"}

Glyph = Callable[[QPainter], None]   # draws on a 16 x 16 canvas (scaled for larger sizes)

_cache: dict[tuple[str, ...], QIcon] = {}


def kind_icon(kind: str, error: bool = False) -> QIcon:
    """The Step column's icon for a trace step kind (red when the step failed)."""
    key = ("kind", kind, "error" if error else "")
    icon = _cache.get(key)
    if icon is None:
        color = ERROR if error else QColor(KIND_COLORS.get(kind, OTHER_KIND))
        glyph = _KIND_GLYPHS.get(kind, _dot)
        icon = _cache[key] = _render(lambda p: (_badge(p, color), glyph(p)))
    return icon


def running_icon(frame: int) -> QIcon:
    """One frame of the in-progress indicator (a turning arc); `frame` is taken modulo
    SPINNER_FRAMES, so a counter can be passed as is."""
    frame %= SPINNER_FRAMES
    key = ("running", str(frame))
    icon = _cache.get(key)
    if icon is None:
        icon = _cache[key] = _render(lambda p: _spinner(p, frame))
    return icon


def document_icon(kind: str, error: bool = False) -> QIcon:
    """The corpus panel's icon for a document kind (pdf, docx, email, log, text, …; the
    file kinds eml, msg and mbox show as email); red when the document failed to read."""
    kind = DOCUMENT_ALIASES.get(kind, kind)
    key = ("document", kind, "error" if error else "")
    icon = _cache.get(key)
    if icon is None:
        color = ERROR if error else QColor(DOCUMENT_COLORS.get(kind, OTHER_KIND))
        glyph = _DOCUMENT_GLYPHS.get(kind, _lines)
        if kind == "email":
            icon = _render(lambda p: _envelope(p, color))
        else:
            icon = _render(lambda p: (_page(p, color), glyph(p)))
        _cache[key] = icon
    return icon


# -- drawing ------------------------------------------------------------------------------


def _render(draw: Glyph) -> QIcon:
    icon = QIcon()
    for size in SIZES:
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.scale(size / 16, size / 16)
        draw(painter)
        painter.end()
        icon.addPixmap(pixmap)
    return icon


def _pen(width: float = 1.6, color: QColor = GLYPH) -> QPen:
    pen = QPen(color, width)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


def _stroke(p: QPainter, width: float = 1.6) -> None:
    p.setPen(_pen(width))
    p.setBrush(Qt.BrushStyle.NoBrush)


def _fill(p: QPainter, color: QColor = GLYPH) -> None:
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QBrush(color))


def _badge(p: QPainter, color: QColor) -> None:
    _fill(p, color)
    p.drawRoundedRect(QRectF(0.5, 0.5, 15, 15), 3.5, 3.5)


def _poly(p: QPainter, *points: tuple[float, float], close: bool = False) -> None:
    path = QPainterPath(QPointF(*points[0]))
    for point in points[1:]:
        path.lineTo(QPointF(*point))
    if close:
        path.closeSubpath()
    p.drawPath(path)


def _play(p: QPainter) -> None:          # run
    _fill(p)
    _poly(p, (5.5, 4), (12, 8), (5.5, 12), close=True)


def _bubble(p: QPainter) -> None:        # root_call: the root model speaks
    _fill(p)
    p.drawRoundedRect(QRectF(3, 3.5, 10, 7), 2, 2)
    _poly(p, (5, 10), (5, 13), (8, 10), close=True)
    p.setPen(_pen(1.1, QColor(KIND_COLORS["root_call"])))
    p.drawLine(QPointF(5.2, 6), QPointF(10.8, 6))
    p.drawLine(QPointF(5.2, 8.2), QPointF(9, 8.2))


def _chevrons(p: QPainter) -> None:      # code
    _stroke(p)
    _poly(p, (6, 4.5), (3, 8), (6, 11.5))
    _poly(p, (10, 4.5), (13, 8), (10, 11.5))


def _eye(p: QPainter) -> None:           # peek
    _stroke(p, 1.4)
    path = QPainterPath(QPointF(2.5, 8))
    path.quadTo(QPointF(8, 2), QPointF(13.5, 8))
    path.quadTo(QPointF(8, 14), QPointF(2.5, 8))
    p.drawPath(path)
    _fill(p)
    p.drawEllipse(QPointF(8, 8), 2, 2)


def _magnifier(p: QPainter) -> None:     # grep
    _stroke(p, 1.7)
    p.drawEllipse(QPointF(7, 7), 3.3, 3.3)
    p.setPen(_pen(2.2))
    p.drawLine(QPointF(9.6, 9.6), QPointF(12.8, 12.8))


def _split(p: QPainter) -> None:         # partition
    _fill(p)
    for x in (3, 6.8, 10.6):
        p.drawRoundedRect(QRectF(x, 3.5, 2.6, 9), 0.8, 0.8)


def _dots_bubble(p: QPainter) -> None:   # llm_query: a child call, waiting on a model
    _fill(p)
    p.drawRoundedRect(QRectF(2.5, 4, 11, 7), 3.5, 3.5)
    _poly(p, (10, 10.5), (12, 13.5), (7.5, 10.5), close=True)
    _fill(p, QColor(KIND_COLORS["llm_query"]))
    for x in (5.3, 8, 10.7):
        p.drawEllipse(QPointF(x, 7.5), 1, 1)


def _cycle(p: QPainter) -> None:         # rlm_query: a run inside the run
    _stroke(p, 1.6)
    rect = QRectF(3.5, 3.5, 9, 9)
    p.drawArc(rect, 30 * 16, 240 * 16)
    _fill(p)
    # the arrow head at the arc's end (at 270 deg: bottom right)
    _poly(p, (12.9, 5.2), (13.3, 9.0), (9.7, 7.6), close=True)


def _flag(p: QPainter) -> None:          # final answer
    _stroke(p, 1.5)
    p.drawLine(QPointF(4.5, 3), QPointF(4.5, 13))
    _fill(p)
    _poly(p, (5, 3.5), (12.5, 5.5), (5, 8.5), close=True)


def _dot(p: QPainter) -> None:           # a kind this build does not know
    _fill(p)
    p.drawEllipse(QPointF(8, 8), 2.5, 2.5)


_KIND_GLYPHS: dict[str, Glyph] = {
    "run": _play, "root_call": _bubble, "code": _chevrons, "peek": _eye, "grep": _magnifier,
    "partition": _split, "llm_query": _dots_bubble, "rlm_query": _cycle, "final": _flag,
}


def _spinner(p: QPainter, frame: int) -> None:
    faint = QColor(RUNNING)
    faint.setAlpha(70)
    p.setPen(_pen(2, faint))
    p.drawEllipse(QPointF(8, 8), 5.5, 5.5)
    p.setPen(_pen(2.2, RUNNING))
    start = 90 - frame * (360 // SPINNER_FRAMES)
    p.drawArc(QRectF(2.5, 2.5, 11, 11), start * 16, -110 * 16)
    # a dot at the centre: reads as "busy" even in a still screenshot
    _fill(p, RUNNING)
    angle = math.radians(start)
    p.drawEllipse(QPointF(8 + 5.5 * math.cos(angle), 8 - 5.5 * math.sin(angle)), 1.3, 1.3)


# -- documents ----------------------------------------------------------------------------


def _page(p: QPainter, color: QColor) -> None:
    _fill(p, color)
    _poly(p, (2.5, 0.8), (10, 0.8), (13.5, 4.3), (13.5, 15.2), (2.5, 15.2), close=True)
    lighter = QColor(color).lighter(150)
    _fill(p, lighter)
    _poly(p, (10, 0.8), (13.5, 4.3), (10, 4.3), close=True)


def _label(text: str, size: float = 5.2) -> Glyph:
    def draw(p: QPainter) -> None:
        # Pixel sizes are whole numbers: draw at 10 px and scale to the wanted height.
        font = QFont()
        font.setBold(True)
        font.setPixelSize(10)
        p.save()
        p.setFont(font)
        p.setPen(GLYPH)
        p.translate(8, 10)
        p.scale(size / 10, size / 10)
        p.drawText(QRectF(-12, -8, 24, 12), int(Qt.AlignmentFlag.AlignCenter), text)
        p.restore()
    return draw


def _lines(p: QPainter) -> None:         # text
    _stroke(p, 1.2)
    for y in (6.5, 9, 11.5):
        p.drawLine(QPointF(5, y), QPointF(11 if y < 11 else 9, y))


def _log_lines(p: QPainter) -> None:     # log: timestamped lines
    _fill(p)
    for y in (6, 8.6, 11.2):
        p.drawRect(QRectF(4.5, y - 0.6, 1.6, 1.4))
    _stroke(p, 1.2)
    for y in (6, 8.6, 11.2):
        p.drawLine(QPointF(7.6, y + 0.1), QPointF(11.2, y + 0.1))


def _grid(p: QPainter) -> None:          # csv
    _stroke(p, 1.0)
    p.drawRect(QRectF(4.5, 5.5, 7, 7))
    p.drawLine(QPointF(4.5, 8.8), QPointF(11.5, 8.8))
    p.drawLine(QPointF(8, 5.5), QPointF(8, 12.5))


def _zipper(p: QPainter) -> None:        # zip
    _fill(p)
    for y in (3, 6, 9):
        p.drawRect(QRectF(6.3, y, 1.6, 1.5))
        p.drawRect(QRectF(7.9, y + 1.5, 1.6, 1.5))
    p.drawRoundedRect(QRectF(6, 12, 3.8, 2.4), 0.6, 0.6)


def _envelope(p: QPainter, color: QColor) -> None:
    _fill(p, color)
    p.drawRoundedRect(QRectF(0.8, 3, 14.4, 10.5), 1.8, 1.8)
    _stroke(p, 1.3)
    _poly(p, (2.2, 4.6), (8, 9.2), (13.8, 4.6))


_DOCUMENT_GLYPHS: dict[str, Glyph] = {
    "pdf": _label("PDF"), "docx": _label("W", 7), "rtf": _label("RTF"),
    "markdown": _label("MD"), "json": _label("{ }", 6), "html": _label("</>", 5.6),
    "log": _log_lines, "text": _lines, "csv": _grid, "zip": _zipper,
}
