"""RLM Desktop: ask hard questions of large document sets with Recursive Language Models."""

from __future__ import annotations

__all__ = ["__version__"]


def __getattr__(name: str) -> str:
    # Resolved on first use: importlib.metadata costs ~30 ms, which every parser process
    # would otherwise pay at start-up.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("rlm-desktop")
        except PackageNotFoundError:  # a source tree that is not installed
            return "0.0.0+source"
    raise AttributeError(name)
