"""The main window: documents on the left, the question on top, the live trace tree in the
centre, the inspector on the right, the answer and its citations at the bottom."""

from __future__ import annotations

import dataclasses
import platform
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import PySide6
from PySide6.QtCore import (
    QByteArray,
    QCoreApplication,
    QItemSelection,
    QSettings,
    Qt,
    QTimer,
    Signal,
    Slot,
    qVersion,
)
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from rlm_desktop import __version__, paths
from rlm_desktop.engine.run import RunConfig, RunResult
from rlm_desktop.engine.trace import TraceEvent, TraceNode
from rlm_desktop.sessions.investigation import FileCheck, Investigation, check_files
from rlm_desktop.sessions.recorder import Recorder
from rlm_desktop.sessions.store import Store, StoreError
from rlm_desktop.settings import Settings, resolve_endpoint
from rlm_desktop.ui.answer_view import AnswerView
from rlm_desktop.ui.bridge import RunBridge, run_in_background
from rlm_desktop.ui.corpus_panel import CorpusPanel
from rlm_desktop.ui.history import HistoryPanel, when
from rlm_desktop.ui.inspector import Inspector
from rlm_desktop.ui.richtext import escape
from rlm_desktop.ui.trace_model import (
    KIND_LABELS,
    NodeRole,
    TraceFilterProxy,
    TraceTreeModel,
)
from rlm_desktop.ui.trace_view import TraceView
from rlm_desktop.ui.welcome import WelcomePage

ORGANIZATION = "rlm-desktop"
SANDBOX_STARTING = "sandbox: starting…"
APPLICATION = "rlm-desktop"
STATUS_TEXT = {
    "completed": "Completed", "max_iterations": "Stopped at the iteration limit",
    "budget_exhausted": "Stopped: budget exhausted", "timeout": "Stopped: time limit reached",
    "cancelled": "Cancelled", "error": "Failed",
}


def window_settings() -> QSettings:
    """The window's QSettings: an INI file in the app's config dir (RLM_DESKTOP_HOME in
    tests), never the platform's shared registry or plist."""
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope,
                      str(paths.config_dir() / "qt"))
    return QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, ORGANIZATION,
                     APPLICATION)


def run_config() -> RunConfig:
    """Endpoint, key, models, prices and sandbox level as saved (environment first)."""
    from rlm_desktop.engine.budget import Pricing
    from rlm_desktop.engine.repl import SandboxPolicy

    settings = Settings.load()
    base_url, api_key = resolve_endpoint(None, None)
    try:
        pricing = Pricing.load(paths.config_dir() / "pricing.json")
    except (OSError, ValueError):
        pricing = Pricing()
    return RunConfig(base_url=base_url, api_key=api_key, model=settings.model,
                     sub_model=settings.sub_model or settings.model, limits=settings.limits(),
                     pricing=pricing, sandbox=SandboxPolicy(minimum=settings.min_sandbox))


