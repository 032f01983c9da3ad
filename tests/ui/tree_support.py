"""What the UI tests share beyond fixtures (a module, not conftest: `from conftest import`
resolves to whichever conftest was imported first)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QModelIndex


def walk(model: Any, parent: QModelIndex | None = None) -> list[QModelIndex]:
    """Every index below `parent` (default: the root) in column 0, depth first."""
    parent = parent if parent is not None else QModelIndex()
    found = []
    for row in range(model.rowCount(parent)):
        index = model.index(row, 0, parent)
        found.append(index)
        found.extend(walk(model, index))
    return found
