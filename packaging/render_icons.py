"""Render the application icon from its SVG sources to PNG sizes, .ico and .icns.

    uv run python packaging/render_icons.py

Sources: rlm_desktop/resources/icons/rlm-desktop.svg (48 px and up) and
rlm-desktop-small.svg (16-32 px, drawn on a 16-unit grid so it stays sharp). Output, next to
them and committed: rlm-desktop-{16..1024}.png, rlm-desktop.ico (Windows) and
rlm-desktop.icns (macOS). Both containers hold PNG images, which Windows Vista+ and
macOS 10.7+ read; they are written here (a few lines each) rather than with Pillow.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "rlm_desktop" / "resources" / "icons"
NAME = "rlm-desktop"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512, 1024)
SMALL_UP_TO = 32  # sizes rendered from the small, grid-fitted drawing
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)
# ICNS element types holding PNG data, by pixel size (the @2x types reuse the same pixels).
ICNS_TYPES = (
    (b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256),
    (b"ic09", 512), (b"ic10", 1024), (b"ic11", 32), (b"ic12", 64), (b"ic13", 256),
    (b"ic14", 512),
)


def render_png(svg: Path, size: int) -> bytes:
    """The SVG rendered at size x size pixels, as PNG bytes (straight alpha)."""
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRectF
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"render_icons: {svg} is not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(0)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    renderer.render(painter, QRectF(0, 0, size, size))
    painter.end()
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.convertToFormat(QImage.Format.Format_ARGB32).save(buffer, "PNG")
    buffer.close()
    return bytes(data.data())


def ico(pngs: Mapping[int, bytes], sizes: Iterable[int] = ICO_SIZES) -> bytes:
    """An .ico file whose images are PNGs (ICONDIR, one ICONDIRENTRY each, then the data)."""
    chosen = [(s, pngs[s]) for s in sizes]
    header = struct.pack("<HHH", 0, 1, len(chosen))
    offset = len(header) + 16 * len(chosen)
    entries, blobs = [], []
    for size, png in chosen:
        side = 0 if size >= 256 else size  # 0 means 256 in the one-byte fields
        entries.append(struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(png), offset))
        blobs.append(png)
        offset += len(png)
    return header + b"".join(entries) + b"".join(blobs)


def icns(pngs: Mapping[int, bytes], types: Iterable[tuple[bytes, int]] = ICNS_TYPES) -> bytes:
    """An .icns file: 'icns', total length, then (type, length incl. header, PNG) items."""
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size]
                    for kind, size in types)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    pngs: dict[int, bytes] = {}
    for size in SIZES:
        source = ICONS / (f"{NAME}-small.svg" if size <= SMALL_UP_TO else f"{NAME}.svg")
        pngs[size] = render_png(source, size)
        (ICONS / f"{NAME}-{size}.png").write_bytes(pngs[size])
    (ICONS / f"{NAME}.ico").write_bytes(ico(pngs))
    (ICONS / f"{NAME}.icns").write_bytes(icns(pngs))
    del app
    total = sum((ICONS / n).stat().st_size for n in (f"{NAME}.ico", f"{NAME}.icns"))
    print(f"rendered {len(SIZES)} PNG sizes, {NAME}.ico and {NAME}.icns "
          f"({total / 1024:,.0f} KiB) into {ICONS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
