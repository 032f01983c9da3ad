"""What the centre of the window shows before the first run: how to start, in three steps,
with buttons for each, and the demo for people who have no model set up yet."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class WelcomePage(QFrame):
    """The first-launch page. Its buttons only emit signals; the window acts on them."""

    addFilesRequested = Signal()
    addFolderRequested = Signal()
    demoRequested = Signal()
    settingsRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        title = QLabel("<h2>Ask hard questions of your documents</h2>")
        title.setWordWrap(True)
        intro = QLabel(
            "RLM Desktop does not stuff your documents into a prompt. They stay in a "
            "sandboxed Python session on this computer; the model writes code to search, "
            "count and split them, and hands pieces to further model calls. Every step "
            "appears here as it happens, and the answer cites the page or line it rests on.")
        intro.setWordWrap(True)

        self.add_files_button = QPushButton("Add files…")
        self.add_files_button.setToolTip("PDF, Word, mail (mbox, eml, msg), logs and text "
                                         "(Ctrl+O); or drop files and folders on the window")
        self.add_folder_button = QPushButton("Add folder…")
        self.settings_button = QPushButton("Set up a model…")
        self.settings_button.setToolTip("OpenAI, Azure OpenAI, OpenRouter, or a local server "
                                        "such as Ollama or LM Studio (Ctrl+,)")
        self.demo_button = QPushButton("Try the demo")
        self.demo_button.setToolTip("A small procurement corpus answered by a scripted "
                                    "stand-in server: no model, no network, no key")
        self.add_files_button.clicked.connect(self.addFilesRequested)
        self.add_folder_button.clicked.connect(self.addFolderRequested)
        self.settings_button.clicked.connect(self.settingsRequested)
        self.demo_button.clicked.connect(self.demoRequested)

        self.documents_status = QLabel()
        steps = QGridLayout()
        steps.setHorizontalSpacing(14)
        steps.setVerticalSpacing(12)
        rows = (
            ("1", "<b>Add documents</b><br>Drop PDFs, Word files, mailboxes or log folders "
                  "on the window. They are read on this computer.",
             (self.add_files_button, self.add_folder_button)),
            ("2", "<b>Choose a model</b><br>A cloud API or a local model server; the key "
                  "is kept in the system keychain.", (self.settings_button,)),
            ("3", "<b>Ask</b><br>Type a question above and press Ctrl+Enter. Questions "
                  "like <i>how many</i>, <i>list all</i> and <i>who approved what, "
                  "when</i> are what this tool is for.", ()),
        )
        for row, (number, text, buttons) in enumerate(rows):
            badge = QLabel(number)
            badge.setObjectName("stepNumber")
            badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
            badge.setFixedSize(28, 28)
            label = QLabel(text)
            label.setWordWrap(True)
            cell = QVBoxLayout()
            cell.setSpacing(6)
            cell.addWidget(label)
            if buttons:
                box = QHBoxLayout()
                for button in buttons:
                    box.addWidget(button)
                if row == 0:
                    box.addWidget(self.documents_status)
                box.addStretch(1)
                cell.addLayout(box)
            steps.addWidget(badge, row, 0, Qt.AlignmentFlag.AlignTop)
            steps.addLayout(cell, row, 1)
        steps.setColumnStretch(1, 1)

        demo = QLabel("<b>No model yet?</b> The demo opens three procurement documents and "
                      "answers a question about them with a <i>scripted</i> stand-in for a "
                      "model, so you can see how an investigation unfolds.")
        demo.setWordWrap(True)
        demo_row = QHBoxLayout()
        demo_row.addWidget(demo, 1)
        demo_row.addWidget(self.demo_button, 0, Qt.AlignmentFlag.AlignVCenter)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(28, 20, 28, 20)
        layout.setSpacing(14)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addSpacing(6)
        layout.addLayout(steps)
        layout.addSpacing(6)
        layout.addLayout(demo_row)
        layout.addStretch(1)
        self.setStyleSheet(
            "#welcome QLabel#stepNumber { border-radius: 14px; font-weight: bold;"
            " background: palette(highlight); color: palette(highlighted-text); }")

    def set_documents(self, count: int) -> None:
        """Mark step 1 done once documents are in."""
        self.documents_status.setText(f"✓ {count:,} document{'s' if count != 1 else ''} "
                                      "ready" if count else "")
