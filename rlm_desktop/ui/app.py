"""Starting the desktop app: the QApplication, the crash dialog, and the automation flags
(`rlm-desktop PATH --question Q --run --screenshot FILE --exit-when-done`)."""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from PySide6.QtCore import QCoreApplication, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from rlm_desktop.resources import icon_set_path
from rlm_desktop.ui.main_window import APPLICATION, ORGANIZATION, MainWindow

EXIT_OK = 0
EXIT_ERROR = 1

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]


def make_application(argv: list[str] | None = None) -> QApplication:
    existing = QApplication.instance()
    app = existing if isinstance(existing, QApplication) else QApplication(argv or ["rlm-desktop"])
    QCoreApplication.setOrganizationName(ORGANIZATION)
    QCoreApplication.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("RLM Desktop")
    app.setWindowIcon(QIcon(str(icon_set_path())))
    return app


class CrashDialog(QMessageBox):
    """An exception that escaped a slot: what happened, with the traceback to copy."""

    def __init__(self, details: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setIcon(QMessageBox.Icon.Critical)
        self.setWindowTitle("RLM Desktop — unexpected error")
        last = details.strip().splitlines()[-1] if details.strip() else "unknown error"
        self.setText("Something went wrong inside RLM Desktop. The window keeps running, "
                     "but the last action may not have finished.")
        self.setInformativeText(last)
        self.setDetailedText(details)
        self.setStandardButtons(QMessageBox.StandardButton.Close)


def install_excepthook(on_fatal: Callable[[str], None] | None = None) -> ExceptHook:
    """Show exceptions raised in slots in a crash dialog (and on stderr) instead of losing
    them; `on_fatal` replaces the dialog (headless automation exits instead)."""
    previous = sys.excepthook
    dialogs: list[CrashDialog] = []

    def hook(kind: type[BaseException], error: BaseException,
             tb: TracebackType | None) -> None:
        details = "".join(traceback.format_exception(kind, error, tb))
        sys.stderr.write(details)
        if on_fatal is not None:
            on_fatal(details)
            return
        if QApplication.instance() is None:
            previous(kind, error, tb)
            return
        dialog = CrashDialog(details, QApplication.activeWindow())
        dialogs.append(dialog)           # kept alive while shown
        dialog.finished.connect(lambda _=0, d=dialog: dialogs.remove(d))
        dialog.open()

    sys.excepthook = hook
    return previous


class Automation:
    """Drives the window for the command-line flags: ingest, run, screenshot, quit."""

    def __init__(self, window: MainWindow, args: argparse.Namespace) -> None:
        self.window = window
        self.args = args
        self.exit_code = EXIT_OK
        window.ingestionFinished.connect(self._on_ingested)
        window.runFinished.connect(self._on_run_finished)

    def start(self) -> None:
        args = self.args
        if getattr(args, "demo", False):
            if not self.window.start_demo():
                self._done()
            if args.question:
                self.window.question.setPlainText(args.question)
            return
        if args.question:
            self.window.question.setPlainText(args.question)
        if args.paths:
            if not self.window.add_paths(list(args.paths)):
                self._done()
        elif args.run:
            if not self.window.start_run():
                self.exit_code = EXIT_ERROR
                self._done()
        else:
            self._done()

    def _on_ingested(self, result: Any) -> None:
        if not self.args.run:
            self._done()
            return
        if not self.window.start_run():
            print("rlm-desktop: nothing to run (no question or no readable documents)",
                  file=sys.stderr)
            self.exit_code = EXIT_ERROR
            self._done()

    def _on_run_finished(self, result: Any) -> None:
        if result is None or result.status == "error":
            self.exit_code = EXIT_ERROR
        self._done()

    def _done(self) -> None:
        # Let the last layout and paint happen before grabbing the window.
        QTimer.singleShot(300, self._capture_and_maybe_quit)

    def _capture_and_maybe_quit(self) -> None:
        if self.args.screenshot:
            target = Path(self.args.screenshot)
            target.parent.mkdir(parents=True, exist_ok=True)
            if not self.window.grab().save(str(target)):
                print(f"rlm-desktop: could not save the screenshot to {target}",
                      file=sys.stderr)
                self.exit_code = EXIT_ERROR
        if self.args.exit_when_done:
            self.window.close()
            QApplication.exit(self.exit_code)


def run_gui(args: argparse.Namespace) -> int:
    """Open the window; with automation flags, drive it. Returns the exit status."""
    app = make_application([sys.argv[0] if sys.argv else "rlm-desktop"])
    exit_when_done = bool(getattr(args, "exit_when_done", False))

    def fatal(details: str) -> None:
        QApplication.exit(EXIT_ERROR)

    install_excepthook(fatal if exit_when_done else None)
    window = MainWindow()
    window.show()
    automation = Automation(window, args)
    QTimer.singleShot(0, automation.start)
    code = app.exec()
    return code if code else automation.exit_code
