"""Build the frozen app and run its smoke test: only with RLM_DESKTOP_BUILD=1 (about three
minutes on 2 cores; `RLM_DESKTOP_BUILD=1 .ci/run` or the one command in packaging/README.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(os.environ.get("RLM_DESKTOP_BUILD") != "1",
                       reason="builds the frozen app: set RLM_DESKTOP_BUILD=1"),
    pytest.mark.skipif(not sys.platform.startswith("linux"),
                       reason="the smoke test runs the Linux build"),
]


@pytest.mark.timeout(1800)
def test_build_and_smoke_test(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is needed to install the packaging group (PyInstaller)")
    dist, work = tmp_path / "dist", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "RLM_DESKTOP_HOME")}
    result = subprocess.run(
        [uv, "run", "--group", "packaging", "python", "packaging/build.py", "--dist",
         str(dist), "--work", str(work), "--smoke"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    print(result.stdout[-6000:])
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    assert "0 failed" in result.stdout
    assert (dist / "rlm-desktop" / "rlm-desktop").is_file()
    assert list(dist.glob("rlm-desktop-*-linux-*.tar.gz"))
    if shutil.which("dpkg-deb"):
        assert list(dist.glob("rlm-desktop_*.deb"))
