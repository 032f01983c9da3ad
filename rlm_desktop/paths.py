"""Per-user directories (platformdirs); RLM_DESKTOP_HOME overrides them (tests, portable use)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "rlm-desktop"
HOME_ENV = "RLM_DESKTOP_HOME"


def _dir(kind: str) -> Path:
    override = os.environ.get(HOME_ENV)
    if override:
        path = Path(override) / kind
    elif kind == "cache":
        path = Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))
    elif kind == "data":
        path = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    else:
        path = Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def cache_dir() -> Path:
    """Where extracted text is cached (safe to delete; rebuilt on demand)."""
    return _dir("cache")


def data_dir() -> Path:
    """Where investigations are stored."""
    return _dir("data")


def config_dir() -> Path:
    """Where settings live (never secrets: those go to the OS keyring)."""
    return _dir("config")
