"""RLM Desktop: ask hard questions of large document sets with Recursive Language Models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rlm-desktop")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

__all__ = ["__version__"]
