"""THIRD-PARTY-NOTICES.txt for the frozen app: every distribution the app ships (the
closure of rlm-desktop's own requirements, never the dev or packaging groups), with its
version, declared licence and the licence files it carries; Python's licence; and the
LGPL-3.0 / GPL-3.0 texts Qt for Python is used under (its wheels carry no licence file).

    uv run python packaging/notices.py [OUT]      # default: print to stdout
"""

from __future__ import annotations

import sys
import sysconfig
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

HERE = Path(__file__).resolve().parent
APP = "rlm-desktop"
NOTICES = "THIRD-PARTY-NOTICES.txt"
LICENSE_WORDS = ("LICEN", "COPYING", "NOTICE", "AUTHORS")
# Used under the LGPL-3.0 (which builds on the GPL-3.0): both texts go in the notices.
QT_FOR_PYTHON = {"pyside6-essentials", "pyside6-addons", "shiboken6"}
QT_TEXTS = ("LGPL-3.0.txt", "GPL-3.0.txt")


@dataclass
class Shipped:
    name: str
    version: str
    licence: str
    texts: list[tuple[str, str]] = field(default_factory=list)   # (file, text)


def closure(root: str = APP) -> list[metadata.Distribution]:
    """The installed distributions `root` needs at run time, on this platform."""
    seen: dict[str, metadata.Distribution] = {}
    pending = [root]
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue      # not for this platform (its marker excluded it)
        seen[name] = dist
        for text in dist.requires or ():
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return sorted((d for n, d in seen.items() if n != canonicalize_name(root)),
                  key=lambda d: canonicalize_name(d.metadata["Name"]))


def licence_of(dist: metadata.Distribution) -> str:
    meta = dist.metadata
    declared = meta.get("License-Expression") or ""
    if not declared:
        short = (meta.get("License") or "").strip()
        declared = short if short and "\n" not in short and len(short) < 80 else ""
    if not declared:
        classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or ()
                       if c.startswith("License ::")]
        declared = ", ".join(classifiers)
    return declared or "see the licence text below"


def shipped() -> list[Shipped]:
    found = []
    for dist in closure():
        item = Shipped(dist.metadata["Name"], dist.version, licence_of(dist))
        for file in dist.files or ():
            # A licence file by its name, or anything under a licences folder (PEP 639's
            # dist-info/licenses/, pypdfium2's BUILD_LICENSES/: PDFium's own components).
            if any(word in part.upper() for part in file.parts for word in LICENSE_WORDS):
                path = Path(str(dist.locate_file(file)))
                if path.is_file():
                    item.texts.append((str(file), path.read_text(encoding="utf-8",
                                                                 errors="replace")))
        if canonicalize_name(item.name) in QT_FOR_PYTHON:
            item.licence += " (used here under the LGPL-3.0; texts at the end)"
        found.append(item)
    return found


def python_licence() -> str:
    # Unix installs keep it beside the standard library, Windows at the install's root.
    for path in (Path(sysconfig.get_paths()["stdlib"]) / "LICENSE.txt",
                 Path(sys.base_prefix) / "LICENSE.txt"):
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    raise FileNotFoundError("Python's LICENSE.txt is not where CPython installs it")


def render() -> str:
    rule = "=" * 78
    parts = [f"{APP}: third-party software in this application", "",
             "RLM Desktop itself is licensed under the Apache License 2.0 (LICENSE).",
             "It bundles the following software, each under its own licence.", ""]
    items = shipped()
    parts += [f"  {i.name} {i.version} — {i.licence}" for i in items]
    parts += [f"  Python {sys.version.split()[0]} — PSF-2.0", ""]
    for item in items:
        parts += [rule, f"{item.name} {item.version}", f"Licence: {item.licence}", rule]
        for name, text in item.texts:
            parts += [f"--- {name} ---", text.rstrip(), ""]
        if not item.texts:
            parts += ["(no licence file in the distribution; see the licence named above)",
                      ""]
    parts += [rule, f"Python {sys.version.split()[0]}", rule, python_licence().rstrip(), ""]
    for name in QT_TEXTS:
        parts += [rule, f"{name[:-4]} (Qt for Python: PySide6, shiboken6, Qt)", rule,
                  (HERE / "licenses" / name).read_text(encoding="utf-8").rstrip(), ""]
    return "\n".join(parts) + "\n"


def write(target: Path) -> Path:
    target.write_text(render(), encoding="utf-8")
    return target


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print(write(Path(args[0])))
    else:
        sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
