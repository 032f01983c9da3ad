"""The OS confinement layer alone (rlm_desktop.confine): each lockdown runs in a fresh
child interpreter (never in the pytest process), which then tries what model code would
try and reports in JSON; the assertions are about invariants (canary unread, listener never
reached, parent alive, no file created), not just "it raised"."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rlm_desktop import confine

LINUX = sys.platform.startswith("linux")
linux_only = pytest.mark.skipif(not LINUX, reason="Landlock and seccomp are Linux-only")
CANARY = "CANARY-7f3e9b1c-confine"
MiB = 2**20

# Runs in the child: prepare what the worker would hold (pipes, a dup of stdout at a high fd,
# a pty), lock down, then probe. Prints one JSON object on the duplicated fd.
CHILD = textwrap.dedent("""
    import ctypes, errno, fcntl, json, os, socket, subprocess, sys, termios, threading
    cfg = json.loads(sys.argv[1])
    from rlm_desktop import confine
    import importlib
    from rlm_desktop import confine_linux
    for name, message in cfg.get("patch", {}).items():  # simulate a kernel without a feature
        module, attr = name.rsplit(".", 1)
        def _fail(*args, _message=message, **kwargs):
            raise confine_linux.ConfineError(_message)
        setattr(importlib.import_module(module), attr, _fail)
    frames = os.dup2(1, 100)  # the worker writes frames on a dup of fd 1
    master, slave = os.openpty()
    libc = ctypes.CDLL(None, use_errno=True)
    report = confine.lockdown(read_paths=cfg["read_paths"], memory_bytes=cfg.get("memory"),
                              cpu_seconds=cfg.get("cpu"), max_open_files=cfg.get("nofile", 64))
    out = {"report": report.to_json(), "probes": {}}

    def probe(name, fn):
        try:
            value = fn()
            out["probes"][name] = {"ok": True, "value": repr(value)[:200]}
        except BaseException as exc:
            out["probes"][name] = {"ok": False, "error": type(exc).__name__,
                                   "errno": getattr(exc, "errno", None), "text": str(exc)[:200]}

    def read(path):
        with open(path, "rb") as f:
            return f.read()

    def write(path):
        with open(path, "w") as f:
            f.write("x")

    def fork():
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        return pid

    def ptrace():
        if libc.ptrace(16, os.getppid(), None, None) != 0:  # PTRACE_ATTACH
            raise OSError(ctypes.get_errno(), "ptrace")

    def prlimit_raise():
        import resource
        return resource.prlimit(0, resource.RLIMIT_NOFILE, (4096, 4096))

    def pipe_ok():
        os.write(2, b"stderr still works\\n")
        return sys.stdin.buffer.read()

    def tiocsti():
        fcntl.ioctl(slave, termios.TIOCSTI, b"x")

    def tcp():
        with socket.create_connection(("127.0.0.1", cfg["port"]), timeout=2):
            pass

    def urllib_get():
        import urllib.request
        return urllib.request.urlopen(f"http://127.0.0.1:{cfg['port']}/", timeout=2).read()

    def thread():
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()

    def kill_parent():
        os.kill(os.getppid(), 15)

    def memory():
        return len(bytearray(cfg["memory"] + 64 * 2**20))

    def unix_socket():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect("\\0rlm-test-abstract")

    for name, fn in [
        ("stdin_after_lockdown", pipe_ok),
        ("etc_passwd", lambda: read("/etc/passwd")),
        ("canary", lambda: read(cfg["canary"])),
        ("parent_environ", lambda: read(f"/proc/{os.getppid()}/environ")),
        ("proc_self_mem", lambda: read("/proc/self/mem")),
        ("write_tmp", lambda: write(cfg["tmp_file"])),
        ("write_cwd", lambda: write("new-file.txt")),
        ("list_cwd", lambda: os.listdir(".")),
        ("mkdir_tmp", lambda: os.mkdir(cfg["tmp_file"] + ".d")),
        ("chmod_canary", lambda: os.chmod(cfg["canary"], 0o777)),
        ("socket", lambda: socket.socket()),
        ("unix_socket", unix_socket),
        ("tcp_connect", tcp),
        ("urllib", urllib_get),
        ("fork", fork),
        ("subprocess", lambda: subprocess.run(["true"])),
        ("posix_spawn", lambda: os.posix_spawn("/bin/true", ["true"], {})),
        ("thread", thread),
        ("kill_parent", kill_parent),
        ("ptrace_parent", ptrace),
        ("prlimit_raise", prlimit_raise),
        ("tiocsti", tiocsti),
        ("import_csv", lambda: __import__("csv").__name__),
        ("encode_utf16", lambda: "x".encode("utf-16")),
        ("small_alloc", lambda: len(bytearray(50 * 2**20))),
        ("memory", memory),
        ("execv", lambda: os.execv("/bin/true", ["true"])),
    ]:
        if name in cfg.get("only", [name]):
            probe(name, fn)
    os.write(frames, json.dumps(out).encode())
