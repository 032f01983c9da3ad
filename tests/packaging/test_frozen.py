"""What the frozen app relies on, checked without building it: workers start from the
executable itself, the sandbox may read the bundle (and nothing more), `--diagnose`
reports what the smoke test checks, and PyInstaller stays out of the default install."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from rlm_desktop import cli, confine
from rlm_desktop.corpus import pool
from rlm_desktop.engine import repl

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def frozen_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake one-directory app: tmp/app/rlm-desktop and tmp/app/_internal/."""
    app = tmp_path / "opt" / "app"
    (app / "_internal").mkdir(parents=True)
    (app / "rlm-desktop").write_bytes(b"")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(app / "_internal"), raising=False)
    monkeypatch.setattr(sys, "executable", str(app / "rlm-desktop"))
    return app


def test_workers_start_from_the_frozen_executable(frozen_app: Path) -> None:
    exe = str(frozen_app / "rlm-desktop")
    assert repl.worker_command() == [exe, "--repl-worker"]
    assert pool.worker_command() == [exe, "--ingest-worker"]


def test_the_sandbox_may_read_the_bundle_and_the_executables_folder(frozen_app: Path) -> None:
    bundle = os.path.realpath(frozen_app / "_internal")
    exe_dir = os.path.realpath(frozen_app)
    assert confine.frozen_bundle_paths() == [bundle, exe_dir]
    # the executable carries the archive of compiled modules: lazy imports read it
    assert exe_dir in confine.worker_read_paths()
    assert exe_dir in confine.runtime_read_paths()


def test_a_bundle_in_the_home_directory_itself_is_not_opened_whole(
        frozen_app: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the app unpacked straight into ~
    monkeypatch.setattr(confine, "_home_dirs", lambda: {os.path.realpath(frozen_app)})
    assert confine.frozen_bundle_paths() == [os.path.realpath(frozen_app / "_internal")]


def test_not_frozen_adds_nothing() -> None:
    assert not getattr(sys, "frozen", False)
    assert confine.frozen_bundle_paths() == []


def test_diagnose_reports_keyring_sandbox_and_qt(app_home: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "rlm_desktop", "--diagnose"],
                            capture_output=True, text=True, timeout=120, check=False,
                            env={**os.environ, "RLM_DESKTOP_HOME": str(app_home)})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["version"] == cli.__version__ and report["frozen"] is False
    assert report["worker_command"][1:] == ["-m", "rlm_desktop.engine.repl_worker"]
    assert "SecretService" in report["keyring"]["registered"]
    assert report["keyring"]["backend"] == "keyring.backends.null.Keyring"  # conftest's
    assert report["sandbox"]["level"] in confine.LEVELS
    assert report["sandbox"]["cell"] == {"stdout": "0 b's\\xe4ure'\n", "error": None}
    assert report["qt"]["version"].startswith("6.")


def test_diagnose_is_not_in_the_help() -> None:
    assert "--diagnose" not in cli.build_parser().format_help()
    assert "--diagnose" not in cli.build_gui_parser().format_help()


def test_pyinstaller_is_only_in_the_packaging_group() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    groups = project["dependency-groups"]
    assert project["tool"]["uv"]["default-groups"] == ["dev"]
    assert any(d.startswith("pyinstaller") for d in groups["packaging"])
    everything_default = [*project["project"]["dependencies"], *groups["dev"]]
    assert not any(d.lower().startswith("pyinstaller") for d in everything_default), \
        "PyInstaller (GPL with a bootloader exception) stays out of the default install"
