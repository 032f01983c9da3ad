"""Test isolation: every test gets its own app home (cache, data, config) and never the
user's profile or keyring; Qt runs offscreen."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The null backend refuses to store anything: a test can never reach the real keychain.
os.environ["PYTHON_KEYRING_BACKEND"] = "keyring.backends.null.Keyring"

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus"


@pytest.fixture(autouse=True)
def app_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path_factory.mktemp("rlm-home")
    monkeypatch.setenv("RLM_DESKTOP_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def corpus() -> Iterator[Path]:
    if not CORPUS.is_dir():
        pytest.fail(f"the shared corpus is missing at {CORPUS}")
    yield CORPUS
