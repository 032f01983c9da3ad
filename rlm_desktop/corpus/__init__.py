"""The corpus: a user's files read into Documents with provenance (Qt-free).

    from rlm_desktop.corpus.ingest import ingest
    result = ingest(["~/cases/acme"], progress=print)
    for doc in result.documents: ...

Names are resolved on first use so that a parser process, which imports
`rlm_desktop.corpus.worker`, does not pay for the pipeline it never runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Document": "rlm_desktop.corpus.document",
    "Location": "rlm_desktop.corpus.document",
    "Limits": "rlm_desktop.corpus.limits",
    "ExtractionError": "rlm_desktop.corpus.errors",
    "IngestResult": "rlm_desktop.corpus.ingest",
    "Progress": "rlm_desktop.corpus.ingest",
    "SourceFile": "rlm_desktop.corpus.ingest",
    "TextCache": "rlm_desktop.corpus.cache",
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "Document", "Location", "Limits", "ExtractionError", "IngestResult", "Progress",
    "SourceFile", "TextCache",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
