"""Take the README's screenshots of the real window, driven as a user would.

    QT_QPA_PLATFORM=offscreen uv run python docs/screenshots/take.py [OUTDIR]

Uses a private profile (nothing of the user's is read or written), the bundled demo answered
by the scripted server, and ../shared/corpus for the ingestion picture when it is there.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["RLM_DESKTOP_HOME"] = tempfile.mkdtemp(prefix="rlm-shots-")

from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer

from rlm_desktop.ui.app import make_application
from rlm_desktop.ui.main_window import MainWindow

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parents[2] / "shared" / "corpus"


def wait_until(done: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.01)


def settle(ms: int = 300) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def fresh_window() -> MainWindow:
    window = MainWindow()
    window.resize(1440, 900)
    window.show()
    settle()
    return window


def save(window: MainWindow, out: Path, name: str) -> None:
    settle()
    path = out / name
    if not window.grab().save(str(path)):
        raise OSError(f"could not save {path}")
    print(path)


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE
    out.mkdir(parents=True, exist_ok=True)
    make_application()

    window = fresh_window()
    save(window, out, "welcome.png")

    if CORPUS.is_dir():   # reading a few hundred real files: the progress bar
        window.add_paths([str(CORPUS)])
        wait_until(lambda: window.corpus.progress.isVisible()
                   and window.corpus.progress.value() > 5)
        save(window, out, "ingest-progress.png")
        window.corpus.cancel_ingestion()
        wait_until(lambda: not window.corpus.is_ingesting())
    window.close()

    window = fresh_window()
    window.start_demo()
    wait_until(lambda: not window.corpus.is_ingesting() and bool(window.corpus.documents()))
    window.start_run()
    wait_until(lambda: any(n.kind == "llm_query" for n in window.model_nodes()))
    save(window, out, "run-live.png")
    wait_until(lambda: window.last_result is not None)
    save(window, out, "run-finished.png")

    nodes = window.model_nodes()
    child = next(n for n in nodes if n.kind == "llm_query" and "PO-1186" in str(n.output))
    window.select_node(child.id)
    save(window, out, "inspector-child-call.png")
    code = [n for n in nodes if n.kind == "code"][2]
    window.select_node(code.id)
    save(window, out, "inspector-code.png")

    grep = next(n for n in nodes if n.kind == "grep" and "pdf" in str(n.input))
    window.select_node(grep.id)
    window.inspector.places.itemActivated.emit(window.inspector.places.topLevelItem(0), 0)
    settle(800)
    save(window, out, "citation-pdf.png")
    mail = next(c for c in window.last_result.citations if "Dana is on leave" in c["text"])
    window.open_citation(mail)
    save(window, out, "citation-mail.png")
    saved = window.investigation_id
    window.close()
    window.leave_demo()

    # A later session: the history, and the investigation reopened with its files checked.
    window = fresh_window()
    window.history_dock.show()
    wait_until(lambda: window.history.list.topLevelItemCount() > 0)
    window.open_investigation(saved)
    wait_until(lambda: bool(window.file_checks))
    save(window, out, "history-reopened.png")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
