"""House rules that keep the core headless: Qt only under rlm_desktop/ui/."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rlm_desktop"


def test_qt_is_imported_only_under_ui() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "ui":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name.split(".")[0] in ("PySide6", "shiboken6") for name in names):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not offenders


def test_core_runs_without_loading_qt() -> None:
    code = ("import sys, rlm_desktop.cli, rlm_desktop.corpus.ingest, rlm_desktop.corpus.worker;"
            "assert not any(m.startswith('PySide6') for m in sys.modules), 'Qt was loaded'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
