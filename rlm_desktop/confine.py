"""OS confinement of the REPL worker (BLUEPRINT §8, layer 2).

Worker side: `lockdown()` is called once, after the worker has imported what it needs and
loaded the corpus, before the first byte of model code runs. It applies what the platform
offers and reports the achieved level honestly; it never raises for a missing kernel
feature.

- Linux: rlimits, then PR_SET_NO_NEW_PRIVS, Landlock (read-only runtime, no other file,
  no TCP, signals and abstract unix sockets scoped), seccomp last (see confine_linux).
- macOS: the parent starts the worker under `sandbox-exec` with `macos_profile()`
  (`launch_command`); the worker verifies the profile is in force and adds rlimits.
  RLIMIT_AS is not enforced by macOS: the parent's memory watchdog covers it.
- Windows: the parent puts the worker in a job object (`confine_child`); the worker checks
  it is in one. No restricted token/AppContainer yet: at best "partial".

Parent side: `launch_command()` before the spawn, `confine_child()` right after it,
`release_child()` when the worker is gone; `runtime_read_paths()` for both sides
(`frozen_bundle_paths()` adds a frozen app's own files to both).
"""

from __future__ import annotations

import ctypes
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# The process layer: what a worker that handles untrusted input may see of the parent's
# environment. Nothing that carries keys, proxies or the user's configuration.
KEEP_ENV = ("PATH", "SYSTEMROOT", "WINDIR", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR", "TEMP",
            "TMP")


