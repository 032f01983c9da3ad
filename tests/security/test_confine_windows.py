"""The Windows token layer: what can be checked anywhere (the structures match the Win32
layout, non-Windows refuses cleanly) and, on Windows, that the lowered worker cannot write
the user's files."""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_desktop import confine_windows


def test_structures_have_the_win32_layout() -> None:
    assert ctypes.sizeof(confine_windows.LUID) == 8
    assert ctypes.sizeof(confine_windows.LUID_AND_ATTRIBUTES) == 12
    assert confine_windows.LUID_AND_ATTRIBUTES.Attributes.offset == 8
    pointer = ctypes.sizeof(ctypes.c_void_p)
    assert ctypes.sizeof(confine_windows.SID_AND_ATTRIBUTES) == 2 * pointer
    assert confine_windows.TOKEN_MANDATORY_LABEL.Label.offset == 0


@pytest.mark.skipif(sys.platform == "win32", reason="the refusal path of other systems")
def test_elsewhere_it_applies_nothing_and_says_so() -> None:
    layers, missing = confine_windows.lower_token()
    assert layers == {"privileges_removed": False, "low_integrity": False}
    assert missing == ["token: not Windows"]


@pytest.mark.skipif(sys.platform != "win32", reason="Windows only")
def test_lowered_process_cannot_write_the_users_files(tmp_path: Path) -> None:
    target = tmp_path / "canary.txt"
    code = (
        "import json, sys\n"
        "from rlm_desktop import confine_windows\n"
        "layers, missing = confine_windows.lower_token()\n"
        "try:\n"
        f"    open({str(target)!r}, 'w').write('x')\n"
        "    wrote = True\n"
        "except OSError:\n"
        "    wrote = False\n"
        "print(json.dumps({'layers': layers, 'missing': missing, 'wrote': wrote}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    import json

    report = json.loads(done.stdout)
    assert report["layers"] == {"privileges_removed": True, "low_integrity": True}, report
    assert report["wrote"] is False
    assert not target.exists()
