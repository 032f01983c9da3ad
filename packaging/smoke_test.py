"""Smoke test of the frozen app (Linux): run the built executable as a user would.

    uv run python packaging/smoke_test.py dist/rlm-desktop/rlm-desktop [--corpus DIR]

Checks, each against the same source tree the app was built from:
1. `--version` prints the version of this source tree;
2. `--diagnose`: frozen, keyring backends registered (their entry points are metadata the
   bundle must carry) and the platform's own among them, the REPL worker starts from the
   frozen executable and reaches the sandbox level the source tree reaches, Qt loads;
3. `ingest --json` over real files of the shared corpus (PDF, a CID-font PDF, Word, Outlook
   .msg, .eml with a PDF attachment, mbox, gzipped log) reads each one exactly as the source
   tree does (same kind, characters, SHA-256, pages/messages/lines);
4. `ask --json` against the scripted server (started from the source tree) completes, with
   citations, and reports the sandbox level: the frozen worker ran model code;
5. the window offscreen (`--demo` when this source tree has it, else documents + question
   + `--run` against the scripted server) saves a screenshot and exits 0.
Exit status 0 when everything passed; one line per check either way.
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
# A few real files, one per loader; pdf/kampo.pdf needs pdfminer's CMaps, the .docx
# python-docx's templates, the .eml an attachment parsed in the same process.
FILES = (
    "pdf/f1040nr.pdf", "pdf/kampo.pdf", "docx/docx2python-example.docx",
    "mail/msg/EmailWithAttachments.msg", "mail/eml/flanker-attached-pdf.eml",
    "mail/mbox/linux-mips-2001-03.mbox", "logs/rotated/OpenSSH_2k.log.1.gz",
    "logs/Apache_2k.log",
)
COMPARED = ("name", "kind", "chars", "sha256", "pages", "messages", "lines", "error")
PLATFORM_KEYRING = {"linux": "SecretService", "darwin": "macOS", "win32": "Windows"}
TIMEOUT = 300


class Smoke:
    def __init__(self, exe: Path, corpus: Path, home: Path) -> None:
        self.exe = exe
        self.corpus = corpus
        self.home = home
        self.failures: list[str] = []
        self.timings: dict[str, float] = {}

    def env(self, **extra: str) -> dict[str, str]:
        """A user's environment with the app's data in a temp dir and Qt offscreen."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("OPENAI_", "PYTHON", "VIRTUAL_ENV", "UV_"))}
        env.update(RLM_DESKTOP_HOME=str(self.home), QT_QPA_PLATFORM="offscreen", **extra)
        return env

    def frozen(self, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.exe), *args], capture_output=True, text=True,
                              env=env or self.env(), timeout=TIMEOUT, check=False,
                              cwd=self.home)

    def source(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "rlm_desktop", *args],
                              capture_output=True, text=True, timeout=TIMEOUT, check=False,
                              env={**self.env(), "PYTHONPATH": str(ROOT)}, cwd=ROOT)

    def check(self, name: str, test: Callable[[], str]) -> None:
        started = time.perf_counter()
        try:
            detail = test()
            ok = True
        except AssertionError as exc:
            detail, ok = str(exc) or "assertion failed", False
        except (subprocess.TimeoutExpired, OSError, ValueError, KeyError) as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        elapsed = time.perf_counter() - started
        self.timings[name] = elapsed
        print(f"{'PASS' if ok else 'FAIL'}  {name:<9} {elapsed:6.1f} s  {detail}", flush=True)
        if not ok:
            self.failures.append(name)

    # -- the checks -------------------------------------------------------------------------

    def version(self) -> str:
        from rlm_desktop import __version__

        result = self.frozen("--version")
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.strip() == f"rlm-desktop {__version__}", result.stdout
        return result.stdout.strip()

    def diagnose(self) -> str:
        result = self.frozen("--diagnose")
        assert result.returncode == 0, result.stderr[-2000:]
        report = json.loads(result.stdout)
        source = json.loads(self.source("--diagnose").stdout)
        assert report["frozen"] is True, "the executable does not say it is frozen"
        assert report["worker_command"] == [str(self.exe), "--repl-worker"], \
            f"the REPL worker does not start from the frozen executable: {report}"
        keyring = report["keyring"]
        own = PLATFORM_KEYRING.get(sys.platform)
        assert own in keyring.get("registered", []), \
            f"keyring backend {own} not registered (entry-point metadata missing?): {keyring}"
        sandbox = report["sandbox"]
        assert sandbox.get("level") == source["sandbox"]["level"], \
            f"sandbox level {sandbox.get('level')} frozen vs {source['sandbox']['level']} " \
            f"from source: {sandbox}"
        assert sandbox["cell"]["error"] is None, sandbox["cell"]
        assert report["qt"]["version"] == source["qt"]["version"], report["qt"]
        return (f"keyring {keyring['backend']} (registered: {', '.join(keyring['registered'])})"
                f"; sandbox {sandbox['level']}; Qt {report['qt']['version']}")

    def ingest(self) -> str:
        paths = [str(self.corpus / f) for f in FILES]
        missing = [p for p in paths if not Path(p).exists()]
        assert not missing, f"corpus files missing: {missing}"
        frozen = self.frozen("ingest", "--json", "--no-cache", *paths)
        assert frozen.returncode == 0, frozen.stderr[-2000:]
        source = self.source("ingest", "--json", "--no-cache", *paths)
        got = [{k: e.get(k) for k in COMPARED} for e in json.loads(frozen.stdout)["documents"]]
        want = [{k: e.get(k) for k in COMPARED} for e in json.loads(source.stdout)["documents"]]
        errors = [f"{e['name']}: {e['error']}" for e in got if e["error"]]
        assert not errors, f"files the frozen app could not read: {errors}"
        assert got == want, "frozen and source ingest differ:\n" + "\n".join(
            f"  frozen {g}\n  source {w}" for g, w in zip(got, want, strict=False) if g != w)
        chars = sum(e["chars"] for e in got)
        return f"{len(got)} files, {chars:,} characters, identical to the source tree"

    def ask(self, base_url: str) -> str:
        result = self.frozen(
            "ask", str(self.corpus / "logs" / "OpenSSH_2k.log"), "--question",
            "Which failed password attempts came from invalid users?", "--base-url", base_url,
            "--api-key", "smoke-test", "--json", "--min-sandbox", "partial")
        assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
        answer = json.loads(result.stdout)
        assert answer["status"] == "completed", answer
        assert answer["citations"], "no citations"
        level = answer["sandbox"]["level"]
        assert level in ("partial", "full"), answer["sandbox"]
        return (f"{answer['status']}: {answer['answer'][:50]!r}, {len(answer['citations'])} "
                f"citations, {answer['iterations']} iterations, sandbox level {level}")

    def gui(self, base_url: str, shot: Path) -> str:
        from rlm_desktop.cli import build_gui_parser

        demo = any("--demo" in a.option_strings for a in build_gui_parser()._actions)
        if demo:
            args = ["--demo", "--run", "--screenshot", str(shot), "--exit-when-done"]
            env = self.env(PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
        else:
            args = [str(self.corpus / "logs" / "OpenSSH_2k.log"), "--question",
                    "Which failed password attempts came from invalid users?", "--run",
                    "--screenshot", str(shot), "--exit-when-done"]
            env = self.env(OPENAI_BASE_URL=base_url, OPENAI_API_KEY="smoke-test",
                           PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring")
        result = self.frozen(*args, env=env)
        assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-2000:]}"
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", "the screenshot is not a PNG"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 400 and height >= 300, f"screenshot of {width}x{height}"
        return f"{'--demo' if demo else 'documents + --run'}: {width}x{height} -> {shot}"