def worker_process_options(home: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Environment and Popen options for a worker: scrubbed environment with HOME at an
    empty private dir, its own session (POSIX) or process group (Windows)."""
    env = {k: v for k, v in os.environ.items() if k in KEEP_ENV}
    env["HOME"] = env["USERPROFILE"] = home
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    kwargs: dict[str, Any] = {}
    if os.name == "posix":
        kwargs["start_new_session"] = True
    else:
        kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
    return env, kwargs

LEVELS = ("none", "partial", "full")
SANDBOX_EXEC = "/usr/bin/sandbox-exec"
SANDBOX_ENV = "RLM_SANDBOX_EXEC"  # set by launch_command when the profile is applied
FD_HEADROOM = 8  # free descriptors above the highest open one: lazy imports need a few


@dataclass(frozen=True)
class Confinement:
    platform: str                 # "linux" | "darwin" | "win32" | other
    level: str                    # "full" | "partial" | "none"
    layers: dict[str, Any] = field(default_factory=dict)
    missing: tuple[str, ...] = ()  # what could not be applied, and why

    def to_json(self) -> dict[str, Any]:
        return {"platform": self.platform, "level": self.level, "layers": dict(self.layers),
                "missing": list(self.missing)}


def level_at_least(level: str, minimum: str) -> bool:
    """Whether `level` reaches `minimum` (an unknown level counts as "none"; an unknown
    minimum is a settings error)."""
    if minimum not in LEVELS:
        raise ValueError(f"unknown confinement level {minimum!r}; expected one of {LEVELS}")
    rank = LEVELS.index(level) if level in LEVELS else 0
    return rank >= LEVELS.index(minimum)


# --- worker side -----------------------------------------------------------------------

def lockdown(*, read_paths: Sequence[str] = (), memory_bytes: int | None = None,
             cpu_seconds: int | None = None, max_open_files: int = 64) -> Confinement:
    """Confine the calling process for good; returns what was achieved. "full": every
    layer of the platform applied; "partial": the main layer (Landlock or seccomp, the
    sandbox-exec profile, the job object) applied but something is missing; "none": no
    layer that confines (rlimits alone do not count)."""
    started = time.perf_counter()
    time.localtime()  # glibc reads /etc/localtime once: before the filesystem closes
    platform = sys.platform
    if platform.startswith("linux"):
        from rlm_desktop import confine_linux

        layers, missing = _apply_rlimits(memory_bytes, cpu_seconds, max_open_files)
        more, more_missing = confine_linux.lockdown_layers(list(read_paths))
        layers.update(more)
        missing += more_missing
        platform = "linux"
        # rlimits and no_new_privs alone confine nothing that matters: not "partial"
        confined = bool(layers.get("landlock") or layers.get("seccomp"))
        level = "full" if not missing else "partial" if confined else "none"
    elif platform == "darwin":
        layers, missing = _apply_rlimits(None, cpu_seconds, max_open_files)
        if memory_bytes is not None:
            missing.append("rlimit AS: not enforced by macOS; the parent's watchdog limits "
                           "memory")
        sandbox, problem = _check_sandbox_exec(read_paths)
        layers["sandbox_exec"] = sandbox
        if problem:
            missing.append(problem)
        rlimits_ok = not any(m.startswith("rlimit ") and "macOS" not in m for m in missing)
        level = "full" if sandbox and rlimits_ok else "partial" if sandbox else "none"
    elif platform == "win32":
        from rlm_desktop import confine_windows

        in_job = _windows_in_job()
        token_layers, missing = confine_windows.lower_token()
        layers = {"job_object": in_job, **token_layers}
        missing.append("network: not blocked on Windows (needs an AppContainer token)")
        if not in_job:
            missing.append("job object: the worker is not in a job (the parent did not "
                           "confine it)")
        level = "partial" if in_job or token_layers["low_integrity"] else "none"
    else:
        layers, missing = _apply_rlimits(memory_bytes, cpu_seconds, max_open_files)
        missing.append(f"no OS confinement layer for {platform}")
        level = "none"
    layers["lockdown_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return Confinement(platform=platform, level=level, layers=layers, missing=tuple(missing))


def _highest_fd() -> int:
    for directory in ("/proc/self/fd", "/dev/fd"):
        try:
            return max(int(name) for name in os.listdir(directory) if name.isdigit())
        except (OSError, ValueError):
            continue
    return 2


def _apply_rlimits(memory_bytes: int | None, cpu_seconds: int | None, max_open_files: int
                   ) -> tuple[dict[str, Any], list[str]]:
    """RLIMIT_AS, CPU (SIGXCPU, then SIGKILL a second later), FSIZE 0, CORE 0, NOFILE.
    A limit is only ever lowered (an unprivileged process cannot raise a hard limit)."""
    try:
        import resource
    except ImportError:
        return {"rlimits": {}}, ["rlimits: not available on this platform"]
    wanted: list[tuple[str, int, int, int]] = []
    if memory_bytes is not None:
        wanted.append(("AS", resource.RLIMIT_AS, memory_bytes, memory_bytes))
    if cpu_seconds is not None:
        wanted.append(("CPU", resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1))
    wanted.append(("FSIZE", resource.RLIMIT_FSIZE, 0, 0))
    wanted.append(("CORE", resource.RLIMIT_CORE, 0, 0))
    files = max(max_open_files, _highest_fd() + 1 + FD_HEADROOM)
    wanted.append(("NOFILE", resource.RLIMIT_NOFILE, files, files))
    applied: dict[str, int] = {}
    missing: list[str] = []
    for name, which, want_soft, want_hard in wanted:
        try:
            _, old_hard = resource.getrlimit(which)
            hard = want_hard if old_hard == resource.RLIM_INFINITY else min(want_hard, old_hard)
            soft = min(want_soft, hard)
            resource.setrlimit(which, (soft, hard))
            applied[name] = soft
        except (OSError, ValueError) as exc:
            missing.append(f"rlimit {name}: {exc}")
    return {"rlimits": applied}, missing


_PROBES = ("/etc/hosts", "/etc/passwd", "/private/etc/hosts", "/usr/bin/true")


def _check_sandbox_exec(read_paths: Sequence[str]) -> tuple[str | None, str | None]:
    """Whether the sandbox-exec profile is in force: a file outside read_paths must be
    unreadable. Returns (description, problem)."""
    if os.environ.get(SANDBOX_ENV) != "1":
        return None, "sandbox-exec: the worker was not started under sandbox-exec"
    allowed = [os.path.realpath(p) for p in read_paths]
    for probe in _PROBES:
        real = os.path.realpath(probe)
        if any(real == a or real.startswith(a.rstrip(os.sep) + os.sep) for a in allowed):
            continue
        try:
            with open(probe, "rb"):
                pass
        except PermissionError:
            return f"deny-default profile in force ({probe} unreadable)", None
        except OSError:
            continue
        return None, f"sandbox-exec: the profile is not in force ({probe} was readable)"
    return None, "sandbox-exec: could not verify the profile (no probe file found)"


def _windows_in_job() -> bool:
    if sys.platform == "win32":
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        result = ctypes.c_int(0)
        kernel32.GetCurrentProcess.restype = ctypes.c_void_p
        ok = kernel32.IsProcessInJob(ctypes.c_void_p(kernel32.GetCurrentProcess()), None,
                                     ctypes.byref(result))
        return bool(ok and result.value)
    return False


# --- parent side: paths and launch -----------------------------------------------------

def _home_dirs() -> set[str]:
    homes = {os.path.expanduser("~"), os.environ.get("HOME", ""),
             os.environ.get("USERPROFILE", "")}
    try:
        import pwd

        homes.add(pwd.getpwuid(os.getuid()).pw_dir)
    except (ImportError, KeyError, AttributeError):
        pass
    return {os.path.realpath(h) for h in homes if h}


def worker_read_paths() -> list[str]:
    """What the worker may still read once locked: the standard library, this package and
    RestrictedPython (everything else it needs is imported before the lockdown). Not the
    rest of site-packages (model code under plain exec could import `keyring`), not a source
    checkout's other files (a developer's .env)."""
    import sysconfig

    import RestrictedPython

    # The base interpreter's library: in a virtual environment (the app's own, uv's) the
    # venv's lib dir would also hold site-packages. Without a venv, a Python whose
    # site-packages sits inside its stdlib dir (pyenv) keeps that readable.
    found = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_exec_prefix,
                                      "installed_base": sys.base_prefix,
                                      "installed_platbase": sys.base_exec_prefix})
    paths = [found[k] for k in ("stdlib", "platstdlib") if k in found]
    paths.append(os.path.dirname(os.path.abspath(__file__)))  # the rlm_desktop package
    paths.append(os.path.dirname(os.path.abspath(RestrictedPython.__file__)))
    paths += frozen_bundle_paths()
    return list(dict.fromkeys(os.path.realpath(p) for p in paths if os.path.exists(p)))


def frozen_bundle_paths() -> list[str]:
    """A frozen app's own files, which its worker keeps reading after the lockdown: the
    bundle (`sys._MEIPASS`: extension modules, shared libraries, data) and the folder of
    the executable, whose appended archive holds the compiled modules that a lazy import
    (a codec, say) reads. In a macOS .app, the Contents folder (MacOS/, Frameworks/,
    Resources/). Empty when not frozen; never the home directory or one of its parents (a
    one-dir app unpacked straight into ~ gets the bundle alone, logged)."""
    if not getattr(sys, "frozen", False):
        return []
    candidates: list[str] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if isinstance(bundle, str):
        candidates.append(bundle)
    exe_dir = os.path.dirname(os.path.realpath(sys.executable))
    if sys.platform == "darwin" and os.path.basename(exe_dir) == "MacOS":
        exe_dir = os.path.dirname(exe_dir)  # .../RLM Desktop.app/Contents
    candidates.append(exe_dir)
    homes = _home_dirs()
    kept: list[str] = []
    for path in candidates:
        real = os.path.realpath(path)
        if os.path.dirname(real) == real or any(
                h == real or h.startswith(real.rstrip(os.sep) + os.sep) for h in homes):
            log.info("frozen_bundle_paths: skipping %s (a filesystem root, the home "
                     "directory or a parent)", path)
            continue
        if real not in kept:
            kept.append(real)
    return kept


def runtime_read_paths() -> list[str]:
    """The directories (or zip files) the worker must keep reading: the standard library
    and extension modules of the venv and the base interpreter, every existing sys.path
    entry, a frozen app's bundle. Real paths, deduplicated (nested ones dropped); never
    "/" nor the user's home or one of its parents (skipped and logged)."""
    import sysconfig

    candidates: list[str] = []
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        paths = sysconfig.get_paths(vars=scheme_vars)
        candidates += [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")
                       if k in paths]
    candidates += [p for p in sys.path if p]  # "" is the cwd of `python -c`: not runtime
    candidates += frozen_bundle_paths()
    homes = _home_dirs()
    root = os.path.realpath(os.sep)
    kept: set[str] = set()
    for path in candidates:
        if not os.path.exists(path):
            continue
        real = os.path.realpath(path)
        if real == root or os.path.dirname(real) == real:
            log.info("runtime_read_paths: skipping %s (filesystem root)", path)
            continue
        if any(h == real or h.startswith(real.rstrip(os.sep) + os.sep) for h in homes):
            log.info("runtime_read_paths: skipping %s (the home directory or a parent)", path)
            continue
        kept.add(real)
    result: list[str] = []
    for path in sorted(kept):
        if not any(path.startswith(k.rstrip(os.sep) + os.sep) for k in result):
            result.append(path)
    return result


