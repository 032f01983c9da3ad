"""Saved investigations: store, recorder, replay and export (Qt-free).

    from rlm_desktop.sessions import Store, Recorder
    store = Store()                       # <data dir>/investigations.sqlite3
    store.history()                       # [InvestigationSummary], newest first
    investigation = store.load(id)        # Investigation: settings, corpus, nodes, answer
    check_files(investigation)            # [FileCheck]: ok / changed / missing
    to_html(investigation)                # export.to_html / to_json / to_csv

Names are resolved on first use, like `rlm_desktop.corpus`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Store": "rlm_desktop.sessions.store",
    "StoreError": "rlm_desktop.sessions.store",
    "Recorder": "rlm_desktop.sessions.recorder",
    "Investigation": "rlm_desktop.sessions.investigation",
    "InvestigationSummary": "rlm_desktop.sessions.investigation",
    "ManifestEntry": "rlm_desktop.sessions.investigation",
    "FileCheck": "rlm_desktop.sessions.investigation",
    "check_files": "rlm_desktop.sessions.investigation",
    "ReplayCache": "rlm_desktop.sessions.replay",
    "RerunPlan": "rlm_desktop.sessions.replay",
    "plan_rerun": "rlm_desktop.sessions.replay",
    "rerun": "rlm_desktop.sessions.replay",
    "same_steps": "rlm_desktop.sessions.replay",
    "to_html": "rlm_desktop.sessions.export",
    "to_json": "rlm_desktop.sessions.export",
    "to_csv": "rlm_desktop.sessions.export",
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "Store", "StoreError", "Recorder", "Investigation", "InvestigationSummary",
    "ManifestEntry", "FileCheck", "check_files", "ReplayCache", "RerunPlan", "plan_rerun",
    "rerun", "same_steps", "to_html", "to_json", "to_csv",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