class MainWindow(QMainWindow):
    """One investigation: documents, a question, its run, the answer."""

    ingestionFinished = Signal(object)   # IngestResult
    runFinished = Signal(object)         # RunResult, or None when the run could not start

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("RLM Desktop")
        self.setAcceptDrops(True)
        self.resize(1440, 900)
        self._started = 0.0
        self._tokens = 0
        self._cost = 0.0
        self._cost_recorded = 0.0    # part of the cost answered from a record, not spent now
        self._last_result: RunResult | None = None
        self._viewer_dock: QDockWidget | None = None
        self._sandbox = "sandbox: not yet known"
        self.settings_dialog: Any = None   # the settings dialog while it is open
        self.models_dialog: Any = None     # the rerun's model choice while it is open
        self._demo_server: Any = None      # the scripted server while in demo mode
        self._store: Store | None = None   # saved investigations, opened on first use
        self._store_error: str | None = None
        self._recorder: Recorder | None = None
        self._investigation_id: str | None = None  # the investigation on screen
        self._reopened: Investigation | None = None  # when it was reopened from history
        self._checks: list[FileCheck] | None = None  # None: not checked (yet)
        self._run_documents: list[Any] = []   # what the run on screen was given
        self._planning = 0        # a rerun whose files are being read (generation number)
        self._plans = 0
        self._closing = False
        self._stop_checks = threading.Event()   # stops the file check of a reopen
        self._resume_cache: Any = None   # the ReplayCache of a resume under way

        self.bridge = RunBridge(self)
        self.bridge.events.connect(self._on_events)
        self.bridge.finished.connect(self._on_run_finished)
        self.bridge.failed.connect(self._on_run_failed)

        # -- question --
        self.question = QPlainTextEdit()
        self.question.setPlaceholderText("Ask a question about the documents… "
                                         "(Ctrl+Enter runs, Esc cancels)")
        self.question.setTabChangesFocus(True)
        self.question.setFixedHeight(self.question.fontMetrics().lineSpacing() * 3 + 14)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the question over the documents (Ctrl+Enter)")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the run (Esc)")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.start_run)
        self.cancel_button.clicked.connect(self.cancel_run)
        self.demo_banner = QLabel(
            "<b>Demo mode</b> — answers come from RLM Desktop's <b>scripted stand-in "
            "server</b>, not from a language model. It follows a fixed script for the demo "
            "question. Nothing leaves this computer.")
        self.demo_banner.setObjectName("demoBanner")
        self.demo_banner.setWordWrap(True)
        self.demo_banner.setStyleSheet(
            "#demoBanner { background: #fff4ce; color: #4a3b00; border: 1px solid #e0c36a;"
            " border-radius: 4px; padding: 6px 10px; }")
        self.leave_demo_button = QPushButton("Leave demo")
        self.leave_demo_button.setToolTip("Use the model set up in Settings again")
        self.leave_demo_button.clicked.connect(self.leave_demo)
        self.demo_row = QWidget()
        demo_layout = QHBoxLayout(self.demo_row)
        demo_layout.setContentsMargins(0, 0, 0, 4)
        demo_layout.addWidget(self.demo_banner, 1)
        demo_layout.addWidget(self.leave_demo_button)
        self.demo_row.hide()
        self.record_banner = QLabel()
        self.record_banner.setObjectName("recordBanner")
        self.record_banner.setWordWrap(True)
        self.record_banner.setTextFormat(Qt.TextFormat.RichText)
        self.record_banner.setStyleSheet(
            "#recordBanner { background: palette(alternate-base); border: 1px solid "
            "palette(mid); border-radius: 4px; padding: 6px 10px; }")
        self.record_banner.linkActivated.connect(self._on_banner_link)
        self.record_banner.hide()
        question_row = QHBoxLayout()
        question_row.addWidget(QLabel("<b>Question</b>"), 0, Qt.AlignmentFlag.AlignTop)
        question_row.addWidget(self.question, 1)
        run_buttons = QVBoxLayout()
        run_buttons.addWidget(self.run_button)
        run_buttons.addWidget(self.cancel_button)
        run_buttons.addStretch(1)
        question_row.addLayout(run_buttons)

        # -- corpus --
        self.corpus = CorpusPanel()
        self.corpus.ingestionFinished.connect(self._on_ingested)
        self.corpus.ingestionStarted.connect(self._update_actions)

        # -- trace tree --
        self.model = TraceTreeModel(self)
        self.proxy = TraceFilterProxy(self)
        self.proxy.setSourceModel(self.model)
        self.tree = TraceView(self.model, self.proxy)   # follow-tail and what is open
        self.tree.selectionModel().selectionChanged.connect(self._on_selection)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter steps (Ctrl+F)")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self.proxy.set_text)
        self.trace_title = QLabel("<b>Steps</b>")
        self.kinds_button = QToolButton()
        self.kinds_button.setText("All steps")
        self.kinds_button.setToolTip("Show only some kinds of steps")
        self.kinds_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.kinds_menu = QMenu("Step &kinds", self)
        self.kind_actions: dict[str, QAction] = {}
        for kind, label in KIND_LABELS.items():
            if kind == "run":
                continue
            action = self.kinds_menu.addAction(label)
            action.setCheckable(True)
            action.setChecked(True)
            action.toggled.connect(self._on_kinds_changed)
            self.kind_actions[kind] = action
        self.kinds_menu.addSeparator()
        self.kinds_menu.addAction("Show all kinds", self.show_all_kinds)
        self.kinds_button.setMenu(self.kinds_menu)
        trace_head = QHBoxLayout()
        trace_head.addWidget(self.trace_title)
        trace_head.addStretch(1)
        trace_head.addWidget(self.kinds_button)
        trace_head.addWidget(self.filter, 2)
        trace = QWidget()
        trace_layout = QVBoxLayout(trace)
        trace_layout.setContentsMargins(0, 0, 0, 0)
        trace_layout.addLayout(trace_head)
        trace_layout.addWidget(self.tree, 1)

        # -- inspector, answer --
        self.inspector = Inspector()
        self.inspector.set_resolver(self._resolve_document)
        self.inspector.locationActivated.connect(self.open_citation)
        self.answer = AnswerView()
        self.answer.citationActivated.connect(self.open_citation)

        self.top_splitter = QSplitter(Qt.Orientation.Horizontal)
        self.top_splitter.setObjectName("topSplitter")
        self.top_splitter.addWidget(self.corpus)
        self.welcome = WelcomePage()
        self.welcome.addFilesRequested.connect(self.corpus.choose_files)
        self.welcome.addFolderRequested.connect(self.corpus.choose_folder)
        self.welcome.settingsRequested.connect(self.show_settings)
        self.welcome.demoRequested.connect(self.start_demo)
        self.trace_stack = QStackedWidget()
        self.trace_stack.addWidget(self.welcome)
        self.trace_stack.addWidget(trace)
        self.top_splitter.addWidget(self.trace_stack)
        self.top_splitter.addWidget(self.inspector)
        self.top_splitter.setStretchFactor(1, 1)
        self.top_splitter.setSizes([380, 700, 360])
        self.main_splitter = QSplitter(Qt.Orientation.Vertical)
        self.main_splitter.setObjectName("mainSplitter")
        self.main_splitter.addWidget(self.top_splitter)
        self.main_splitter.addWidget(self.answer)
        self.main_splitter.setStretchFactor(0, 3)
        self.main_splitter.setStretchFactor(1, 1)
        self.main_splitter.setSizes([600, 220])
        self.answer.splitter.setSizes([700, 700])

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 4)
        layout.addWidget(self.demo_row)
        layout.addWidget(self.record_banner)
        layout.addLayout(question_row)
        layout.addWidget(self.main_splitter, 1)
        self.setCentralWidget(central)

        # -- history (a dock: beside everything, hidden until asked for) --
        self.history = HistoryPanel()
        self.history.openRequested.connect(self.open_investigation)
        self.history.rerunRequested.connect(self.rerun_investigation)
        self.history.exportRequested.connect(self.choose_export)
        self.history.deleteRequested.connect(self.delete_investigation)
        self.history_dock = QDockWidget("History", self)
        self.history_dock.setObjectName("historyDock")
        self.history_dock.setWidget(self.history)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.history_dock)
        self.history_dock.hide()
        self.history_dock.visibilityChanged.connect(self._on_history_shown)

        # -- status bar --
        self.model_label = QLabel()
        self._show_model()
        self.tokens_label = QLabel("tokens: 0")
        self.cost_label = QLabel("cost: $0.0000")
        self.elapsed_label = QLabel("elapsed: 0.0 s")
        self.sandbox_label = QLabel(self._sandbox)
        self.sandbox_label.setToolTip("How strongly the model's code is confined by the OS "
                                      "(known once a run has started its REPL)")
        bar = self.statusBar()
        for label in (self.model_label, self.tokens_label, self.cost_label,
                      self.elapsed_label, self.sandbox_label):
            bar.addPermanentWidget(label)
        self._clock = QTimer(self)
        self._clock.setInterval(250)
        self._clock.timeout.connect(self._update_status)

        self._name_for_assistive_tech()
        self._make_actions()
        self._update_actions()
        self.restore_layout()
        QTimer.singleShot(0, self.refresh_history)   # also marks runs of a crash interrupted

    def _name_for_assistive_tech(self) -> None:
        """Names screen readers announce for the parts that have no visible label of their
        own (the labels beside them are separate widgets)."""
        for widget, name in (
                (self.question, "Question"), (self.tree, "Steps of the run"),
                (self.filter, "Filter steps"), (self.kinds_button, "Step kinds shown"),
                (self.inspector.input.text, "Input of the selected step"),
                (self.inspector.output.text, "Output of the selected step"),
                (self.inspector.places, "Places in the documents"),
                (self.answer.browser, "Answer"), (self.answer.citations, "Citations"),
                (self.corpus.list, "Documents"), (self.history.list, "Saved investigations"),
                (self.record_banner, "Saved investigation"), (self.demo_banner, "Demo mode")):
            widget.setAccessibleName(name)

    # -- menus and shortcuts -----------------------------------------------------------------

    def current_config(self) -> RunConfig:
        """What the next run uses: the saved settings, or the scripted demo server."""
        config = run_config()
        if self._demo_server is None:
            return config
        from rlm_desktop.engine.budget import Pricing
        from rlm_desktop.testing import demo

        return dataclasses.replace(config, base_url=self._demo_server.base_url,
                                   api_key="demo-needs-no-key", model=demo.MODEL,
                                   sub_model=demo.MODEL, pricing=Pricing())

    def _show_model(self) -> None:
        if self._demo_server is not None:
            self.model_label.setText("model: scripted demo (not a language model)")
            self.model_label.setToolTip(f"RLM Desktop's scripted stand-in server on "
                                        f"{self._demo_server.base_url}")
            return
        config = run_config()
        self.model_label.setText(f"model: {config.model}"
                                 + (f" / {config.child_model}"
                                    if config.child_model != config.model else ""))
        self.model_label.setToolTip(f"endpoint: {config.base_url or 'api.openai.com'}")

    def _make_actions(self) -> None:
        menu = self.menuBar()
        file_menu = menu.addMenu("&File")
        self.add_files_action = QAction("Add &files…", self)
        self.add_files_action.setShortcut(QKeySequence.StandardKey.Open)
        self.add_files_action.triggered.connect(self.corpus.choose_files)
        self.add_folder_action = QAction("Add f&older…", self)
        self.add_folder_action.triggered.connect(self.corpus.choose_folder)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addActions([self.add_files_action, self.add_folder_action])
        file_menu.addSeparator()
        self.export_menu = file_menu.addMenu("&Export investigation")
        self.export_actions: dict[str, QAction] = {}
        for label, fmt in (("HTML report…", "html"), ("JSON…", "json"),
                           ("CSV of citations…", "csv")):
            action = self.export_menu.addAction(label)
            action.triggered.connect(lambda _=False, f=fmt: self.choose_export(None, f))
            self.export_actions[fmt] = action
        file_menu.addSeparator()
        file_menu.addAction(quit_action)

        edit_menu = menu.addMenu("&Edit")
        self.copy_answer_action = QAction("&Copy answer", self)
        self.copy_answer_action.setShortcut(QKeySequence("Ctrl+Shift+C"))
        self.copy_answer_action.triggered.connect(self.answer.copy_answer)
        edit_menu.addAction(self.copy_answer_action)
        edit_menu.addSeparator()
        self.settings_action = QAction("&Settings…", self)
        self.settings_action.setShortcut(QKeySequence("Ctrl+,"))
        self.settings_action.setMenuRole(QAction.MenuRole.PreferencesRole)
        self.settings_action.triggered.connect(self.show_settings)
        edit_menu.addAction(self.settings_action)

        run_menu = menu.addMenu("&Run")
        self.run_action = QAction("&Run question", self)
        self.run_action.setShortcuts([QKeySequence("Ctrl+Return"), QKeySequence("Ctrl+Enter")])
        self.run_action.triggered.connect(self.start_run)
        self.cancel_action = QAction("&Cancel run", self)
        self.cancel_action.setShortcut(QKeySequence(Qt.Key.Key_Escape))
        self.cancel_action.triggered.connect(self.cancel_run)
        run_menu.addActions([self.run_action, self.cancel_action])

        view_menu = menu.addMenu("&View")
        self.filter_action = QAction("&Filter tree", self)
        self.filter_action.setShortcut(QKeySequence.StandardKey.Find)
        self.filter_action.triggered.connect(self.focus_filter)
        view_menu.addAction(self.filter_action)
        view_menu.addMenu(self.kinds_menu)
        view_menu.addSeparator()
        self.history_action = self.history_dock.toggleViewAction()
        self.history_action.setText("&History of investigations")
        self.history_action.setShortcut(QKeySequence("Ctrl+H"))
        view_menu.addAction(self.history_action)

        help_menu = menu.addMenu("&Help")
        self.demo_action = QAction("Try the &demo (scripted)", self)
        self.demo_action.triggered.connect(self.start_demo)
        help_menu.addAction(self.demo_action)
        help_menu.addSeparator()
        about = QAction("&About RLM Desktop", self)
        about.triggered.connect(self.show_about)
        help_menu.addAction(about)
        for action in (self.add_files_action, self.run_action, self.cancel_action,
                       self.filter_action, self.copy_answer_action, self.settings_action):
            self.addAction(action)   # shortcuts work wherever the focus is

    def _busy(self) -> str | None:
        """Why nothing else may start now (a run, a rerun being prepared), or None."""
        if self.bridge.run is not None:
            return "Wait for the run to finish (or cancel it) first."
        if self._planning:
            return "A rerun is being prepared; wait a moment."
        return None

    def _update_actions(self) -> None:
        running = self.bridge.run is not None
        busy = self._busy() is not None
        ingesting = self.corpus.is_ingesting()
        self.run_button.setEnabled(not busy and not ingesting)
        self.run_action.setEnabled(not busy and not ingesting)
        self.cancel_button.setEnabled(running)
        self.cancel_action.setEnabled(running)
        self.copy_answer_action.setEnabled(bool(self.answer.answer))
        self.export_menu.setEnabled(self._investigation_id is not None and not running)
        self.demo_action.setEnabled(not busy)
        self.history.set_busy(busy)

    @Slot()
    def _on_kinds_changed(self) -> None:
        chosen = [kind for kind, action in self.kind_actions.items() if action.isChecked()]
        every = len(chosen) == len(self.kind_actions)
        # A run node holds everything: it stays whenever anything is shown.
        self.proxy.set_kinds(None if every else [*chosen, "run"])
        self.kinds_button.setText("All steps" if every else
                                  f"{len(chosen)} of {len(self.kind_actions)} kinds")

    @Slot()
    def show_all_kinds(self) -> None:
        for action in self.kind_actions.values():
            action.blockSignals(True)
            action.setChecked(True)
            action.blockSignals(False)
        self._on_kinds_changed()

    @Slot()
    def focus_filter(self) -> None:
        self.filter.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.filter.selectAll()

    @Slot()
    def show_settings(self) -> bool:
        """The settings dialog (modal); True when the user saved."""
        from rlm_desktop.ui.settings_dialog import SettingsDialog

        dialog = SettingsDialog(self)
        self.settings_dialog = dialog   # reachable while open (tests, automation)
        try:
            saved = dialog.exec() == SettingsDialog.DialogCode.Accepted
        finally:
            self.settings_dialog = None
            dialog.deleteLater()
        if saved:
            self._show_model()
        return saved

    @Slot()
    def show_about(self) -> None:
        QMessageBox.about(self, "About RLM Desktop", about_text())

    # -- demo ---------------------------------------------------------------------------------

    @property
    def in_demo(self) -> bool:
        return self._demo_server is not None

    @Slot()
    def start_demo(self) -> bool:
        """Open the bundled demo corpus and question, answered by the scripted server."""
        from rlm_desktop.testing import demo

        busy = self._busy()
        if busy is not None:
            self.statusBar().showMessage(busy, 5000)
            return False
        if self._demo_server is None:
            self._demo_server = demo.make_server().start()
        self.demo_row.show()
        self._show_model()
        self.question.setPlainText(demo.QUESTION)
        added = self.add_paths([str(path) for path in demo.bundled_corpus()])
        self.statusBar().showMessage("Demo: press Run (Ctrl+Enter) to watch the scripted "
                                     "investigation.", 8000)
        return added

    @Slot()
    def leave_demo(self) -> None:
        if self._demo_server is None:
            return
        if self.bridge.run is not None:
            self.cancel_run()
        server, self._demo_server = self._demo_server, None
        server.stop()
        self.demo_row.hide()
        self._show_model()

    # -- documents ---------------------------------------------------------------------------

    def add_paths(self, paths_: list[str]) -> bool:
        """Read files or folders (what a drop, the dialogs and the command line do)."""
        return self.corpus.add_paths(paths_)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        local = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if local and self.add_paths(local):
            event.acceptProposedAction()
        else:
            if local:
                self.statusBar().showMessage("Still reading the previous documents; drop "
                                             "again when they are done.", 5000)
            event.ignore()

    def _on_ingested(self, result: Any) -> None:
        self._update_actions()
        self.welcome.set_documents(len(self.corpus.documents()))
        if self._reopened is not None and self.record_banner.isVisible():
            self._show_record_banner(self._reopened, self._checks)
        if result.cancelled:
            self.statusBar().showMessage("Reading the documents was cancelled.", 5000)
        self.ingestionFinished.emit(result)

    # -- the run -----------------------------------------------------------------------------

    @Slot()
    def start_run(self) -> bool:
        question = self.question.toPlainText().strip()
        if self._busy() is not None or self.corpus.is_ingesting():
            return False
        if not question:
            self.statusBar().showMessage("Type a question first.", 5000)
            self.question.setFocus()
            return False
        documents = self.corpus.documents()
        if not documents:
            self.statusBar().showMessage("Add documents first (Ctrl+O, or drop them here).",
                                         5000)
            return False
        return self._start(documents, question, self.current_config())

    def _start(self, documents: list[Any], question: str, config: RunConfig,
               replay_of: str | None = None, rerun: str | None = None) -> bool:
        """Start a run (recorded as an investigation when the store is available)."""
        self._reset_view()
        self._run_documents = list(documents)
        self._sandbox = SANDBOX_STARTING
        self._started = time.monotonic()
        self.trace_stack.setCurrentIndex(1)
        subscribers = []
        self._recorder = None
        store = self.store()
        if store is not None:
            try:
                recorder = Recorder(store)
                self._investigation_id = recorder.begin(question, documents, config,
                                                        replay_of=replay_of, rerun=rerun)
                config = recorder.configure(config)
            except (StoreError, sqlite3.Error, OSError) as exc:
                self.statusBar().showMessage(f"This run is not being saved: {exc}", 10000)
            else:
                self._recorder = recorder
                subscribers.append(recorder)
        self.bridge.start(documents, question, config, subscribers)
        self._clock.start()
        self._update_status()
        self._update_actions()
        self.statusBar().showMessage("Running…")
        return True

    @Slot()
    def cancel_run(self) -> None:
        if self.bridge.run is not None:
            self.statusBar().showMessage("Cancelling…")
            self.bridge.cancel()

    @property
    def last_result(self) -> RunResult | None:
        return self._last_result

    def _on_events(self, events: list[TraceEvent]) -> None:
        self.tree.add_events(events)   # the model, then follow-tail while at the bottom
        run = self.bridge.run
        if run is not None and self._sandbox == SANDBOX_STARTING:
            root = run.trace.nodes.get(1)    # the run node, made first (a thread-safe get)
            level = root.extra.get("sandbox_level") if root is not None else None
            if level:
                self._sandbox = f"sandbox: {level}"
                self.sandbox_label.setText(self._sandbox)
        selected = self.inspector.node
        for event in events:
            node = event.node
            if event.type == "end" and node.kind != "run":
                self._tokens += node.usage.total_tokens if node.usage else 0
                self._cost += node.cost_usd or 0.0
                if node.extra.get("from_record"):
                    self._cost_recorded += node.cost_usd or 0.0
            if selected is not None and node.id == selected.id and event.type == "end":
                self.inspector.show_node(node)
        self.tokens_label.setText(f"tokens: {self._tokens:,}")   # now, not at the next tick
        self.cost_label.setText(self._cost_text())

    def _cost_text(self) -> str:
        """The run's cost; with steps answered from a record, what was spent now besides."""
        if self._cost_recorded > 0:
            return (f"cost: ${self._cost:.4f} (${max(0.0, self._cost - self._cost_recorded):.4f}"
                    " spent now)")
        return f"cost: ${self._cost:.4f}"

    def _reset_view(self) -> None:
        self.model.clear()
        self.inspector.show_node(None)
        self.answer.clear()
        self._tokens, self._cost = 0, 0.0
        self._cost_recorded = 0.0
        self._last_result = None
        self._investigation_id = None
        self._reopened = None
        self._checks = None
        self._run_documents = []
        self.record_banner.hide()
        self._show_model()

    def _on_run_finished(self, result: RunResult) -> None:
        self._clock.stop()
        self._last_result = result
        if self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            failure = None
            try:
                recorder.finish(result)
            except (StoreError, sqlite3.Error, OSError) as exc:
                failure = str(exc)
            store = self._store
            failure = failure or (store.write_failure if store is not None else None)
            if failure:
                QTimer.singleShot(0, lambda: self._warn_not_saved(failure))
            QTimer.singleShot(0, self.refresh_history)
        cache, self._resume_cache = self._resume_cache, None
        if cache is not None:
            resumed = (f"Resumed: {cache.served} model calls from the record, {cache.live} "
                       "live")
            if cache.live == 0 and result.status != "completed":
                resumed += (" — nothing new was done: it stopped where the record stops "
                            "(raise the limit that stopped it in Settings)")
            QTimer.singleShot(0, lambda: self.statusBar().showMessage(resumed, 0))
        self._tokens = result.usage.total_tokens
        self._cost = result.cost_usd
        level = result.sandbox.get("level") if result.sandbox else None
        self._sandbox = f"sandbox: {level}" if level else "sandbox: not started"
        note = None
        if result.status != "completed":
            note = STATUS_TEXT.get(result.status, result.status)
            if result.error:
                note += f": {result.error}"
        self.answer.show_answer(result.answer, result.citations, note)
        if not self.tree.selectionModel().hasSelection():
            self._select_final_step()
        self._update_status(elapsed=result.elapsed_s)
        self._update_actions()
        self.statusBar().showMessage(
            f"{STATUS_TEXT.get(result.status, result.status)} · "
            f"{result.iterations} iterations · {result.subcalls:,} child calls", 0)
        self.runFinished.emit(result)

    def _warn_not_saved(self, reason: str) -> None:
        self.statusBar().showMessage(f"This investigation was not saved completely: {reason}",
                                     0)
        QMessageBox.warning(self, "Saving the investigation",
                            "The steps of this run could not all be saved (the answer on "
                            f"screen is complete):\n\n{reason}")

    def _on_run_failed(self, details: str) -> None:
        self._clock.stop()
        self._recorder = None
        self._update_actions()
        self.runFinished.emit(None)
        raise RuntimeError(f"the run failed with an internal error:\n{details}")

    def _update_status(self, elapsed: float | None = None) -> None:
        if elapsed is None:
            elapsed = time.monotonic() - self._started if self._started else 0.0
        self.tokens_label.setText(f"tokens: {self._tokens:,}")
        self.cost_label.setText(self._cost_text())
        self.elapsed_label.setText(f"elapsed: {elapsed:.1f} s")
        self.sandbox_label.setText(self._sandbox)

    # -- inspector and citations ------------------------------------------------------------

    def _on_selection(self, selected: QItemSelection, deselected: QItemSelection) -> None:
        indexes = self.tree.selectionModel().selectedRows(0)
        node = self.proxy.data(indexes[0], NodeRole) if indexes else None
        self.inspector.show_node(node)

    def _select_final_step(self) -> None:
        """After a run, show the step that gave the answer (the last one when none did)."""
        run = self.model.index(0, 0)
        rows = self.model.rowCount(run)
        for row in reversed(range(rows)):
            node = self.model.data(self.model.index(row, 0, run), NodeRole)
            if node is not None and node.kind == "final":
                self.select_node(node.id)
                return

    def model_nodes(self) -> list[TraceNode]:
        """Every step in the tree, by id (the automation and tests read it)."""
        return self.model.nodes()

    def select_node(self, node_id: int) -> bool:
        """Select a step by id (the tree scrolls to it); False when it is filtered out."""
        index = self.proxy.mapFromSource(self.model.index_of_node(node_id))
        if not index.isValid():
            return False
        self.tree.setCurrentIndex(index)
        self.tree.scrollTo(index)
        return True

    @Slot(dict)
    def open_citation(self, citation: dict[str, Any]) -> None:
        from rlm_desktop.ui.viewer import DocumentViewer  # loads QtPdf only when needed

        if self._viewer_dock is None:
            dock = QDockWidget("Document", self)
            dock.setObjectName("documentDock")
            dock.setWidget(DocumentViewer(dock))
            dock.setAllowedAreas(Qt.DockWidgetArea.AllDockWidgetAreas)
            self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, dock)
            self._viewer_dock = dock
            # Room to read a page: the document takes about a third of the window, mostly
            # from the documents list, so the steps keep their summaries.
            self.resizeDocks([dock], [max(400, self.width() * 29 // 100)],
                             Qt.Orientation.Horizontal)
            QTimer.singleShot(0, self._make_room_for_document)
        dock = self._viewer_dock
        viewer = dock.widget()
        assert isinstance(viewer, DocumentViewer)
        path = str(citation.get("path") or "")
        kind = self._kind_of(path, str(citation.get("document") or ""))
        viewer.show_location(path, kind, citation.get("page"), citation.get("line"),
                             str(citation.get("text") or ""),
                             name=str(citation.get("document") or "") or None)
        dock.setWindowTitle(f"Document — {citation.get('document') or Path(path).name}")
        dock.show()
        dock.raise_()

    def _make_room_for_document(self) -> None:
        """Once the dock has its width: take it from the documents list and the inspector
        rather than from the steps, whose summaries are what the reader follows."""
        sizes = self.top_splitter.sizes()
        total = sum(sizes)
        if len(sizes) != 3 or total <= 0:
            return
        corpus = min(sizes[0], max(self.corpus.minimumSizeHint().width(), total // 5))
        inspector = min(sizes[2], max(240, total * 28 // 100))
        self.top_splitter.setSizes([corpus, total - corpus - inspector, inspector])

    @property
    def viewer_dock(self) -> QDockWidget | None:
        return self._viewer_dock

    def _resolve_document(self, name: str) -> tuple[str, str] | None:
        """A document of the corpus by the name the REPL gives it: its file and kind."""
        if self._reopened is not None:      # a saved run: its own files, nothing else
            entry = self._reopened.document(name)
            return (entry.path, entry.kind) if entry is not None else None
        for document in self._run_documents or self.corpus.documents():
            if document.name == name:
                return document.path, document.kind
        return None

    def _kind_of(self, path: str, name: str) -> str:
        resolved = self._resolve_document(name) if name else None
        if resolved is not None and resolved[0] == path:
            return resolved[1]
        return "pdf" if path.lower().endswith(".pdf") else "text"

    # -- saved investigations -----------------------------------------------------------------

    def store(self) -> Store | None:
        """The investigations database, opened on first use (which also marks runs of a
        crashed session as interrupted); None, said once, when it cannot be opened."""
        if self._store is None and self._store_error is None:
            try:
                self._store = Store()
            except (StoreError, sqlite3.Error, OSError) as exc:
                self._store_error = str(exc)
                self.statusBar().showMessage(
                    f"Investigations cannot be saved: {exc}", 15000)
        return self._store

    def _on_history_shown(self, visible: bool) -> None:
        if visible:
            self.refresh_history()
            if self.history_dock.height() > self.height() // 4:
                self.resizeDocks([self.history_dock], [max(150, self.height() // 5)],
                                 Qt.Orientation.Vertical)

    @property
    def investigation_id(self) -> str | None:
        """The investigation on screen (being recorded, finished, or reopened)."""
        return self._investigation_id

    @Slot()
    def refresh_history(self) -> None:
        store = self.store()
        if store is None:
            return
        try:
            summaries = store.history()
        except (StoreError, sqlite3.Error) as exc:
            self.statusBar().showMessage(f"The history cannot be read: {exc}", 10000)
            return
        self.history.set_investigations(summaries, current=self._investigation_id)
        self._update_actions()

    def _load(self, investigation_id: str) -> Investigation | None:
        store = self.store()
        if store is None:
            return None
        try:
            return store.load(investigation_id)
        except (KeyError, StoreError, sqlite3.Error, ValueError, TypeError) as exc:
            QMessageBox.warning(self, "Investigation", f"This investigation cannot be "
                                f"opened: {exc}")
            self.refresh_history()
            return None

    @Slot(str)
    def open_investigation(self, investigation_id: str) -> bool:
        """Show a saved investigation exactly as it was: its steps, inspector, answer and
        citations; then check in the background whether its files changed since."""
        busy = self._busy()
        if busy is not None:
            self.statusBar().showMessage(busy, 5000)
            return False
        investigation = self._load(investigation_id)
        if investigation is None:
            return False
        self._reset_view()
        self._investigation_id = investigation.id
        self._reopened = investigation
        self.trace_stack.setCurrentIndex(1)
        self.question.setPlainText(investigation.question)
        events: list[TraceEvent] = []
        for recorded in investigation.nodes:
            node = recorded
            if node.ended is None and investigation.status != "running":
                # Cut short by a crash or a kill: shown as such, not as still running.
                node = dataclasses.replace(
                    node, ended=investigation.ended or node.started,
                    error=node.error or "interrupted: the app stopped before this step "
                                        "ended")
            events.append(TraceEvent("start", node))
            if node.ended is not None:
                events.append(TraceEvent("end", node))
        self.tree.add_events(events)   # opens the path to the last step, like a live run
        result = investigation.result()
        self._last_result = result
        self._tokens, self._cost = result.usage.total_tokens, result.cost_usd
        self._cost_recorded = sum(n.cost_usd or 0.0 for n in investigation.nodes
                                  if n.extra.get("from_record"))
        level = investigation.sandbox.get("level") if investigation.sandbox else None
        self._sandbox = f"sandbox: {level}" if level else "sandbox: not recorded"
        note = None
        if investigation.status != "completed":
            note = STATUS_TEXT.get(investigation.status, investigation.status.capitalize())
            if investigation.error:
                note += f": {investigation.error}"
        self.answer.show_answer(result.answer, result.citations, note)
        self._select_final_step()
        self._update_status(elapsed=investigation.elapsed_s)
        self._show_record_banner(investigation, None)
        self.model_label.setText(f"model: {investigation.model or 'unknown'} (saved run)")
        self.model_label.setToolTip("The model this investigation was run with; a new run "
                                    "uses the one in Settings")
        self.history.select(investigation.id)
        self._update_actions()

        def checked(checks: list[FileCheck], shown: str = investigation.id) -> None:
            if stop.is_set():
                return          # stopped part way: its list is not the whole answer
            if self._investigation_id == shown and self._reopened is not None:
                self._checks = checks
                self._show_record_banner(self._reopened, checks)

        self._stop_checks.set()            # an earlier reopen's check is no longer wanted
        stop = self._stop_checks = threading.Event()
        run_in_background(lambda: check_files(investigation, stop), checked,
                          lambda exc, details: None, name="rlm-check-files")
        return True

    def _show_record_banner(self, investigation: Investigation,
                            checks: list[FileCheck] | None) -> None:
        status = STATUS_TEXT.get(investigation.status, investigation.status.capitalize())
        text = (f"<b>Saved investigation</b> of {when(investigation.created)} · "
                f"{escape(status)} · model {escape(investigation.model or 'unknown')}")
        if investigation.replay_of:
            text += {"live": " · run again live", "resume": " · resumed from its record"}.get(
                str(investigation.settings.get("rerun") or ""), " · replayed from the record")
        if checks is None:
            text += " · checking whether its files changed…"
        else:
            changed = [c for c in checks if c.state == "changed"]
            missing = [c for c in checks if c.state == "missing"]
            if not changed and not missing:
                text += (f" · all {len(checks):,} files unchanged since (sha256)"
                         if checks else "")
            else:
                parts = []
                if changed:
                    parts.append(f"{len(changed):,} changed since: " + ", ".join(
                        Path(c.path).name for c in changed[:5]))
                if missing:
                    parts.append(f"{len(missing):,} missing: " + ", ".join(
                        Path(c.path).name for c in missing[:5]))
                text += (' · <span style="color:#c62828"><b>'
                         + "; ".join(escape(p) for p in parts) + "</b></span>"
                         " — citations may no longer match the files")
        if not self.corpus.documents() and investigation.corpus:
            text += ' · <a href="load-documents">Load its documents</a> to ask more'
        self.record_banner.setText(text)
        self.record_banner.show()

    def _on_banner_link(self, link: str) -> None:
        if link == "load-documents" and self._reopened is not None:
            from rlm_desktop.sessions.investigation import source_files

            files = [path for path in source_files(self._reopened.corpus)
                     if Path(path).exists()]
            if files:
                self.add_paths(files)

    @property
    def file_checks(self) -> list[FileCheck]:
        return list(self._checks or ())

    @Slot(str, str)
    def rerun_investigation(self, investigation_id: str, mode: str | bool,
                            models: tuple[str, str] | None = None) -> bool:
        """Run a saved investigation again: "replay" from its record (no model calls),
        "live" with the current model, or "resume": its record up to where it stopped, then
        its own models live. Its files are read again in the background first. (True and
        False mean replay and live.)"""
        from rlm_desktop.sessions.replay import plan_rerun

        store = self.store()
        busy = self._busy() or ("Wait until the documents are read." if
                                self.corpus.is_ingesting() else None)
        if busy is not None:
            self.statusBar().showMessage(busy, 5000)
            return False
        if store is None:
            return False
        if isinstance(mode, bool):
            mode = "replay" if mode else "live"
        current = self.current_config()
        if mode == "choose":
            models = models or self._ask_models(current.model, current.child_model)
            if models is None:
                return False
            mode = "live"
        replay = mode == "replay"
        # Live and resume: exactly the endpoint in use now (None is the client's default,
        # OpenAI), so today's key never goes to the endpoint the record was made with.
        options: dict[str, Any] = {} if replay else {
            "base_url": current.base_url, "api_key": current.api_key}
        if mode == "live":
            root, child = models or (current.model, current.child_model)
            options.update(model=root, sub_model=child)
        elif mode == "resume":
            # The limits in Settings now (a run stopped by a budget resumes with the one
            # raised there), and a word before its conversation goes to another server.
            options.update(resume=True, limits=current.limits)
        self._plans += 1
        generation = self._planning = self._plans
        self._update_actions()
        self.statusBar().showMessage("Reading the investigation's files again…")

        def current_plan() -> bool:
            if self._planning != generation or self._closing:
                return False        # the window closed, or a newer plan took over
            self._planning = 0
            self._update_actions()
            return True

        def planned(plan: Any) -> None:
            if not current_plan():
                return
            if plan.skipped:
                self.statusBar().showMessage(
                    f"{len(plan.skipped)} file(s) could not be read again; running on the "
                    "rest.", 10000)
            if plan.mode == "resume" and not self._confirm_resume_endpoint(plan):
                self.statusBar().showMessage("Not resumed.", 5000)
                return
            self.question.setPlainText(plan.question)
            self._resume_cache = plan.config.replay if plan.mode == "resume" else None
            if self._start(plan.documents, plan.question, plan.config,
                           replay_of=plan.replay_of, rerun=plan.mode):
                self.statusBar().showMessage({
                    "replay": "Replaying from the record…",
                    "resume": "Resuming: the recorded steps first, then live…",
                }.get(plan.mode, "Running again…"))

        def failed(exc: BaseException, details: str) -> None:
            if current_plan():
                QMessageBox.warning(self, "Rerun", "This investigation cannot be run "
                                    f"again: {exc}")

        run_in_background(lambda: plan_rerun(store, investigation_id, replay=replay,
                                             **options),
                          planned, failed, name="rlm-plan-rerun")
        return True

    def _confirm_resume_endpoint(self, plan: Any) -> bool:
        """Resuming sends the run's conversation, document excerpts included, to the
        endpoint in use now: ask first when that is another server than the recorded one."""
        from rlm_desktop.sessions.replay import same_server

        recorded, base_url = plan.recorded_base_url, plan.config.base_url
        if same_server(recorded, base_url):
            return True
        answer = QMessageBox.question(
            self, "Resume on another server",
            f"This investigation was recorded with {recorded or 'OpenAI'}. Resuming sends "
            "its conversation, with the document excerpts in it, to "
            f"{base_url or 'OpenAI'}, the endpoint in Settings now.\n\nResume there?")
        return answer == QMessageBox.StandardButton.Yes

    def _ask_models(self, root: str, child: str) -> tuple[str, str] | None:
        """The root and child models for a live rerun (None when the user cancels)."""
        from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout

        dialog = QDialog(self)
        dialog.setWindowTitle("Rerun with other models")
        root_edit, child_edit = QLineEdit(root), QLineEdit(child)
        form = QFormLayout(dialog)
        form.addRow(QLabel("The investigation runs again, live, through the endpoint and "
                           "key in use now."))
        form.addRow("&Root model:", root_edit)
        form.addRow("&Child model:", child_edit)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(dialog.accept)
        buttons.rejected.connect(dialog.reject)
        form.addRow(buttons)
        self.models_dialog = dialog     # reachable while open (tests)
        try:
            if dialog.exec() != QDialog.DialogCode.Accepted:
                return None
            chosen = root_edit.text().strip(), child_edit.text().strip() or \
                root_edit.text().strip()
        finally:
            self.models_dialog = None
            dialog.deleteLater()
        return chosen if chosen[0] else None

    def export_investigation(self, investigation_id: str, fmt: str, target: Path) -> bool:
        """Write an investigation as an HTML report, JSON or CSV of citations."""
        from rlm_desktop.sessions.export import export, write_report

        investigation = self._load(investigation_id)
        if investigation is None:
            return False
        try:
            write_report(target, export(investigation, fmt))
        except OSError as exc:
            QMessageBox.warning(self, "Export", f"Cannot write {target}: "
                                f"{exc.strerror or exc}")
            return False
        self.statusBar().showMessage(f"Exported to {target}", 8000)
        return True

    def choose_export(self, investigation_id: str | None, fmt: str) -> bool:
        """Ask where to save an export (the investigation on screen when no id is given)."""
        chosen = investigation_id or self._investigation_id
        if chosen is None:
            return False
        filters = {"html": "HTML report (*.html)", "json": "JSON (*.json)",
                   "csv": "CSV (*.csv)"}
        suggested = Path.home() / f"investigation-{chosen[:8]}.{fmt}"
        filename, _ = QFileDialog.getSaveFileName(self, "Export investigation",
                                                  str(suggested), filters[fmt])
        if not filename:
            return False
        return self.export_investigation(chosen, fmt, Path(filename))

    @Slot(str)
    def delete_investigation(self, investigation_id: str, confirm: bool = True) -> bool:
        store = self.store()
        if store is None:
            return False
        if self.bridge.run is not None and investigation_id == self._investigation_id:
            self.statusBar().showMessage("This investigation is still running.", 5000)
            return False
        if confirm:
            answer = QMessageBox.question(
                self, "Delete investigation",
                "Delete this investigation and its record of every step? This cannot be "
                "undone (the documents themselves are not touched).")
            if answer != QMessageBox.StandardButton.Yes:
                return False
        try:
            deleted = store.delete(investigation_id)
        except (StoreError, sqlite3.Error) as exc:
            QMessageBox.warning(self, "Delete", f"Could not delete it: {exc}")
            return False
        if deleted and investigation_id == self._investigation_id:
            self._reset_view()
        self.refresh_history()
        return deleted

    # -- layout memory and shutdown -----------------------------------------------------------

    def save_layout(self) -> None:
        settings = window_settings()
        settings.setValue("window/geometry", self.saveGeometry())
        settings.setValue("window/state", self.saveState())
        for splitter in (self.top_splitter, self.main_splitter, self.answer.splitter):
            settings.setValue(f"splitters/{splitter.objectName()}", splitter.saveState())
        settings.sync()

    def restore_layout(self) -> None:
        settings = window_settings()
        geometry = settings.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        state = settings.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        for splitter in (self.top_splitter, self.main_splitter, self.answer.splitter):
            saved = settings.value(f"splitters/{splitter.objectName()}")
            if isinstance(saved, QByteArray):
                splitter.restoreState(saved)

    def closeEvent(self, event: QCloseEvent) -> None:
        self._closing = True
        self._stop_checks.set()
        self._store_error = "the window is closed"   # never reopened after this
        self.save_layout()
        self.corpus.cancel_ingestion()
        self.bridge.shutdown()
        # The run's last signal (its result, "cancelled") is queued: deliver it, so the
        # recording ends as it did instead of as "interrupted" on the next launch.
        if self._recorder is not None:
            QCoreApplication.processEvents()
        if self._demo_server is not None:
            self._demo_server.stop()
            self._demo_server = None
        if self._store is not None:
            self._store.close()
            self._store = None
        super().closeEvent(event)


def about_text() -> str:
    return (f"<h3>RLM Desktop {__version__}</h3>"
            "<p>Ask hard questions of large document sets with Recursive Language Models.</p>"
            f"<p>Qt {qVersion()} · PySide {PySide6.__version__} · "
            f"Python {platform.python_version()}<br>"
            f"{QCoreApplication.applicationName() or APPLICATION} on {platform.system()}</p>")

