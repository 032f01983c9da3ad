"""Build the frozen RLM Desktop app and its installers for the system this runs on.

    uv run --group packaging python packaging/build.py            # app + installers
    uv run --group packaging python packaging/build.py --smoke    # ... then the smoke test

Linux: dist/rlm-desktop/ (one-directory app), dist/rlm-desktop-VERSION-linux-ARCH.tar.gz,
dist/rlm-desktop_VERSION_ARCH.deb (with dpkg-deb), and with --appimage an AppDir, packed
into an AppImage when `appimagetool` is on PATH. Windows: the app, then the Inno Setup
installer when `iscc` is on PATH. macOS: "RLM Desktop.app", then the .dmg (signed and
notarized when the environment asks for it; packaging/macos/make_dmg.sh). Everything is
described in packaging/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGING = ROOT / "packaging"
RESOURCES = ROOT / "rlm_desktop" / "resources"
NAME = "rlm-desktop"
SPEC = PACKAGING / "rlm-desktop.spec"

sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(PACKAGING))
import notices  # noqa: E402

from rlm_desktop.resources import APP_ID, ICON_SIZES  # noqa: E402


def version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version(NAME)


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() or p.is_symlink())


def mib(n: int) -> str:
    return f"{n / 2**20:,.1f} MiB"


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def check_resources() -> None:
    """The icon files exist; the desktop entry and metainfo pass their validators (when
    installed: desktop-file-utils, appstream)."""
    missing = [f"icons/rlm-desktop-{s}.png" for s in ICON_SIZES
               if not (RESOURCES / "icons" / f"rlm-desktop-{s}.png").is_file()]
    missing += [n for n in ("icons/rlm-desktop.ico", "icons/rlm-desktop.icns")
                if not (RESOURCES / n).is_file()]
    if missing:
        raise SystemExit(f"build: missing {', '.join(missing)}: run "
                         "`uv run python packaging/render_icons.py`")
    checks = [("desktop-file-validate", [str(RESOURCES / f"{APP_ID}.desktop")]),
              ("appstreamcli", ["validate", "--no-net",
                                str(RESOURCES / f"{APP_ID}.metainfo.xml")])]
    for tool, args in checks:
        if shutil.which(tool):
            subprocess.run([tool, *args], check=True)
        else:
            print(f"    ({tool} not installed: skipped; tests/packaging checks the structure)")


def pyinstaller(dist: Path, work: Path, ver: str) -> Path:
    env = {**os.environ, "RLM_BUILD_VERSION": ver}
    if sys.platform == "win32":
        env["RLM_BUILD_WIN_VERSION_FILE"] = str(windows_version_file(work, ver))
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--clean",
                    "--log-level", "WARN", "--distpath", str(dist), "--workpath", str(work),
                    str(SPEC)], check=True, env=env, cwd=ROOT)
    app = dist / NAME
    if not (app / (f"{NAME}.exe" if sys.platform == "win32" else NAME)).exists():
        raise SystemExit(f"build: PyInstaller finished but {app} has no executable")
    return app


def windows_version_file(work: Path, ver: str) -> Path:
    """The VERSIONINFO resource of the .exe files (Explorer's Details tab)."""
    parts = [int(p) for p in ver.split("+", maxsplit=1)[0].split(".")[:3] if p.isdigit()]
    nums = tuple([*parts, 0, 0, 0, 0][:4])
    work.mkdir(parents=True, exist_ok=True)
    path = work / "version_info.txt"
    strings = {"CompanyName": "RLM Desktop team", "FileDescription": "RLM Desktop",
               "FileVersion": ver, "InternalName": NAME, "LegalCopyright": "Apache-2.0",
               "OriginalFilename": f"{NAME}.exe", "ProductName": "RLM Desktop",
               "ProductVersion": ver}
    table = ", ".join(f"StringStruct({k!r}, {v!r})" for k, v in strings.items())
    path.write_text(
        f"VSVersionInfo(ffi=FixedFileInfo(filevers={nums!r}, prodvers={nums!r}), kids=["
        f"StringFileInfo([StringTable('040904B0', [{table}])]), "
        "VarFileInfo([VarStruct('Translation', [1033, 1200])])])\n",
        encoding="utf-8")
    return path


# --- Linux ------------------------------------------------------------------------------

def linux_arch() -> tuple[str, str]:
    """(uname arch for file names, Debian arch)."""
    machine = platform.machine()
    return machine, {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def install_share(share: Path) -> None:
    """share/applications, share/metainfo, share/icons/hicolor: the menu entry, AppStream
    metadata and icons, as a desktop (or the tarball's install script) expects them."""
    (share / "applications").mkdir(parents=True, exist_ok=True)
    shutil.copy2(RESOURCES / f"{APP_ID}.desktop", share / "applications")
    (share / "metainfo").mkdir(parents=True, exist_ok=True)
    shutil.copy2(RESOURCES / f"{APP_ID}.metainfo.xml", share / "metainfo")
    for size in ICON_SIZES:
        if size > 512:
            continue  # hicolor stops at 512x512
        target = share / "icons" / "hicolor" / f"{size}x{size}" / "apps"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(RESOURCES / "icons" / f"rlm-desktop-{size}.png", target / f"{APP_ID}.png")
    scalable = share / "icons" / "hicolor" / "scalable" / "apps"
    scalable.mkdir(parents=True, exist_ok=True)
    shutil.copy2(RESOURCES / "icons" / "rlm-desktop.svg", scalable / f"{APP_ID}.svg")


def tarball(app: Path, dist: Path, ver: str) -> Path:
    """rlm-desktop-VERSION/ = the app, share/ and install-desktop-entry.sh (menu entry and
    icon for the current user, no root)."""
    arch, _ = linux_arch()
    top = f"{NAME}-{ver}"
    staging = dist / "tarball" / top
    shutil.rmtree(staging.parent, ignore_errors=True)
    shutil.copytree(app, staging, symlinks=True)
    install_share(staging / "share")
    shutil.copy2(PACKAGING / "linux" / "install-desktop-entry.sh", staging)
    shutil.copy2(ROOT / "LICENSE", staging / "LICENSE")
    out = dist / f"{top}-linux-{arch}.tar.gz"
    with tarfile.open(out, "w:gz", compresslevel=6) as tar:
        tar.add(staging, arcname=top)
    shutil.rmtree(staging.parent)
    return out


def build_glibc() -> str:
    """The glibc of the build machine: the bundle's libraries (libpython, libstdc++, ...)
    come from it and may use its newest symbols, so the app needs at least this one."""
    name, found = platform.libc_ver()
    return found if name == "glibc" and found else "2.28"


DEB_DEPENDS = (
    # What the bundled Qt's xcb/wayland platform plugins load from the system (the rest of
    # the app's libraries are inside the bundle); libc6 is prepended by deb().
    "libgl1, libegl1, libfontconfig1, libfreetype6, libdbus-1-3, "
    "libxkbcommon0, libxkbcommon-x11-0, libx11-xcb1, libxcb1, libxcb-cursor0, "
    "libxcb-icccm4, libxcb-image0, libxcb-keysyms1, libxcb-randr0, libxcb-render-util0, "
    "libxcb-shape0, libxcb-shm0, libxcb-sync1, libxcb-xfixes0, libxcb-xkb1")
DEB_RECOMMENDS = ("libwayland-client0, libwayland-cursor0, libwayland-egl1, "
                  "gnome-keyring | kwalletmanager")


def deb(app: Path, dist: Path, ver: str) -> Path | None:
    """A .deb: the app in /opt/rlm-desktop, /usr/bin/rlm-desktop, menu entry, metainfo,
    icons. Built with dpkg-deb (Debian, Ubuntu; skipped where it is missing)."""
    if not shutil.which("dpkg-deb"):
        print("    (dpkg-deb not installed: no .deb)")
        return None
    _, deb_arch = linux_arch()
    root = dist / "deb-root"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(app, root / "opt" / NAME, symlinks=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "usr" / "bin" / NAME).symlink_to(f"/opt/{NAME}/{NAME}")
    install_share(root / "usr" / "share")
    doc = root / "usr" / "share" / "doc" / NAME
    doc.mkdir(parents=True)
    shutil.copy2(ROOT / "LICENSE", doc / "copyright")
    installed_kib = du(root) // 1024
    (root / "DEBIAN").mkdir()
    deb_version = ver.replace("+", "~")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {NAME}\nVersion: {deb_version}\nArchitecture: {deb_arch}\n"
        f"Maintainer: RLM Desktop team <rlm-desktop@users.noreply.github.com>\n"
        f"Installed-Size: {installed_kib}\nSection: text\nPriority: optional\n"
        f"Depends: libc6 (>= {build_glibc()}), {DEB_DEPENDS}\n"
        f"Recommends: {DEB_RECOMMENDS}\n"
        "Homepage: https://github.com/rlm-desktop/rlm-desktop\n"
        "Description: ask hard questions of large document sets\n"
        " RLM Desktop answers questions over PDFs, Word files, mailboxes and logs with\n"
        " Recursive Language Models, with citations to the page or line. Model-written\n"
        " code runs in a confined worker; keys stay in the system keychain.\n",
        encoding="utf-8")
    out = dist / f"{NAME}_{deb_version}_{deb_arch}.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(root)
    return out


def appimage(app: Path, dist: Path, ver: str) -> Path:
    """dist/AppDir (AppRun, the .desktop entry and icon at the top, the app in usr/lib),
    packed with appimagetool when it is on PATH (it is not a Debian package and this build
    downloads nothing); otherwise the AppDir and the command to pack it are printed."""
    arch, _ = linux_arch()
    appdir = dist / "AppDir"
    shutil.rmtree(appdir, ignore_errors=True)
    shutil.copytree(app, appdir / "usr" / "lib" / NAME, symlinks=True)
    install_share(appdir / "usr" / "share")
    shutil.copy2(PACKAGING / "linux" / "AppRun", appdir / "AppRun")
    (appdir / "AppRun").chmod(0o755)
    shutil.copy2(RESOURCES / f"{APP_ID}.desktop", appdir)
    shutil.copy2(RESOURCES / "icons" / "rlm-desktop-256.png", appdir / f"{APP_ID}.png")
    (appdir / ".DirIcon").symlink_to(f"{APP_ID}.png")
    # appimagetool looks for the AppStream file under its older name too
    shutil.copy2(RESOURCES / f"{APP_ID}.metainfo.xml",
                 appdir / "usr" / "share" / "metainfo" / f"{APP_ID}.appdata.xml")
    out = dist / f"RLM_Desktop-{ver}-{arch}.AppImage"
    tool = shutil.which("appimagetool")
    command = ["appimagetool", "--no-appstream", str(appdir), str(out)]
    if tool is None:
        print(f"    appimagetool is not on PATH: {appdir} is ready; pack it with\n"
              f"    ARCH={arch} {' '.join(command)}")
        return appdir
    subprocess.run(command, check=True, env={**os.environ, "ARCH": arch})
    return out


# --- macOS and Windows -------------------------------------------------------------------

def macos_dmg(dist: Path, ver: str) -> Path:
    subprocess.run(["bash", str(PACKAGING / "macos" / "make_dmg.sh"),
                    str(dist / "RLM Desktop.app"), ver, str(dist)], check=True)
    return dist / f"RLM-Desktop-{ver}-macos-{platform.machine()}.dmg"


def windows_installer(dist: Path, ver: str) -> Path | None:
    iscc = shutil.which("iscc") or shutil.which("ISCC")
    if iscc is None:
        print("    iscc (Inno Setup 6) not on PATH: no installer; see packaging/README.md")
        return None
    subprocess.run([iscc, f"/DAppVersion={ver}", f"/DSourceDir={dist / NAME}",
                    f"/DOutputDir={dist}", str(PACKAGING / "windows" / "rlm-desktop.iss")],
                   check=True)
    return dist / f"rlm-desktop-{ver}-windows-setup.exe"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "pyinstaller",
                        help="PyInstaller's work folder")
    parser.add_argument("--no-installers", action="store_true",
                        help="the one-directory app only")
    parser.add_argument("--appimage", action="store_true",
                        help="Linux: also the AppDir, and the AppImage if appimagetool exists")
    parser.add_argument("--smoke", action="store_true",
                        help="run packaging/smoke_test.py on the result (Linux)")
    args = parser.parse_args(argv)
    ver = version()
    report: dict[str, object] = {"version": ver, "platform": sys.platform}
    started = time.perf_counter()

    step("checking resources")
    check_resources()
    step(f"PyInstaller: {NAME} {ver} -> {args.dist}")
    t0 = time.perf_counter()
    app = pyinstaller(args.dist, args.work, ver)
    report["pyinstaller_s"] = round(time.perf_counter() - t0, 1)
    step("licences: LICENSE and THIRD-PARTY-NOTICES.txt into the app")
    shutil.copy2(ROOT / "LICENSE", app / "LICENSE")
    notices.write(app / notices.NOTICES)
    report["app"] = str(app)
    report["app_bytes"] = du(app)
    if sys.platform.startswith("linux"):
        report["needs_glibc"] = build_glibc()
    print(f"    {app}: {mib(du(app))} in {report['pyinstaller_s']} s")

    artifacts: list[Path] = []
    if not args.no_installers:
        step("installers")
        if sys.platform.startswith("linux"):
            artifacts.append(tarball(app, args.dist, ver))
            built = deb(app, args.dist, ver)
            if built is not None:
                artifacts.append(built)
            if args.appimage:
                artifacts.append(appimage(app, args.dist, ver))
        elif sys.platform == "darwin":
            artifacts.append(macos_dmg(args.dist, ver))
        elif sys.platform == "win32":
            built = windows_installer(args.dist, ver)
            if built is not None:
                artifacts.append(built)
        for path in artifacts:
            print(f"    {path}: {mib(du(path))}")
    report["artifacts"] = {str(p): du(p) for p in artifacts if p.exists()}
    report["total_s"] = round(time.perf_counter() - started, 1)
    (args.dist / "build-report.json").write_text(json.dumps(report, indent=2) + "\n")
    step(f"done in {report['total_s']} s (report: {args.dist / 'build-report.json'})")

    if args.smoke:
        exe = app / NAME
        step(f"smoke test of {exe}")
        return subprocess.run([sys.executable, str(PACKAGING / "smoke_test.py"), str(exe)],
                              check=False).returncode
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
