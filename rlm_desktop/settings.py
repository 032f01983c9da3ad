"""Saved settings: endpoint and models in a JSON file, the API key in the OS keyring only.

Resolution order for a run (blueprint §5): command-line flag, then OPENAI_API_KEY /
OPENAI_BASE_URL, then these saved settings.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from rlm_desktop import paths

KEYRING_SERVICE = "rlm-desktop"
KEYRING_USER = "api-key"


@dataclass(slots=True)
class Settings:
    base_url: str | None = None
    model: str = "gpt-5"
    sub_model: str | None = "gpt-5-mini"
    min_sandbox: str = "partial"  # refuse to run model code below this OS confinement level

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

    def save(self) -> None:
        path = self.file()
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        os.replace(tmp, path)


def saved_api_key() -> str | None:
    """The key from the OS keyring, or None when there is none or no keyring works."""
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