def start_server() -> tuple[subprocess.Popen[str], str]:
    """The scripted OpenAI-compatible server from the source tree; its base URL."""
    server = subprocess.Popen([sys.executable, "-m", "rlm_desktop.testing.server"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith("http://127.0.0.1:"):
        server.kill()
        raise SystemExit(f"smoke test: the scripted server did not start ({line!r})")
    return server, line


def licences(app: Path) -> str:
    """The app carries its own licence and the third-party notices, Qt's LGPL included."""
    notices = app / "THIRD-PARTY-NOTICES.txt"
    if not (app / "LICENSE").is_file() or not notices.is_file():
        raise AssertionError(f"LICENSE or {notices.name} missing in {app}")
    text = notices.read_text(encoding="utf-8")
    for needed in ("PySide6_Essentials", "openai", "keyring", "RestrictedPython",
                   "GNU LESSER GENERAL PUBLIC LICENSE", "PYTHON SOFTWARE FOUNDATION"):
        if needed not in text:
            raise AssertionError(f"{notices.name} does not mention {needed}")
    return f"{notices.name}: {len(text):,} characters"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Smoke test of the frozen RLM Desktop app.")
    parser.add_argument("executable", type=Path, nargs="?",
                        default=ROOT / "dist" / "rlm-desktop" / "rlm-desktop")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--screenshot", type=Path,
                        help="where to keep the window picture (default: a temp dir)")
    args = parser.parse_args(argv)
    exe = args.executable.resolve()
    if not exe.is_file():
        print(f"smoke test: no executable at {exe} (build it: uv run --group packaging "
              "python packaging/build.py)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    server, base_url = start_server()
    try:
        with tempfile.TemporaryDirectory(prefix="rlm-smoke-") as tmp:
            home = Path(tmp) / "home"
            home.mkdir()
            smoke = Smoke(exe, args.corpus.resolve(), home)
            shot = args.screenshot or Path(tmp) / "window.png"
            print(f"smoke test of {exe}")
            smoke.check("version", smoke.version)
            smoke.check("licences", lambda: licences(exe.parent))
            smoke.check("diagnose", smoke.diagnose)
            smoke.check("ingest", smoke.ingest)
            smoke.check("ask", lambda: smoke.ask(base_url))
            smoke.check("gui", lambda: smoke.gui(base_url, shot.resolve()))
    finally:
        server.terminate()
        server.wait(timeout=10)
    total = time.perf_counter() - started
    passed = len(smoke.timings) - len(smoke.failures)
    print(f"{passed} passed, {len(smoke.failures)} failed in {total:.1f} s")
    return 1 if smoke.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
