"""The Qt binding in use does not leak references to None (PySide6 6.12.0 on Python 3.11
dropped one per call of a method returning void, and the app died with "none_dealloc" after
enough of them; pyproject.toml keeps that release out)."""

from __future__ import annotations

import sys

import PySide6
from PySide6.QtCore import QPointF


def test_void_methods_keep_none_alive() -> None:
    point = QPointF(1.0, 1.0)
    before = sys.getrefcount(None)
    for _ in range(10_000):
        point.setX(2.0)
    after = sys.getrefcount(None)
    assert abs(before - after) < 100, (PySide6.__version__, before, after)
