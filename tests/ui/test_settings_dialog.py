"""The settings dialog: values round-trip, the key goes to the keyring only (or stays in memory
for the session when no keyring works), and Test connection lists models without freezing."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDialogButtonBox

from rlm_desktop import settings as settings_module
from rlm_desktop.engine.budget import Limits
from rlm_desktop.settings import (
    KEYRING_SERVICE,
    KEYRING_USER,
    Settings,
    resolve_endpoint,
    saved_api_key,
)
from rlm_desktop.testing.server import ScriptedServer
from rlm_desktop.ui.settings_dialog import PRESETS, SESSION_ONLY_NOTE, SettingsDialog

SECRET = "sk-test-Zq7very-secret-key-4711"


class MemoryKeyring(KeyringBackend):
    """A keyring that keeps passwords in a dict (this test process only)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.passwords.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.passwords[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.passwords.pop((service, username), None)


@pytest.fixture(autouse=True)
def clean_session_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setattr(settings_module, "_session_key", None)
    yield


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def open_dialog(qtbot: Any) -> SettingsDialog:
    dialog = SettingsDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    return dialog


def click_ok(dialog: SettingsDialog) -> None:
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert ok is not None
    ok.click()


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_defaults_equal_limits() -> None:
    assert Settings().limits() == Limits()


def test_settings_round_trip(qtbot: Any) -> None:
    dialog = open_dialog(qtbot)
    dialog.preset.setCurrentText("Ollama")
    assert dialog.base_url.text() == PRESETS["Ollama"]
    dialog.root_model.setText("llama3.1:8b")
    dialog.child_model.setText("qwen2.5:3b")
    dialog.max_iterations.setValue(7)
    dialog.max_depth.setValue(1)
    dialog.max_subcalls.setValue(0)          # unlimited
    dialog.max_tokens.setValue(250_000)
    dialog.max_cost.setValue(1.5)
    dialog.timeout.setValue(600)
    dialog.concurrency.setValue(3)
    dialog.min_sandbox.setCurrentText("full")
    click_ok(dialog)
    assert dialog.result() == SettingsDialog.DialogCode.Accepted

    saved = Settings.load()
    assert saved.base_url == "http://localhost:11434/v1"
    assert (saved.model, saved.sub_model, saved.min_sandbox) == ("llama3.1:8b", "qwen2.5:3b",
                                                                 "full")
    assert saved.limits() == Limits(max_iterations=7, max_depth=1, max_subcalls=None,
                                    max_tokens=250_000, max_cost_usd=1.5, timeout_s=600.0,
                                    concurrency=3)

    again = open_dialog(qtbot)
    assert again.preset.currentText() == "Ollama"
    assert again.base_url.text() == "http://localhost:11434/v1"
    assert again.root_model.text() == "llama3.1:8b"
    assert again.child_model.text() == "qwen2.5:3b"
    assert again.max_iterations.value() == 7
    assert again.max_subcalls.value() == 0
    assert again.max_subcalls.text() == "unlimited"
    assert again.max_tokens.value() == 250_000
    assert again.max_cost.value() == pytest.approx(1.5)
    assert again.timeout.value() == 600
    assert again.concurrency.value() == 3
    assert again.min_sandbox.currentText() == "full"


def test_cancel_discards(qtbot: Any) -> None:
    dialog = open_dialog(qtbot)
    dialog.root_model.setText("something-else")
    dialog.max_iterations.setValue(3)
    dialog.reject()
    assert not Settings.file().exists()
    assert Settings.load() == Settings()


def test_azure_preset_asks_for_the_url(qtbot: Any) -> None:
    dialog = open_dialog(qtbot)
    dialog.preset.setCurrentText("Azure OpenAI")
    assert dialog.base_url.text() == ""
    assert "azure" in dialog.base_url.placeholderText()


def test_key_goes_to_the_keyring_and_never_to_a_file(qtbot: Any, app_home: Path,
                                                     memory_keyring: MemoryKeyring) -> None:
    dialog = open_dialog(qtbot)
    assert dialog.key_note.isHidden()
    dialog.api_key.setText(SECRET)
    click_ok(dialog)

    assert memory_keyring.passwords[(KEYRING_SERVICE, KEYRING_USER)] == SECRET
    assert settings_module._session_key is None
    assert saved_api_key() == SECRET
    written = files_under(app_home)
    assert Settings.file() in written
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path

    again = open_dialog(qtbot)
    assert again.api_key.text() == SECRET
    assert again.api_key.echoMode() == again.api_key.EchoMode.Password


def test_without_keyring_the_key_is_for_this_session_only(qtbot: Any, app_home: Path) -> None:
    assert type(keyring.get_keyring()).__module__ == "keyring.backends.null"
    dialog = open_dialog(qtbot)
    assert dialog.key_note.isVisible()
    assert dialog.key_note.text() == SESSION_ONLY_NOTE
    dialog.api_key.setText(SECRET)
    click_ok(dialog)

    assert settings_module.save_api_key(SECRET) is False
    assert keyring.get_password(KEYRING_SERVICE, KEYRING_USER) is None
    assert resolve_endpoint(None, None)[1] == SECRET
    for path in files_under(app_home):
        assert SECRET.encode() not in path.read_bytes(), path


def test_test_connection_lists_the_scripted_model(qtbot: Any) -> None:
    with ScriptedServer() as server:
        dialog = open_dialog(qtbot)
        dialog.preset.setCurrentText("Custom")
        dialog.base_url.setText(server.base_url)
        dialog.api_key.setText("k")
        with qtbot.waitSignal(dialog.connectionTested, timeout=20_000) as blocker:
            dialog.test_button.click()
            assert not dialog.test_button.isEnabled()
        assert blocker.args[0] is True
        assert "scripted" in dialog.test_result.text()
        assert dialog.test_button.isEnabled()


def test_test_connection_to_a_dead_port_shows_an_error_without_freezing(qtbot: Any) -> None:
    with socket.socket() as sock:       # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dialog = open_dialog(qtbot)
    dialog.base_url.setText(f"http://127.0.0.1:{port}/v1")
    ticks: list[float] = []
    timer = QTimer(dialog)
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    with qtbot.waitSignal(dialog.connectionTested, timeout=30_000) as blocker:
        started = time.monotonic()
        dialog.test_button.click()
        assert time.monotonic() - started < 0.5      # the click returns at once
    timer.stop()
    assert blocker.args[0] is False
    assert dialog.test_result.text().startswith("Connection failed:")
    assert "Connection" in dialog.test_result.text()
    assert dialog.test_button.isEnabled()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert not gaps or max(gaps) < 0.5


def test_edit_settings_opens_the_dialog_and_runs_use_it(qtbot: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from rlm_desktop.ui.main_window import MainWindow, run_config

    monkeypatch.setenv("OPENAI_API_KEY", "k")
    window = MainWindow()
    qtbot.addWidget(window)
    assert window.settings_action.shortcut().toString() == "Ctrl+,"
    seen: list[SettingsDialog] = []

    def change_and_accept() -> None:
        dialog = window.settings_dialog
        assert isinstance(dialog, SettingsDialog)
        seen.append(dialog)
        dialog.root_model.setText("root-x")
        dialog.child_model.setText("child-y")
        dialog.max_iterations.setValue(5)
        dialog.min_sandbox.setCurrentText("none")
        click_ok(dialog)

    QTimer.singleShot(0, change_and_accept)
    window.settings_action.trigger()
    assert seen
    assert window.settings_dialog is None
    assert "root-x / child-y" in window.model_label.text()
    config = run_config()
    assert (config.model, config.child_model) == ("root-x", "child-y")
    assert config.limits.max_iterations == 5
    assert config.sandbox.minimum == "none"
    window.bridge.shutdown()


def test_the_key_field_says_when_a_key_is_needed(qtbot: Any) -> None:
    from rlm_desktop.ui.settings_dialog import SettingsDialog

    dialog = SettingsDialog()
    qtbot.addWidget(dialog)
    assert dialog.preset.currentText() == "OpenAI"
    assert dialog.api_key.placeholderText().startswith("required")
    dialog.preset.setCurrentText("Ollama")
    assert dialog.api_key.placeholderText() == "not needed for a local server"
    dialog.preset.setCurrentText("OpenRouter")
    assert "openrouter.ai" in dialog.api_key.placeholderText()
