"""Saved settings: endpoint and models in a JSON file, the API key in the OS keyring only.

Resolution order for a run (blueprint §5): command-line flag, then OPENAI_API_KEY /
OPENAI_BASE_URL, then these saved settings.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rlm_desktop import paths
from rlm_desktop.engine.budget import Limits

KEYRING_SERVICE = "rlm-desktop"
KEYRING_USER = "api-key"


@dataclass(slots=True)
class Settings:
    base_url: str | None = None
    model: str = "gpt-5"
    sub_model: str | None = "gpt-5-mini"
    min_sandbox: str = "partial"  # refuse to run model code below this OS confinement level
    # Budgets of a run (defaults equal Limits'); None means unlimited.
    max_iterations: int = 20
    max_depth: int = 2
    max_subcalls: int | None = 1000
    max_tokens: int | None = None
    max_cost_usd: float | None = None
    timeout_s: float | None = None
    concurrency: int = 8

    @classmethod
    def file(cls) -> Path:
        return paths.config_dir() / "settings.json"

    @classmethod
    def load(cls) -> Settings:
        path = cls.file()
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return cls()
        if not isinstance(data, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def limits(self) -> Limits:
        """The run limits these settings ask for (everything else at Limits' defaults)."""
        return Limits(max_iterations=self.max_iterations, max_depth=self.max_depth,
                      max_subcalls=self.max_subcalls, max_tokens=self.max_tokens,
                      max_cost_usd=self.max_cost_usd, timeout_s=self.timeout_s,
                      concurrency=self.concurrency)

    def save(self) -> None:
        path = self.file()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, path)


# A key the user entered when no keyring backend could store it: this session only, never a
# file.
_session_key: str | None = None


def save_api_key(key: str) -> bool:
    """Store `key` in the OS keyring (an empty key deletes it). False when no keyring backend
    works: the key is then kept in memory for this session only."""
    global _session_key  # noqa: PLW0603 -- the one session-only copy, by design
    key = key.strip()
    try:
        import keyring

        if key:
            keyring.set_password(KEYRING_SERVICE, KEYRING_USER, key)
            stored = keyring.get_password(KEYRING_SERVICE, KEYRING_USER) == key
        else:
            with contextlib.suppress(Exception):  # nothing stored: nothing to delete
                keyring.delete_password(KEYRING_SERVICE, KEYRING_USER)
            stored = True
    except Exception:  # no backend (headless Linux), a locked or broken keychain
        stored = False
    _session_key = None if stored else (key or None)
    return stored


def keyring_available() -> bool:
    """Whether a keyring backend that can store a secret is installed."""
    try:
        import keyring
        from keyring.backends import fail, null

        backend = keyring.get_keyring()
        return not isinstance(backend, fail.Keyring | null.Keyring)
    except Exception:
        return False


def saved_api_key() -> str | None:
    """The key kept for this session (no keyring worked), else the one in the OS keyring,
    else None."""
    if _session_key:
        return _session_key
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
        except KeyringError:
            return None
    except Exception:  # a broken keyring backend must not stop a run that has a key elsewhere
        return None


def resolve_endpoint(base_url: str | None, api_key: str | None) -> tuple[str | None, str | None]:
    """(base_url, api_key): flag, then environment, then saved settings and keyring."""
    url = base_url or os.environ.get("OPENAI_BASE_URL") or Settings.load().base_url
    key = api_key or os.environ.get("OPENAI_API_KEY") or saved_api_key()
    return url, key
