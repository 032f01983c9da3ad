"""Linux part of the OS confinement of the REPL worker: no_new_privs, Landlock, seccomp.

Everything here talks to the kernel through ctypes (`syscall`, `prctl` of the C library);
the seccomp program is classic BPF assembled with `struct`, no libseccomp. Each step
returns what it achieved or raises `ConfineError` with a sentence for the report; the
caller (confine.lockdown) decides the level. Nothing here is imported off Linux.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
import struct
from collections.abc import Iterable, Sequence
from typing import Any


class ConfineError(Exception):
    """A layer could not be applied; str(exc) is the sentence shown in `missing`."""


# --- C library -------------------------------------------------------------------------

_libc: Any = None


def _c() -> Any:
    global _libc  # noqa: PLW0603 - loaded once, before the lockdown closes the filesystem
    if _libc is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.prctl.restype = ctypes.c_int
        _libc = libc
    return _libc


def _syscall(nr: int, *args: Any) -> int:
    ctypes.set_errno(0)
    result = int(_c().syscall(ctypes.c_long(nr), *args))
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def _prctl(option: int, *args: int) -> int:
    ctypes.set_errno(0)
    result = int(_c().prctl(ctypes.c_int(option), *(ctypes.c_ulong(a) for a in args)))
    if result < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return result


def _errname(exc: OSError) -> str:
    return errno.errorcode.get(exc.errno or 0, str(exc.errno))


# --- architecture and syscall numbers --------------------------------------------------

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# Syscalls that appeared after the tables below share one number on every architecture.
_COMMON = {
    "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434, "clone3": 435,
    "pidfd_getfd": 438, "process_madvise": 440, "mount_setattr": 442, "quotactl_fd": 443,
    "memfd_secret": 447, "process_mrelease": 448, "fchmodat2": 452, "setxattrat": 463,
    "removexattrat": 466, "open_tree_attr": 467, "file_setattr": 469,
}
HIGHEST_KNOWN_SYSCALL = 469  # above it: ENOSYS (a new syscall; libc falls back cleanly)

SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        **_COMMON,
        "ioctl": 16, "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50,
        "socketpair": 53, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "kill": 62,
        "truncate": 76, "chmod": 90, "fchmod": 91, "chown": 92, "fchown": 93, "lchown": 94,
        "ptrace": 101, "syslog": 103, "setpriority": 141, "sched_setparam": 142,
        "sched_setscheduler": 144, "sched_setaffinity": 203, "ioprio_set": 251,
        "sched_setattr": 314, "rt_sigqueueinfo": 129, "utime": 132, "mknod": 133,
        "uselib": 134, "personality": 135, "vhangup": 153, "modify_ldt": 154,
        "pivot_root": 155, "_sysctl": 156, "adjtimex": 159, "setrlimit": 160, "chroot": 161,
        "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167,
        "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172,
        "ioperm": 173, "init_module": 175, "delete_module": 176, "quotactl": 179,
        "setxattr": 188, "lsetxattr": 189, "fsetxattr": 190, "removexattr": 197,
        "lremovexattr": 198, "fremovexattr": 199, "tkill": 200, "lookup_dcookie": 212,
        "clock_settime": 227, "tgkill": 234, "utimes": 235, "kexec_load": 246, "add_key": 248,
        "request_key": 249, "keyctl": 250, "inotify_init": 253, "inotify_add_watch": 254,
        "migrate_pages": 256, "mknodat": 259, "fchownat": 260, "futimesat": 261,
        "fchmodat": 268, "unshare": 272, "move_pages": 279, "utimensat": 280, "accept4": 288,
        "inotify_init1": 294, "rt_tgsigqueueinfo": 297, "perf_event_open": 298,
        "fanotify_init": 300, "fanotify_mark": 301, "prlimit64": 302,
        "name_to_handle_at": 303, "open_by_handle_at": 304, "clock_adjtime": 305,
        "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312,
        "finit_module": 313, "seccomp": 317, "memfd_create": 319, "kexec_file_load": 320,
        "bpf": 321, "execveat": 322, "userfaultfd": 323,
    },
    "aarch64": {
        **_COMMON,
        "setxattr": 5, "lsetxattr": 6, "fsetxattr": 7, "removexattr": 14, "lremovexattr": 15,
        "fremovexattr": 16, "lookup_dcookie": 18, "ioprio_set": 30, "sched_setparam": 118,
        "sched_setscheduler": 119, "sched_setaffinity": 122, "setpriority": 140,
        "sched_setattr": 274, "inotify_init1": 26,
        "inotify_add_watch": 27, "ioctl": 29, "mknodat": 33, "umount2": 39, "mount": 40,
        "pivot_root": 41, "truncate": 45, "chroot": 51, "fchmod": 52, "fchmodat": 53,
        "fchownat": 54, "fchown": 55, "vhangup": 58, "quotactl": 60, "utimensat": 88,
        "acct": 89, "personality": 92, "unshare": 97, "kexec_load": 104, "init_module": 105,
        "delete_module": 106, "clock_settime": 112, "syslog": 116, "ptrace": 117,
        "kill": 129, "tkill": 130, "tgkill": 131, "rt_sigqueueinfo": 138, "reboot": 142,
        "sethostname": 161, "setdomainname": 162, "setrlimit": 164, "settimeofday": 170,
        "adjtimex": 171, "socket": 198, "socketpair": 199, "bind": 200, "listen": 201,
        "accept": 202, "connect": 203, "add_key": 217, "request_key": 218, "keyctl": 219,
        "clone": 220, "execve": 221, "swapon": 224, "swapoff": 225, "migrate_pages": 238,
        "move_pages": 239, "rt_tgsigqueueinfo": 240, "perf_event_open": 241, "accept4": 242,
        "prlimit64": 261, "fanotify_init": 262, "fanotify_mark": 263,
        "name_to_handle_at": 264, "open_by_handle_at": 265, "clock_adjtime": 266,
        "setns": 268, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272,
        "finit_module": 273, "seccomp": 277, "memfd_create": 279, "bpf": 280,
        "execveat": 281, "userfaultfd": 282, "kexec_file_load": 294,
    },
}
AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}

# Denied outright with EPERM (names absent on an architecture are skipped).
DENIED = (
    # network: no socket of any family (AF_UNIX included), no server
    "socket", "socketpair", "connect", "bind", "listen", "accept", "accept4",
    # new programs and new processes or threads (clone3 EPERM, not ENOSYS: no fallback)
    "execve", "execveat", "fork", "vfork", "clone", "clone3",
    # other processes: debugging, memory, signals, pidfds
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "process_madvise",
    "process_mrelease", "pidfd_open", "pidfd_getfd", "pidfd_send_signal", "kill", "tkill",
    "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "migrate_pages", "move_pages",
    # scheduling of other processes (root could starve the parent)
    "setpriority", "sched_setparam", "sched_setscheduler", "sched_setaffinity",
    "sched_setattr", "ioprio_set",
    # namespaces and mounts
    "mount", "umount2", "unshare", "setns", "pivot_root", "chroot", "open_tree",
    "open_tree_attr", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "name_to_handle_at", "open_by_handle_at",
    # kernel attack surface
    "keyctl", "add_key", "request_key", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "bpf", "perf_event_open", "userfaultfd", "personality",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "uselib", "_sysctl", "modify_ldt", "iopl", "ioperm", "lookup_dcookie",
    # the machine: root could otherwise do these
    "reboot", "syslog", "sethostname", "setdomainname", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd",
    "vhangup",
    # file metadata and content that Landlock does not cover (or covers only from ABI 3)
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat",
    "utime", "utimes", "futimesat", "utimensat", "setxattr", "lsetxattr", "fsetxattr",
    "setxattrat", "removexattr", "lremovexattr", "fremovexattr", "removexattrat",
    "file_setattr", "truncate", "mknod", "mknodat", "memfd_create", "memfd_secret",
    # watching other files
    "inotify_init", "inotify_init1", "inotify_add_watch", "fanotify_init", "fanotify_mark",
    # raising the rlimits back (root keeps CAP_SYS_RESOURCE); prlimit64 is checked below
    "setrlimit",
)
TIOCSTI = 0x5412    # push bytes into a terminal's input queue
TIOCLINUX = 0x541C  # console selection paste, same effect

# --- seccomp BPF -----------------------------------------------------------------------

BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_JGT_K = 0x25
BPF_RET_K = 0x06
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
OFF_NR, OFF_ARCH = 0, 4


def _arg_lo(n: int) -> int:
    return 16 + 8 * n  # seccomp_data.args[n], low 32 bits (little-endian)


def _arg_hi(n: int) -> int:
    return 20 + 8 * n


Insn = tuple[int, "int | str", "int | str", int]


def assemble(items: Sequence[Insn | str]) -> bytes:
    """Classic BPF with symbolic jump targets: a str item is a label, a str jt/jf jumps
    to it (forward only, as BPF requires)."""
    labels: dict[str, int] = {}
    count = 0
    for item in items:
        if isinstance(item, str):
            labels[item] = count
        else:
            count += 1
    out = bytearray()
    pc = 0
    for item in items:
        if isinstance(item, str):
            continue
        code, jt, jf, k = item
        offsets = []
        for target in (jt, jf):
            if isinstance(target, str):
                delta = labels[target] - pc - 1
                if not 0 <= delta <= 255:
                    raise ValueError(f"jump to {target!r} out of range ({delta})")
                offsets.append(delta)
            else:
                offsets.append(target)
        out += struct.pack("=HBBI", code, offsets[0], offsets[1], k & 0xFFFFFFFF)
        pc += 1
    return bytes(out)


def machine() -> str:
    name = os.uname().machine.lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(name, name)


def denied_numbers(arch: str) -> list[int]:
    table = SYSCALLS[arch]
    return sorted({table[name] for name in DENIED if name in table})


def build_filter(arch: str) -> bytes:
    """The seccomp program: KILL on a foreign arch (i386 via int 0x80, x32), EPERM for
    DENIED, ENOSYS above the newest known syscall, argument checks for ioctl (no terminal
    injection) and prlimit64 (read only), ALLOW the rest."""
    table = SYSCALLS[arch]
    eperm = SECCOMP_RET_ERRNO | errno.EPERM
    items: list[Insn | str] = [
        (BPF_LD_W_ABS, 0, 0, OFF_ARCH),
        (BPF_JEQ_K, 0, "kill", AUDIT_ARCH[arch]),
        (BPF_LD_W_ABS, 0, 0, OFF_NR),
    ]
    if arch == "x86_64":
        items.append((BPF_JGE_K, "deny", 0, X32_SYSCALL_BIT))
    items += [
        (BPF_JGT_K, "enosys", 0, HIGHEST_KNOWN_SYSCALL),
        (BPF_JEQ_K, "ioctl", 0, table["ioctl"]),
        (BPF_JEQ_K, "prlimit", 0, table["prlimit64"]),
    ]
    items += [(BPF_JEQ_K, "deny", 0, nr) for nr in denied_numbers(arch)]
    items += [
        "allow", (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        "deny", (BPF_RET_K, 0, 0, eperm),
        "enosys", (BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.ENOSYS),
        "kill", (BPF_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        "ioctl", (BPF_LD_W_ABS, 0, 0, _arg_lo(1)),  # the kernel reads cmd as 32 bits
        (BPF_JEQ_K, "deny2", 0, TIOCSTI),
        (BPF_JEQ_K, "deny2", "allow2", TIOCLINUX),
        "prlimit", (BPF_LD_W_ABS, 0, 0, _arg_lo(2)),  # new_limit must be NULL
        (BPF_JEQ_K, 0, "deny2", 0),
        (BPF_LD_W_ABS, 0, 0, _arg_hi(2)),
        (BPF_JEQ_K, "allow2", "deny2", 0),
        "allow2", (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        "deny2", (BPF_RET_K, 0, 0, eperm),
    ]
    return assemble(items)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_TSYNC = 1


def set_no_new_privs() -> None:
    try:
        _prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    except OSError as exc:
        raise ConfineError(f"no_new_privs: prctl refused ({_errname(exc)})") from exc


def install_seccomp() -> str:
    arch = machine()
    if arch not in SYSCALLS or struct.calcsize("P") != 8:
        raise ConfineError(f"seccomp: no syscall table for {arch} "
                           f"({struct.calcsize('P') * 8}-bit Python)")
    program = build_filter(arch)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    try:  # every thread at once (TSYNC); returns a thread id > 0 if one could not sync
        if _syscall(SYSCALLS[arch]["seccomp"], ctypes.c_ulong(SECCOMP_SET_MODE_FILTER),
                    ctypes.c_ulong(SECCOMP_FILTER_FLAG_TSYNC), ctypes.byref(fprog)) != 0:
            raise ConfineError("seccomp: a thread could not be synchronised")
        how = "seccomp(TSYNC)"
    except OSError:
        try:
            _c_prctl_ptr(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fprog)
        except OSError as exc:
            raise ConfineError(f"seccomp: filter refused ({_errname(exc)})") from exc
        how = "prctl"
    return f"{len(denied_numbers(arch))} syscalls denied ({arch}, {len(program) // 8} " \
           f"BPF instructions, via {how})"


def _c_prctl_ptr(option: int, mode: int, fprog: _SockFprog) -> None:
    ctypes.set_errno(0)
    if int(_c().prctl(ctypes.c_int(option), ctypes.c_ulong(mode), ctypes.byref(fprog),
                      ctypes.c_ulong(0), ctypes.c_ulong(0))) < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))


# --- Landlock --------------------------------------------------------------------------

LANDLOCK_CREATE_RULESET = 444
LANDLOCK_ADD_RULE = 445
LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_ACCESS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1,
                    5: (1 << 16) - 1}  # execute .. make_sym, refer, truncate, ioctl_dev
NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1


def landlock_abi() -> int:
    """The highest Landlock ABI the kernel offers; ConfineError when it has none."""
    try:
        return _syscall(LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                        ctypes.c_uint32(LANDLOCK_CREATE_RULESET_VERSION))
    except OSError as exc:
        why = {errno.ENOSYS: "kernel without Landlock",
               errno.EOPNOTSUPP: "Landlock disabled at boot"}.get(exc.errno or 0, "refused")
        raise ConfineError(f"landlock: {why} ({_errname(exc)})") from exc


def apply_landlock(read_paths: Iterable[str]) -> tuple[str, list[str]]:
    """Read-only access below `read_paths`, nothing else on the filesystem; TCP bind and
    connect denied (ABI >= 4); abstract unix sockets and signals scoped (ABI >= 6).
    Returns the description and the paths that got a rule."""
    abi = landlock_abi()
    fs = FS_ACCESS_BY_ABI[min(abi, 5)]
    net = NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)[: 24 if abi >= 6 else 16 if abi >= 4 else 8]
    attr_buf = ctypes.create_string_buffer(attr, len(attr))
    try:
        ruleset = _syscall(LANDLOCK_CREATE_RULESET, attr_buf, ctypes.c_size_t(len(attr)),
                           ctypes.c_uint32(0))
    except OSError as exc:
        raise ConfineError(f"landlock: ruleset refused ({_errname(exc)})") from exc
    ruled: list[str] = []
    try:
        for path in read_paths:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # only existing paths get a rule
            try:
                is_dir = stat.S_ISDIR(os.fstat(fd).st_mode)
                access = FS_READ_FILE | FS_READ_DIR if is_dir else FS_READ_FILE
                rule = ctypes.create_string_buffer(struct.pack("=Qi", access, fd), 12)
                _syscall(LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
                         ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH), rule, ctypes.c_uint32(0))
                ruled.append(path)
            except OSError as exc:
                raise ConfineError(f"landlock: rule for {path} refused ({_errname(exc)})"
                                   ) from exc
            finally:
                os.close(fd)
        try:
            _syscall(LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0))
        except OSError as exc:
            raise ConfineError(f"landlock: restrict_self refused ({_errname(exc)})") from exc
    finally:
        os.close(ruleset)
    scope = ["files"] + (["tcp"] if net else []) + (["unix+signal scope"] if scoped else [])
    return f"abi {abi} ({', '.join(scope)})", ruled


def thread_count() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 1


def lockdown_layers(read_paths: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """no_new_privs, Landlock, seccomp, in that order; what applied and what did not."""
    layers: dict[str, Any] = {}
    missing: list[str] = []
    threads = thread_count()
    try:
        set_no_new_privs()
        layers["no_new_privs"] = True
    except ConfineError as exc:
        layers["no_new_privs"] = False
        missing.append(str(exc))
    try:
        description, ruled = apply_landlock(read_paths)
        layers["landlock"] = description
        layers["landlock_read_paths"] = ruled
        if threads > 1:  # landlock_restrict_self binds the calling thread only
            missing.append(f"landlock: {threads - 1} other thread(s) were running and "
                           "are not restricted")
    except ConfineError as exc:
        layers["landlock"] = None
        missing.append(str(exc))
    try:
        layers["seccomp"] = install_seccomp()
    except ConfineError as exc:
        layers["seccomp"] = None
        missing.append(str(exc))
    return layers, missing
