"""The settings dialog: endpoint (with provider presets), API key, models, budgets and the
minimum sandbox level. OK saves (settings JSON, key to the OS keyring); Cancel discards."""

from __future__ import annotations

import weakref
from typing import Any

import shiboken6
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from rlm_desktop.settings import Settings, keyring_available, save_api_key, saved_api_key
from rlm_desktop.ui.bridge import run_in_background

CUSTOM = "Custom"
AZURE = "Azure OpenAI"
# Preset name -> base URL (None: the user fills it in).
PRESETS: dict[str, str | None] = {
    "OpenAI": "https://api.openai.com/v1",
    AZURE: None,
    "OpenRouter": "https://openrouter.ai/api/v1",
    "Ollama": "http://localhost:11434/v1",
    "LM Studio": "http://localhost:1234/v1",
    "vLLM": "http://localhost:8000/v1",
    CUSTOM: None,
}
AZURE_PLACEHOLDER = "https://YOUR-RESOURCE.openai.azure.com/openai/v1"
_LOCAL_KEY = "not needed for a local server"
KEY_HINTS = {
    "OpenAI": "required: sk-… from platform.openai.com",
    AZURE: "required: a key of your Azure OpenAI resource",
    "OpenRouter": "required: sk-or-… from openrouter.ai",
    "Ollama": _LOCAL_KEY, "LM Studio": _LOCAL_KEY, "vLLM": "only if the server was started "
    "with --api-key",
    CUSTOM: "if the server asks for one",
}
SANDBOX_LEVELS = ("none", "partial", "full")
SESSION_ONLY_NOTE = ("No keyring is available on this system: the key is kept in memory for "
                     "this session only and never written to a file.")
CONNECT_TIMEOUT_S = 15.0