""")


def run_child(cfg: dict[str, Any], *, cwd: Path, stdin: bytes = b"") -> tuple[dict[str, Any],
                                                                              str]:
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], input=stdin,
                          capture_output=True, cwd=cwd, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return json.loads(proc.stdout), proc.stderr.decode(errors="replace")


@pytest.fixture
def secrets(tmp_path: Path) -> dict[str, Path]:
    """A canary file outside the read paths, an empty working dir, a free /tmp name."""
    secret_dir = tmp_path / "secret"
    secret_dir.mkdir()
    canary = secret_dir / "canary.txt"
    canary.write_text(CANARY)
    canary.chmod(0o600)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return {"canary": canary, "cwd": cwd, "tmp_file": Path("/tmp") / f"rlm-probe-{os.getpid()}"}


def require_landlock() -> None:
    from rlm_desktop import confine_linux

    try:
        confine_linux.landlock_abi()  # a version query: changes nothing in this process
    except confine_linux.ConfineError as exc:
        pytest.skip(f"this kernel cannot reach level full: {exc}")


@linux_only
def test_full_lockdown_holds(secrets: dict[str, Path]) -> None:
    require_landlock()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    terms: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: terms.append(signum))
    try:
        read_paths = [*confine.runtime_read_paths(), str(secrets["cwd"])]
        out, stderr = run_child({
            "read_paths": read_paths, "memory": 512 * MiB, "nofile": 16,
            "canary": str(secrets["canary"]), "tmp_file": str(secrets["tmp_file"]),
            "port": listener.getsockname()[1],
        }, cwd=secrets["cwd"], stdin=b"frame from the parent")
    finally:
        signal.signal(signal.SIGTERM, previous)
    report, probes = out["report"], out["probes"]

    # The report: everything applied on this kernel.
    assert report["platform"] == "linux"
    assert report["level"] == "full", report["missing"]
    assert report["missing"] == []
    layers = report["layers"]
    assert layers["no_new_privs"] is True
    assert layers["landlock"].startswith("abi ")
    abi = int(layers["landlock"].split()[1])
    if abi >= 4:
        assert "tcp" in layers["landlock"]
    assert "syscalls denied" in layers["seccomp"]
    assert layers["rlimits"]["AS"] == 512 * MiB
    assert layers["rlimits"]["FSIZE"] == 0 and layers["rlimits"]["CORE"] == 0
    assert layers["rlimits"]["NOFILE"] >= 101  # fd 100 was open: never below it
    assert layers["lockdown_ms"] < 250

    def denied(name: str, *errors: str) -> None:
        result = probes[name]
        assert not result["ok"], f"{name} was allowed: {result}"
        if errors:
            assert result["error"] in errors, f"{name}: {result}"

    # What the worker needs still works.
    assert probes["stdin_after_lockdown"] == {"ok": True, "value": repr(b"frame from the parent")}
    assert "stderr still works" in stderr
    assert probes["import_csv"]["ok"], probes["import_csv"]
    assert probes["encode_utf16"]["ok"], probes["encode_utf16"]
    assert probes["small_alloc"]["ok"], probes["small_alloc"]
    assert probes["list_cwd"] == {"ok": True, "value": "[]"}  # readable, and nothing created

    # Files: nothing outside the read paths is readable, nothing anywhere is writable.
    for name in ("etc_passwd", "canary", "parent_environ", "proc_self_mem", "write_tmp",
                 "write_cwd", "mkdir_tmp"):
        denied(name, "PermissionError")
    denied("chmod_canary", "PermissionError")
    assert CANARY not in json.dumps(out) and CANARY not in stderr
    assert secrets["canary"].stat().st_mode & 0o777 == 0o600
    assert not secrets["tmp_file"].exists()
    assert not Path(str(secrets["tmp_file"]) + ".d").exists()
    assert list(secrets["cwd"].iterdir()) == []

    # Network: no socket at all, the listener never saw a connection.
    for name in ("socket", "unix_socket", "tcp_connect"):
        denied(name, "PermissionError")
    denied("urllib")
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()
    listener.close()

    # Processes, threads, signals, debugging, limits.
    for name in ("fork", "subprocess", "posix_spawn", "execv"):
        denied(name, "PermissionError")
    denied("thread", "RuntimeError")
    denied("kill_parent", "PermissionError")
    assert terms == []  # the pytest process (the parent) got no SIGTERM and is alive
    denied("ptrace_parent", "PermissionError")
    assert probes["ptrace_parent"]["errno"] == 1  # EPERM
    denied("prlimit_raise", "PermissionError")
    denied("tiocsti", "PermissionError")
    denied("memory", "MemoryError")


@linux_only
def test_cpu_limit_stops_a_busy_loop(tmp_path: Path) -> None:
    script = ("from rlm_desktop import confine\n"
              "confine.lockdown(read_paths=confine.runtime_read_paths(), cpu_seconds=1)\n"
              "while True: pass\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=tmp_path,
                          timeout=30, check=False)
    assert proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL), proc.stderr


@linux_only
def test_missing_layers_are_reported_not_raised(secrets: dict[str, Path]) -> None:
    """A kernel without Landlock: lockdown still returns, says what is missing, and the
    level drops to partial (seccomp still holds)."""
    out, _ = run_child({
        "read_paths": confine.runtime_read_paths(), "canary": str(secrets["canary"]),
        "tmp_file": str(secrets["tmp_file"]), "only": ["etc_passwd", "socket"],
        "patch": {"rlm_desktop.confine_linux.landlock_abi":
                  "landlock: kernel without Landlock (ENOSYS)"},
    }, cwd=secrets["cwd"])
    report = out["report"]
    assert report["level"] == "partial"
    assert report["missing"] == ["landlock: kernel without Landlock (ENOSYS)"]
    assert report["layers"]["no_new_privs"] is True and report["layers"]["landlock"] is None
    assert "syscalls denied" in report["layers"]["seccomp"]
    assert out["probes"]["etc_passwd"]["ok"]  # honest: without Landlock it is readable
    assert out["probes"]["socket"]["error"] == "PermissionError"


@linux_only
def test_unknown_architecture_has_no_seccomp(monkeypatch: pytest.MonkeyPatch) -> None:
    from rlm_desktop import confine_linux

    monkeypatch.setattr(confine_linux, "machine", lambda: "riscv64")
    with pytest.raises(confine_linux.ConfineError, match="no syscall table for riscv64"):
        confine_linux.install_seccomp()  # refuses before any syscall: safe in-process


@linux_only
def test_rlimits_alone_are_level_none(secrets: dict[str, Path]) -> None:
    out, _ = run_child({
        "read_paths": [], "only": [],
        "patch": {"rlm_desktop.confine_linux.apply_landlock": "landlock: off",
                  "rlm_desktop.confine_linux.install_seccomp": "seccomp: off"},
    }, cwd=secrets["cwd"])
    assert out["report"]["level"] == "none"
    assert out["report"]["layers"]["rlimits"]["FSIZE"] == 0


@linux_only
def test_darwin_path_reports_an_absent_sandbox_honestly(tmp_path: Path) -> None:
    """The macOS branch run on Linux: the profile is claimed (env var) but /etc/hosts is
    readable, so the report says the profile is not in force."""
    script = ("import json, sys\nfrom rlm_desktop import confine\n"
              "sys.platform = 'darwin'\n"
              "r = confine.lockdown(read_paths=[], memory_bytes=2**30)\n"
              "sys.stdout.write(json.dumps(r.to_json()))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=tmp_path,
                          env={**os.environ, confine.SANDBOX_ENV: "1"}, timeout=30,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["platform"] == "darwin"
    assert report["level"] == "none"  # rlimits alone do not confine
    assert report["layers"]["sandbox_exec"] is None
    assert "AS" not in report["layers"]["rlimits"]
    assert any("not enforced by macOS" in m for m in report["missing"])
    assert any("profile is not in force" in m for m in report["missing"])


def test_windows_path_without_a_job_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    from rlm_desktop import confine_windows

    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.setattr(confine, "_windows_in_job", lambda: False)
    # Here the Win32 API is missing: the token layer says so and nothing confines.
    report = confine.lockdown()
    assert report.level == "none"
    assert any(m.startswith("token: Win32 API not available") for m in report.missing)
    assert "network: not blocked on Windows (needs an AppContainer token)" in report.missing
    assert report.layers["low_integrity"] is False
    # With the job and the lowered token: partial, and only the network is left open.
    monkeypatch.setattr(confine, "_windows_in_job", lambda: True)
    monkeypatch.setattr(confine_windows, "lower_token", lambda: (
        {"privileges_removed": True, "low_integrity": True}, []))
    report = confine.lockdown()
    assert report.level == "partial"
    assert report.missing == ("network: not blocked on Windows (needs an AppContainer token)",)
    assert report.layers["job_object"] and report.layers["low_integrity"]


# --- pure functions ----------------------------------------------------------------------

def test_levels() -> None:
    assert confine.LEVELS == ("none", "partial", "full")
    assert confine.level_at_least("full", "partial")
    assert confine.level_at_least("partial", "partial")
    assert not confine.level_at_least("partial", "full")
    assert not confine.level_at_least("none", "partial")
    assert confine.level_at_least("none", "none")
    assert not confine.level_at_least("bogus", "partial")  # unknown counts as none
    with pytest.raises(ValueError, match="unknown confinement level"):
        confine.level_at_least("full", "high")
    c = confine.Confinement("linux", "full", {"seccomp": "x"}, ("a",))
    assert c.to_json() == {"platform": "linux", "level": "full", "layers": {"seccomp": "x"},
                           "missing": ["a"]}


def test_runtime_read_paths_exclude_root_and_home(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    paths = confine.runtime_read_paths()
    assert paths and all(os.path.isabs(p) for p in paths)
    assert "/" not in paths and os.path.realpath(os.sep) not in paths
    home = os.path.realpath(os.path.expanduser("~"))
    assert home not in paths
    assert not any(home.startswith(p.rstrip(os.sep) + os.sep) for p in paths)
    assert len(paths) == len(set(paths))
    stdlib = os.path.realpath(os.path.dirname(os.__file__))
    assert any(stdlib == p or stdlib.startswith(p + os.sep) for p in paths)
    # A sys.path entry that is the home, a parent of it, or "/" is skipped.
    fake_home = tmp_path / "home" / "user"
    fake_home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(fake_home))
    monkeypatch.setattr(sys, "path", [*sys.path, str(fake_home), str(tmp_path / "home"), "/",
                                      str(fake_home / "missing")])
    paths = confine.runtime_read_paths()
    assert str(fake_home) not in paths and str(tmp_path / "home") not in paths
    assert "/" not in paths


def test_macos_profile_is_deny_default_and_quotes_paths() -> None:
    odd = '/Users/a b/Corpus "cache"\\x'
    profile = confine.macos_profile(["/opt/py/lib/python3.11", odd],
                                    "/opt/py/bin/python3.11")
    lines = profile.splitlines()
    assert lines[:2] == ["(version 1)", "(deny default)"]
    assert '(subpath "/opt/py/lib/python3.11")' in profile
    assert r'(subpath "/Users/a b/Corpus \"cache\"\\x")' in profile
    assert '(allow process-exec (literal "/opt/py/bin/python3.11")' in profile
    assert '(subpath "/opt/py")' in profile  # the interpreter's own prefix
    for forbidden in ("(allow network", "(allow file-write", "(allow process-fork",
                      "(allow file-read* (subpath \"/\")", "(allow mach", "(allow default"):
        assert forbidden not in profile
    assert profile.rstrip().splitlines()[-3:] == ["(deny network*)", "(deny file-write*)",
                                                  "(deny process-fork)"]
    assert profile.count("(") == profile.count(")")
    with pytest.raises(ValueError, match="control character"):
        confine.macos_profile(["/a\nb"], "/usr/bin/python3")


def test_launch_command(monkeypatch: pytest.MonkeyPatch) -> None:
    command = [sys.executable, "-m", "rlm_desktop.engine.repl_worker"]
    if LINUX:
        assert confine.launch_command(command, read_paths=["/x"]) == (command, {})
    monkeypatch.setattr(sys, "platform", "darwin")
    real_exists = os.path.exists
    monkeypatch.setattr(os.path, "exists",
                        lambda p: p == confine.SANDBOX_EXEC or real_exists(p))
    argv, env = confine.launch_command(command, read_paths=["/corpus cache"])
    assert argv[:2] == [confine.SANDBOX_EXEC, "-p"] and argv[3:] == command
    assert '(subpath "/corpus cache")' in argv[2]
    assert env == {confine.SANDBOX_ENV: "1"}


def test_confine_child_elsewhere_is_a_no_op() -> None:
    if sys.platform != "win32":
        assert confine.confine_child(os.getpid(), memory_bytes=1 << 30) == {}


class FakeKernel32:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.limits: Any = None

    def CreateJobObjectW(self, attrs: Any, name: Any) -> int:
        self.calls.append(("create", name))
        return 0x1234

    def SetInformationJobObject(self, job: int, cls: int, info: Any, size: int) -> int:
        self.calls.append(("set", (job, cls, size)))
        if cls == confine.JobObjectExtendedLimitInformation:
            self.limits = info._obj
        return 1

    def OpenProcess(self, access: int, inherit: bool, pid: int) -> int:
        self.calls.append(("open", (access, pid)))
        return 0x99

    def AssignProcessToJobObject(self, job: int, process: int) -> int:
        self.calls.append(("assign", (job, process)))
        return 1

    def CloseHandle(self, handle: int) -> int:
        self.calls.append(("close", handle))
        return 1


def test_windows_job_structures_and_calls() -> None:
    pointer = ctypes.sizeof(ctypes.c_void_p)
    assert ctypes.sizeof(confine.IO_COUNTERS) == 48
    assert ctypes.sizeof(confine.JOBOBJECT_BASIC_LIMIT_INFORMATION) == (64 if pointer == 8
                                                                         else 48)
    assert ctypes.sizeof(confine.JOBOBJECT_EXTENDED_LIMIT_INFORMATION) == (144 if pointer == 8
                                                                            else 112)
    assert confine.JOBOBJECT_BASIC_LIMIT_INFORMATION.LimitFlags.offset == 16
    assert confine.JOBOBJECT_EXTENDED_LIMIT_INFORMATION.IoInfo.offset == (64 if pointer == 8
                                                                          else 48)
    kernel32 = FakeKernel32()
    result = confine.apply_job(kernel32, 4242, 256 * MiB, lambda: 5)
    assert result["job_object"] is True and result["active_process_limit"] == 1
    limits = kernel32.limits
    basic = limits.BasicLimitInformation
    assert basic.ActiveProcessLimit == 1
    assert basic.LimitFlags == (confine.JOB_OBJECT_LIMIT_ACTIVE_PROCESS
                                | confine.JOB_OBJECT_LIMIT_PROCESS_MEMORY
                                | confine.JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
                                | confine.JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION)
    assert limits.ProcessMemoryLimit == 256 * MiB
    assert ("set", (0x1234, 9, ctypes.sizeof(confine.JOBOBJECT_EXTENDED_LIMIT_INFORMATION))
            ) in kernel32.calls
    assert ("assign", (0x1234, 0x99)) in kernel32.calls
    assert ("close", 0x99) in kernel32.calls and ("close", 0x1234) not in kernel32.calls
    confine.release_child(4242)
    assert kernel32.calls[-1] == ("close", 0x1234)
    confine.release_child(4242)  # twice is harmless
    no_memory = confine.job_limits(None)
    assert not no_memory.BasicLimitInformation.LimitFlags & confine.JOB_OBJECT_LIMIT_PROCESS_MEMORY


# --- the seccomp program, run through a small BPF interpreter -----------------------------

def run_bpf(program: bytes, nr: int, arch: int, args: tuple[int, ...] = ()) -> int:
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    insns = [struct.unpack("=HBBI", program[i:i + 8]) for i in range(0, len(program), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x06:
            return k
        elif code in (0x15, 0x35, 0x25):
            taken = {0x15: acc == k, 0x35: acc >= k, 0x25: acc > k}[code]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
        pc += 1


@pytest.mark.skipif(not LINUX, reason="confine_linux is imported on Linux only")
def test_seccomp_program_logic() -> None:
    from rlm_desktop import confine_linux as cl

    allow, eperm = cl.SECCOMP_RET_ALLOW, cl.SECCOMP_RET_ERRNO | 1
    enosys, kill = cl.SECCOMP_RET_ERRNO | 38, cl.SECCOMP_RET_KILL_PROCESS
    known = set(cl.SYSCALLS["x86_64"]) | set(cl.SYSCALLS["aarch64"])
    assert set(cl.DENIED) <= known  # no typo silently drops a syscall
    for arch, audit in cl.AUDIT_ARCH.items():
        table = cl.SYSCALLS[arch]
        program = cl.build_filter(arch)
        assert len(program) % 8 == 0 and len(program) // 8 < 4096

        def verdict(nr: int, *args: int, _p: bytes = program, _a: int = audit) -> int:
            return run_bpf(_p, nr, _a, args)

        assert run_bpf(program, 0, 0x40000003) == kill  # i386 / a foreign arch
        for name in cl.DENIED:
            if name in table:
                assert verdict(table[name]) == eperm, name
        assert verdict(table["clone3"]) == eperm and verdict(table["clone"]) == eperm
        assert verdict(cl.HIGHEST_KNOWN_SYSCALL + 1) == enosys
        assert verdict(table["ioctl"], 1, 0x5401) == allow  # TCGETS
        assert verdict(table["ioctl"], 1, cl.TIOCSTI) == eperm
        assert verdict(table["ioctl"], 1, (0xDEAD << 32) | cl.TIOCSTI) == eperm
        assert verdict(table["ioctl"], 1, cl.TIOCLINUX) == eperm
        assert verdict(table["prlimit64"], 0, 7, 0, 0x7FFC0000) == allow  # read only
        assert verdict(table["prlimit64"], 0, 7, 0x7FFC0000) == eperm
        assert verdict(table["prlimit64"], 0, 7, 1 << 40) == eperm
        allowed = {"x86_64": (0, 1, 3, 9, 202, 231, 257, 318),  # read write close mmap ...
                   "aarch64": (56, 57, 63, 64, 98, 222, 94, 278)}[arch]
        for nr in allowed:
            assert verdict(nr) == allow, nr
    x86 = cl.build_filter("x86_64")
    assert run_bpf(x86, 0x40000000 | 41, cl.AUDIT_ARCH_X86_64) == eperm  # x32 socket
    assert run_bpf(x86, 0x40000000, cl.AUDIT_ARCH_X86_64) == eperm
    assert run_bpf(cl.build_filter("aarch64"), 41, cl.AUDIT_ARCH_X86_64) == kill


@pytest.mark.skipif(not LINUX, reason="confine_linux is imported on Linux only")
def test_assembler_refuses_long_jumps() -> None:
    from rlm_desktop import confine_linux as cl

    items: list[Any] = [(cl.BPF_JEQ_K, "end", 0, 1)]
    items += [(cl.BPF_RET_K, 0, 0, 0)] * 300
    items += ["end", (cl.BPF_RET_K, 0, 0, 0)]
    with pytest.raises(ValueError, match="out of range"):
        cl.assemble(items)


def test_sandbox_exec_check(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    monkeypatch.delenv(confine.SANDBOX_ENV, raising=False)
    assert confine._check_sandbox_exec([]) == (
        None, "sandbox-exec: the worker was not started under sandbox-exec")
    monkeypatch.setenv(confine.SANDBOX_ENV, "1")
    real_open = builtins.open

    def sandboxed_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path) in confine._PROBES:
            raise PermissionError(1, "Operation not permitted", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", sandboxed_open)
    description, problem = confine._check_sandbox_exec(["/usr/share"])
    assert problem is None and description is not None and "/etc/hosts" in description
    # A probe inside the read paths proves nothing: the next one is tried.
    description, _ = confine._check_sandbox_exec(["/etc"])
    assert description == "deny-default profile in force (/private/etc/hosts unreadable)"
