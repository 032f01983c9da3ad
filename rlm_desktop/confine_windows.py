"""Windows: the worker lowers its own token before it reads an untrusted byte.

Python's `subprocess` cannot start a process with a restricted token or in an AppContainer
(both need CreateProcessAsUser / an extended STARTUPINFO attribute list), so the worker does
what a process may do to itself, irreversibly:

- every privilege but bypass-traverse-checking is removed from its token
  (`SE_PRIVILEGE_REMOVED`, not just disabled, so nothing in the process can enable one
  again);
- its integrity level is set to Low (S-1-16-4096). Windows' mandatory integrity policy then
  refuses it write access to files, registry keys and processes of the user's normal
  (Medium) level: it cannot write the user's files, open the parent process for writing or
  reading its memory (process objects are no-read-up), or inject into other programs.

Together with the job object the parent adds (one process, memory and CPU limits, kill on
close), that is the Windows confinement. What it does not do: block the network (only an
AppContainer token without the internetClient capability would) or reads of files the user
can read — the language layer is what stands there. Written against the documented Win32
API; it has not been run on Windows by this project's CI (see docs/security.md).
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

TOKEN_QUERY = 0x0008
TOKEN_ADJUST_PRIVILEGES = 0x0020
TOKEN_ADJUST_DEFAULT = 0x0080
TOKEN_PRIVILEGES_CLASS = 3      # TOKEN_INFORMATION_CLASS.TokenPrivileges
TOKEN_INTEGRITY_LEVEL = 25      # TOKEN_INFORMATION_CLASS.TokenIntegrityLevel
SE_PRIVILEGE_REMOVED = 0x00000004
SE_GROUP_INTEGRITY = 0x00000020
LOW_INTEGRITY_SID = "S-1-16-4096"
KEEP_PRIVILEGE = "SeChangeNotifyPrivilege"


class LUID(ctypes.Structure):
    _fields_ = [("LowPart", ctypes.c_uint32), ("HighPart", ctypes.c_int32)]


class LUID_AND_ATTRIBUTES(ctypes.Structure):  # the Windows names
    _fields_ = [("Luid", LUID), ("Attributes", ctypes.c_uint32)]


class SID_AND_ATTRIBUTES(ctypes.Structure):
    _fields_ = [("Sid", ctypes.c_void_p), ("Attributes", ctypes.c_uint32)]


class TOKEN_MANDATORY_LABEL(ctypes.Structure):
    _fields_ = [("Label", SID_AND_ATTRIBUTES)]


def _last_error() -> int:
    if sys.platform == "win32":
        return ctypes.get_last_error()
    return 0


def lower_token() -> tuple[dict[str, Any], list[str]]:
    """Remove every privilege and drop to Low integrity. Returns (layers applied, what
    could not be applied and why); never raises."""
    layers: dict[str, Any] = {"privileges_removed": False, "low_integrity": False}
    missing: list[str] = []
    if sys.platform != "win32":
        return layers, ["token: not Windows"]
    try:
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        advapi32 = ctypes.WinDLL("advapi32", use_last_error=True)
        kernel32.GetCurrentProcess.restype = ctypes.c_void_p
        token = ctypes.c_void_p()
        if not advapi32.OpenProcessToken(
                ctypes.c_void_p(kernel32.GetCurrentProcess()),
                TOKEN_QUERY | TOKEN_ADJUST_PRIVILEGES | TOKEN_ADJUST_DEFAULT,
                ctypes.byref(token)):
            return layers, [f"token: OpenProcessToken failed ({_last_error()})"]
    except (OSError, AttributeError) as exc:
        return layers, [f"token: Win32 API not available ({exc})"]
    try:
        removed, problem = _remove_privileges(advapi32, token)
        layers["privileges_removed"] = removed
        if problem:
            missing.append(problem)
        lowered, problem = _low_integrity(advapi32, kernel32, token)
        layers["low_integrity"] = lowered
        if problem:
            missing.append(problem)
    finally:
        kernel32.CloseHandle(token)
    return layers, missing


def _remove_privileges(advapi32: Any, token: ctypes.c_void_p) -> tuple[int | bool, str | None]:
    needed = ctypes.c_uint32(0)
    advapi32.GetTokenInformation(token, TOKEN_PRIVILEGES_CLASS, None, 0,
                                 ctypes.byref(needed))
    if not needed.value:
        return False, f"privileges: cannot size the list ({_last_error()})"
    buffer = ctypes.create_string_buffer(needed.value)
    if not advapi32.GetTokenInformation(token, TOKEN_PRIVILEGES_CLASS, buffer, needed,
                                        ctypes.byref(needed)):
        return False, f"privileges: cannot read them ({_last_error()})"
    count = ctypes.c_uint32.from_buffer(buffer).value
    if count == 0:
        return True, None
    # Bypass-traverse-checking stays, as in Chromium's sandbox: without it every folder on a
    # path needs its own traverse right, and it grants nothing else.
    luid = LUID()
    keep: LUID | None = luid
    if not advapi32.LookupPrivilegeValueW(None, ctypes.c_wchar_p(KEEP_PRIVILEGE),
                                          ctypes.byref(luid)):
        keep = None
    # TOKEN_PRIVILEGES: a DWORD count, then `count` LUID_AND_ATTRIBUTES (4-byte aligned).
    entries = (LUID_AND_ATTRIBUTES * count).from_buffer(buffer, ctypes.sizeof(ctypes.c_uint32))
    for entry in entries:
        if keep is not None and (entry.Luid.LowPart, entry.Luid.HighPart) == (
                keep.LowPart, keep.HighPart):
            continue
        entry.Attributes = SE_PRIVILEGE_REMOVED
    if not advapi32.AdjustTokenPrivileges(token, False, buffer, needed, None, None):
        return False, f"privileges: AdjustTokenPrivileges failed ({_last_error()})"
    error = _last_error()
    if error:   # ERROR_NOT_ALL_ASSIGNED (1300): some stayed
        return False, f"privileges: not all removed ({error})"
    return True, None


def _low_integrity(advapi32: Any, kernel32: Any,
                   token: ctypes.c_void_p) -> tuple[bool, str | None]:
    sid = ctypes.c_void_p()
    if not advapi32.ConvertStringSidToSidW(ctypes.c_wchar_p(LOW_INTEGRITY_SID),
                                           ctypes.byref(sid)):
        return False, f"integrity: bad SID ({_last_error()})"
    try:
        advapi32.GetLengthSid.restype = ctypes.c_uint32
        label = TOKEN_MANDATORY_LABEL(SID_AND_ATTRIBUTES(sid, SE_GROUP_INTEGRITY))
        size = ctypes.sizeof(label) + advapi32.GetLengthSid(sid)
        if not advapi32.SetTokenInformation(token, TOKEN_INTEGRITY_LEVEL,
                                            ctypes.byref(label), size):
            return False, f"integrity: SetTokenInformation failed ({_last_error()})"
    finally:
        kernel32.LocalFree(sid)
    return True, None