def list_models(base_url: str | None, api_key: str | None) -> list[str]:
    """The model ids the server offers (runs off the GUI thread)."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url or None, api_key=api_key or "none",
                    max_retries=0, timeout=CONNECT_TIMEOUT_S)
    try:
        return sorted(model.id for model in client.models.list())
    finally:
        client.close()


def _unlimited_spin(maximum: int, suffix: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(0, maximum)
    spin.setSpecialValueText("unlimited")
    spin.setSuffix(suffix)
    spin.setGroupSeparatorShown(True)
    spin.setToolTip("0 = unlimited")
    return spin


class SettingsDialog(QDialog):
    """Edit the saved Settings and the API key."""

    connectionTested = Signal(bool, str)   # ok, the text shown in the result label

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self._settings = Settings.load()
        self._testing = False

        # -- endpoint --
        self.preset = QComboBox()
        self.preset.addItems(list(PRESETS))
        self.base_url = QLineEdit()
        self.base_url.setPlaceholderText("https://…/v1 (an OpenAI-compatible endpoint)")
        self.base_url.setClearButtonEnabled(True)
        self.api_key = QLineEdit()
        self.api_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.api_key.setPlaceholderText(KEY_HINTS[CUSTOM])
        self.key_note = QLabel(SESSION_ONLY_NOTE)
        self.key_note.setWordWrap(True)
        self.key_note.setStyleSheet("color: #a15c00;")
        self.key_note.setVisible(not keyring_available())
        endpoint = QGroupBox("Model server")
        endpoint_form = QFormLayout(endpoint)
        endpoint_form.addRow("&Provider:", self.preset)
        endpoint_form.addRow("&Base URL:", self.base_url)
        endpoint_form.addRow("API &key:", self.api_key)
        endpoint_form.addRow("", self.key_note)

        # -- models --
        self.root_model = QLineEdit()
        self.root_model.setPlaceholderText("e.g. gpt-5, llama3.1:8b")
        self.child_model = QLineEdit()
        self.child_model.setPlaceholderText("the root model when empty")
        self.test_button = QPushButton("&Test connection")
        self.test_button.setToolTip("Ask the server which models it offers")
        self.test_button.clicked.connect(self.test_connection)
        self.test_result = QLabel("")
        self.test_result.setWordWrap(True)
        self.test_result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addWidget(self.test_result, 1)
        models = QGroupBox("Models")
        models_form = QFormLayout(models)
        models_form.addRow("&Root model:", self.root_model)
        models_form.addRow("C&hild model:", self.child_model)
        models_form.addRow(test_row)

        # -- budgets --
        self.max_iterations = QSpinBox()
        self.max_iterations.setRange(1, 10_000)
        self.max_depth = QSpinBox()
        self.max_depth.setRange(0, 10)
        self.max_depth.setToolTip("How deeply child RLMs may nest (0: the root model only)")
        self.max_subcalls = _unlimited_spin(10_000_000)
        self.max_tokens = _unlimited_spin(2_000_000_000)
        self.max_cost = QDoubleSpinBox()
        self.max_cost.setRange(0.0, 100_000.0)
        self.max_cost.setDecimals(2)
        self.max_cost.setPrefix("$")
        self.max_cost.setSpecialValueText("unlimited")
        self.max_cost.setToolTip("0 = unlimited")
        self.timeout = _unlimited_spin(7 * 24 * 3600, " s")
        self.concurrency = QSpinBox()
        self.concurrency.setRange(1, 256)
        self.concurrency.setToolTip("Child model calls in flight at once")
        budgets = QGroupBox("Budgets per run")
        budgets_form = QFormLayout(budgets)
        budgets_form.addRow("Root &iterations:", self.max_iterations)
        budgets_form.addRow("Recursion &depth:", self.max_depth)
        budgets_form.addRow("Child &calls:", self.max_subcalls)
        budgets_form.addRow("&Tokens:", self.max_tokens)
        budgets_form.addRow("C&ost:", self.max_cost)
        budgets_form.addRow("Ti&me:", self.timeout)
        budgets_form.addRow("Co&ncurrency:", self.concurrency)

        # -- sandbox --
        self.min_sandbox = QComboBox()
        self.min_sandbox.addItems(list(SANDBOX_LEVELS))
        sandbox_help = QLabel("Model-written code is refused when the operating system cannot "
                              "confine it at least this strongly (full: file system, system "
                              "calls and resources; partial: some of them; none: no OS "
                              "confinement, only the Python-level guards).")
        sandbox_help.setWordWrap(True)
        sandbox = QGroupBox("Safety")
        sandbox_form = QFormLayout(sandbox)
        sandbox_form.addRow("Minimum &sandbox:", self.min_sandbox)
        sandbox_form.addRow(sandbox_help)

        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        layout = QVBoxLayout(self)
        for group in (endpoint, models, budgets, sandbox):
            layout.addWidget(group)
        layout.addWidget(self.buttons)

        self._load(self._settings)
        self.preset.currentTextChanged.connect(self._on_preset)
        self.base_url.textEdited.connect(self._on_url_edited)

    # -- values ------------------------------------------------------------------------------

    def _load(self, settings: Settings) -> None:
        url = settings.base_url or ""
        preset = next((name for name, preset_url in PRESETS.items()
                       if preset_url and preset_url == url.rstrip("/")), None)
        if preset is None:
            preset = "OpenAI" if not url else (AZURE if "azure" in url.lower() else CUSTOM)
        self.preset.setCurrentText(preset)
        self.api_key.setPlaceholderText(KEY_HINTS.get(preset, KEY_HINTS[CUSTOM]))
        self.base_url.setText(url or (PRESETS[preset] or ""))
        self.api_key.setText(saved_api_key() or "")
        self.root_model.setText(settings.model)
        self.child_model.setText(settings.sub_model or "")
        self.max_iterations.setValue(settings.max_iterations)
        self.max_depth.setValue(settings.max_depth)
        self.max_subcalls.setValue(settings.max_subcalls or 0)
        self.max_tokens.setValue(settings.max_tokens or 0)
        self.max_cost.setValue(settings.max_cost_usd or 0.0)
        self.timeout.setValue(round(settings.timeout_s or 0))
        self.concurrency.setValue(settings.concurrency)
        level = settings.min_sandbox if settings.min_sandbox in SANDBOX_LEVELS else "partial"
        self.min_sandbox.setCurrentText(level)

    def settings(self) -> Settings:
        """The settings as currently entered in the dialog."""
        base = self._settings
        return Settings(
            base_url=self.base_url.text().strip() or None,
            model=self.root_model.text().strip() or base.model,
            sub_model=self.child_model.text().strip() or None,
            min_sandbox=self.min_sandbox.currentText(),
            max_iterations=self.max_iterations.value(),
            max_depth=self.max_depth.value(),
            max_subcalls=self.max_subcalls.value() or None,
            max_tokens=self.max_tokens.value() or None,
            max_cost_usd=self.max_cost.value() or None,
            timeout_s=float(self.timeout.value()) or None,
            concurrency=self.concurrency.value(),
        )

    @Slot()
    def accept(self) -> None:
        self.settings().save()
        stored = save_api_key(self.api_key.text())
        self.key_note.setVisible(not stored)
        super().accept()

    # -- presets -----------------------------------------------------------------------------

    @Slot(str)
    def _on_preset(self, name: str) -> None:
        self.api_key.setPlaceholderText(KEY_HINTS.get(name, KEY_HINTS[CUSTOM]))
        url = PRESETS.get(name)
        if url:
            self.base_url.setText(url)
        elif name == AZURE:
            self.base_url.clear()
            self.base_url.setPlaceholderText(AZURE_PLACEHOLDER)
            self.base_url.setFocus()
        else:
            self.base_url.setFocus()

    @Slot(str)
    def _on_url_edited(self, text: str) -> None:
        match = next((n for n, u in PRESETS.items() if u and u == text.strip().rstrip("/")),
                     None)
        if match is None and self.preset.currentText() not in (AZURE, CUSTOM):
            match = CUSTOM
        if match is not None:
            self.preset.blockSignals(True)
            self.preset.setCurrentText(match)
            self.preset.blockSignals(False)

    # -- test connection ---------------------------------------------------------------------

    @Slot()
    def test_connection(self) -> None:
        """List the server's models in the background; the result lands in a label."""
        if self._testing:
            return
        url = self.base_url.text().strip() or None
        key = self.api_key.text().strip() or None
        if key is None:
            from rlm_desktop.settings import resolve_endpoint

            key = resolve_endpoint(url, None)[1]
        self._testing = True
        self.test_button.setEnabled(False)
        self.test_result.setStyleSheet("")
        self.test_result.setText(f"Connecting to {url or PRESETS['OpenAI']}…")
        # The callbacks hold the dialog weakly: the worker thread drops its references last,
        # and must never be the one that destroys the dialog.
        dialog = weakref.ref(self)

        def done(models: list[str]) -> None:
            alive = dialog()
            if alive is not None and shiboken6.isValid(alive):
                alive._tested(models)

        def failed(error: BaseException, details: str) -> None:
            alive = dialog()
            if alive is not None and shiboken6.isValid(alive):
                alive._test_failed(error, details)

        run_in_background(lambda: list_models(url, key), done, failed,
                          name="rlm-test-connection")

    def _tested(self, models: list[str]) -> None:
        if models:
            shown = ", ".join(models[:20]) + (f" … (+{len(models) - 20})"
                                              if len(models) > 20 else "")
            text = f"Connected: {len(models)} model{'s' if len(models) != 1 else ''}: {shown}"
        else:
            text = "Connected, but the server lists no models."
        self._finish_test(True, text)

    def _test_failed(self, error: BaseException, details: str) -> None:
        self._finish_test(False, f"Connection failed: {describe_error(error)}")

    def _finish_test(self, ok: bool, text: str) -> None:
        self._testing = False
        self.test_button.setEnabled(True)
        self.test_result.setStyleSheet("" if ok else "color: #b00020;")
        self.test_result.setText(text)
        self.connectionTested.emit(ok, text)


def describe_error(error: BaseException) -> str:
    """One readable line for a failed connection."""
    name = type(error).__name__
    message: Any = getattr(error, "message", None) or str(error) or name
    cause = error.__cause__
    if cause is not None and str(cause):
        message = f"{message} ({cause})"
    return f"{name}: {message}"
