"""Errors a user's file can cause. Each carries a message fit to show as is, never a traceback."""

from __future__ import annotations


class ExtractionError(Exception):
    """A file could not be read. `str(error)` is the user-facing reason."""

    code = "unreadable"
    #: Whether the same bytes always fail the same way (so the failure may be cached).
    deterministic = True


class UnsupportedFormat(ExtractionError):
    code = "unsupported"


class EmptyFile(ExtractionError):
    code = "empty"


class DamagedFile(ExtractionError):
    code = "damaged"


class PasswordRequired(ExtractionError):
    code = "password"
    deterministic = False  # another password may open it


class LimitExceeded(ExtractionError):
    code = "limit"
    deterministic = False  # the user may raise the limit


class Cancelled(ExtractionError):
    code = "cancelled"
    deterministic = False


class FileChanged(ExtractionError):
    code = "changed"
    deterministic = False  # reading it again may well succeed