# Read by dyld and libSystem when any process starts (shared cache, frameworks, zoneinfo).
MACOS_SYSTEM_READ = ("/usr/lib", "/usr/share/zoneinfo", "/System/Library",
                     "/System/Cryptexes", "/System/Volumes/Preboot/Cryptexes",
                     "/private/var/db/dyld", "/private/var/db/timezone", "/Library/Apple")
MACOS_SYSTEM_LITERAL = ("/dev/null", "/dev/urandom", "/dev/random", "/private/etc/localtime")


def _sbpl(text: str) -> str:
    """A string literal of the sandbox profile language (a Scheme dialect)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError(f"control character in a sandbox path: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def macos_profile(read_paths: Sequence[str], executable: str) -> str:
    """A deny-default SBPL profile: read the runtime and `read_paths` (and what dyld needs),
    exec only `executable` (the initial exec), no fork, no network, no writes."""
    real_exe = os.path.realpath(executable)
    prefix = os.path.dirname(os.path.dirname(real_exe))  # .../bin/python -> ...
    paths: list[str] = []
    for path in [*read_paths, prefix]:
        for variant in (path, os.path.realpath(path)):
            if variant and variant not in paths and os.path.dirname(variant) != variant:
                paths.append(variant)
    exes = dict.fromkeys([executable, real_exe])
    lines = [
        "(version 1)",
        "(deny default)",
        "(allow process-exec " + " ".join(f"(literal {_sbpl(e)})" for e in exes) + ")",
        "(allow file-read-metadata)",
        "(allow file-read*",
        *(f"  (subpath {_sbpl(p)})" for p in [*paths, *MACOS_SYSTEM_READ]),
        *(f"  (literal {_sbpl(p)})" for p in MACOS_SYSTEM_LITERAL),
        ")",
        "(allow sysctl-read)",
        "(allow signal (target self))",
        "(allow process-info* (target self))",
        ";; later rules win: these stay denied whatever is allowed above",
        "(deny network*)",
        "(deny file-write*)",
        "(deny process-fork)",
        "",
    ]
    return "\n".join(lines)


def launch_command(command: list[str], *, read_paths: Sequence[str]
                   ) -> tuple[list[str], dict[str, str]]:
    """The command (and extra environment) to start the worker with: on macOS under
    sandbox-exec with `macos_profile`; elsewhere unchanged (the worker confines itself on
    Linux; the parent adds a job object on Windows)."""
    if sys.platform == "darwin" and command and os.path.exists(SANDBOX_EXEC):
        runtime = [p for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)
                   if os.path.dirname(os.path.realpath(p)) != os.path.realpath(p)]
        profile = macos_profile([*read_paths, *runtime], command[0])
        return [SANDBOX_EXEC, "-p", profile, *command], {SANDBOX_ENV: "1"}
    return list(command), {}


# --- parent side: Windows job object ---------------------------------------------------

JobObjectBasicUIRestrictions = 4
JobObjectExtendedLimitInformation = 9
JOB_OBJECT_LIMIT_ACTIVE_PROCESS = 0x00000008
JOB_OBJECT_LIMIT_PROCESS_MEMORY = 0x00000100
JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION = 0x00000400
JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x00002000
JOB_OBJECT_UILIMIT_ALL = 0x000000FF  # clipboard, desktop, global atoms, handles, ...
PROCESS_TERMINATE = 0x0001
PROCESS_SET_QUOTA = 0x0100


class IO_COUNTERS(ctypes.Structure):  # the Windows names
    _fields_ = [(name, ctypes.c_uint64) for name in (
        "ReadOperationCount", "WriteOperationCount", "OtherOperationCount",
        "ReadTransferCount", "WriteTransferCount", "OtherTransferCount")]


class JOBOBJECT_BASIC_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("PerProcessUserTimeLimit", ctypes.c_int64),  # LARGE_INTEGER
        ("PerJobUserTimeLimit", ctypes.c_int64),
        ("LimitFlags", ctypes.c_uint32),              # DWORD
        ("MinimumWorkingSetSize", ctypes.c_size_t),   # SIZE_T
        ("MaximumWorkingSetSize", ctypes.c_size_t),
        ("ActiveProcessLimit", ctypes.c_uint32),
        ("Affinity", ctypes.c_size_t),                # ULONG_PTR
        ("PriorityClass", ctypes.c_uint32),
        ("SchedulingClass", ctypes.c_uint32),
    ]


class JOBOBJECT_EXTENDED_LIMIT_INFORMATION(ctypes.Structure):
    _fields_ = [
        ("BasicLimitInformation", JOBOBJECT_BASIC_LIMIT_INFORMATION),
        ("IoInfo", IO_COUNTERS),
        ("ProcessMemoryLimit", ctypes.c_size_t),
        ("JobMemoryLimit", ctypes.c_size_t),
        ("PeakProcessMemoryUsed", ctypes.c_size_t),
        ("PeakJobMemoryUsed", ctypes.c_size_t),
    ]


class JOBOBJECT_BASIC_UI_RESTRICTIONS(ctypes.Structure):
    _fields_ = [("UIRestrictionsClass", ctypes.c_uint32)]


def job_limits(memory_bytes: int | None) -> JOBOBJECT_EXTENDED_LIMIT_INFORMATION:
    """One process (no children), memory per process, killed when the job handle closes,
    no error dialog on a crash."""
    info = JOBOBJECT_EXTENDED_LIMIT_INFORMATION()
    flags = (JOB_OBJECT_LIMIT_ACTIVE_PROCESS | JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
             | JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION)
    info.BasicLimitInformation.ActiveProcessLimit = 1
    if memory_bytes:
        flags |= JOB_OBJECT_LIMIT_PROCESS_MEMORY
        info.ProcessMemoryLimit = memory_bytes
    info.BasicLimitInformation.LimitFlags = flags
    return info


_JOBS: dict[int, tuple[Any, int]] = {}  # pid -> (kernel32, job handle): kept alive


def apply_job(kernel32: Any, pid: int, memory_bytes: int | None,
              last_error: Callable[[], int]) -> dict[str, Any]:
    """Create the job, set its limits, put `pid` in it, keep the handle in the registry.
    `kernel32` is the loaded DLL (a fake in tests)."""
    job = kernel32.CreateJobObjectW(None, None)
    if not job:
        return {"job_object": False, "error": f"CreateJobObjectW failed ({last_error()})"}
    info = job_limits(memory_bytes)
    if not kernel32.SetInformationJobObject(job, JobObjectExtendedLimitInformation,
                                            ctypes.byref(info), ctypes.sizeof(info)):
        error = last_error()
        kernel32.CloseHandle(job)
        return {"job_object": False, "error": f"SetInformationJobObject failed ({error})"}
    ui = JOBOBJECT_BASIC_UI_RESTRICTIONS(JOB_OBJECT_UILIMIT_ALL)
    ui_ok = bool(kernel32.SetInformationJobObject(job, JobObjectBasicUIRestrictions,
                                                  ctypes.byref(ui), ctypes.sizeof(ui)))
    process = kernel32.OpenProcess(PROCESS_SET_QUOTA | PROCESS_TERMINATE, False, pid)
    assigned = bool(process) and bool(kernel32.AssignProcessToJobObject(job, process))
    error = 0 if assigned else last_error()
    if process:
        kernel32.CloseHandle(process)
    if not assigned:
        kernel32.CloseHandle(job)
        return {"job_object": False, "error": f"AssignProcessToJobObject failed ({error})"}
    _JOBS[pid] = (kernel32, job)
    return {"job_object": True, "active_process_limit": 1, "memory_bytes": memory_bytes,
            "kill_on_close": True, "ui_restrictions": ui_ok}


def _load_kernel32() -> Any:
    if sys.platform == "win32":
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        handle, dword, boolean = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
        kernel32.CreateJobObjectW.argtypes = [ctypes.c_void_p, ctypes.c_wchar_p]
        kernel32.CreateJobObjectW.restype = handle
        kernel32.SetInformationJobObject.argtypes = [handle, ctypes.c_int, ctypes.c_void_p,
                                                     dword]
        kernel32.SetInformationJobObject.restype = boolean
        kernel32.OpenProcess.argtypes = [dword, boolean, dword]
        kernel32.OpenProcess.restype = handle
        kernel32.AssignProcessToJobObject.argtypes = [handle, handle]
        kernel32.AssignProcessToJobObject.restype = boolean
        kernel32.CloseHandle.argtypes = [handle]
        kernel32.CloseHandle.restype = boolean
        return kernel32
    raise OSError("kernel32 exists on Windows only")


def confine_child(process: subprocess.Popen[Any] | int, *, memory_bytes: int | None
                  ) -> dict[str, Any]:
    """Parent side, right after the spawn: on Windows a job object (see job_limits) whose
    handle is kept until `release_child(pid)`; elsewhere nothing to do ({})."""
    pid = process if isinstance(process, int) else process.pid
    if sys.platform == "win32":
        try:
            return apply_job(_load_kernel32(), pid, memory_bytes, ctypes.get_last_error)
        except OSError as exc:
            return {"job_object": False, "error": str(exc)}
    return {}


def release_child(pid: int) -> None:
    """Close the job handle of a worker (which kills it if it still runs)."""
    entry = _JOBS.pop(pid, None)
    if entry is not None:
        kernel32, job = entry
        kernel32.CloseHandle(job)
