"""The third-party notices the frozen app ships: every run-time dependency with its licence,
nothing from the dev or packaging groups, and the LGPL text Qt for Python is used under."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _notices():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("notices", ROOT / "packaging" /
                                                  "notices.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("notices", module)   # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_notices_cover_the_runtime_and_only_it() -> None:
    notices = _notices()
    names = {item.name.lower().replace("_", "-") for item in notices.shipped()}
    assert {"pyside6-essentials", "pyside6-addons", "shiboken6", "openai", "keyring",
            "restrictedpython", "pypdfium2", "psutil", "pygments"} <= names
    assert not names & {"pytest", "pytest-qt", "ruff", "mypy", "hypothesis", "pyinstaller"}
    text = notices.render()
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in text and "Version 3" in text
    assert "GNU GENERAL PUBLIC LICENSE" in text
    assert "PYTHON SOFTWARE FOUNDATION LICENSE" in text
    openai = next(i for i in notices.shipped() if i.name == "openai")
    assert openai.licence == "Apache-2.0" and openai.texts
    # PDFium's own components (FreeType, ICU, OpenJPEG, ...) carry their notices too.
    pdfium = next(i for i in notices.shipped() if i.name == "pypdfium2")
    names = " ".join(name.lower() for name, _ in pdfium.texts)
    assert "freetype" in names and "icu" in names
