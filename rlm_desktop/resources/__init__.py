"""Files the app ships beside its code: the icon, the Linux desktop entry and AppStream
metadata, the demo corpus. Read through importlib.resources, so the same calls work from
a source tree, an installed wheel and the frozen app (packaging/ bundles this folder
whole). Qt-free: the GUI turns `icon_path()` into a QIcon itself."""

from __future__ import annotations

import atexit
import contextlib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = [
    "APP_ID",
    "ICON_SIZES",
    "app_icon_bytes",
    "app_icon_svg",
    "icon_path",
    "icon_set_path",
    "read_bytes",
    "read_text",
    "resource",
    "resource_path",
]

#: The reverse-DNS id of the desktop entry, the AppStream component and the installed icon.
APP_ID = "io.github.rlm_desktop.RLMDesktop"
#: The rendered PNG sizes in icons/ (packaging/render_icons.py makes them from the SVGs).
ICON_SIZES: tuple[int, ...] = (16, 24, 32, 48, 64, 128, 256, 512, 1024)

_extracted = contextlib.ExitStack()  # files copied out of a zip import, removed at exit
atexit.register(_extracted.close)


def resource(name: str) -> Traversable:
    """A shipped file or folder by its '/'-separated path below this package
    (e.g. "icons/rlm-desktop.svg", "demo"). Raises FileNotFoundError if it is missing."""
    node = resources.files(__name__)
    for part in name.split("/"):
        if part in ("", ".", ".."):
            raise ValueError(f"not a resource name: {name!r}")
        node = node / part
    if not node.is_file() and not node.is_dir():
        raise FileNotFoundError(f"no resource {name!r} in {__name__}")
    return node


def read_bytes(name: str) -> bytes:
    return resource(name).read_bytes()


def read_text(name: str) -> str:
    """A shipped text file (UTF-8), e.g. the desktop entry: read_text(APP_ID + ".desktop")."""
    return resource(name).read_text(encoding="utf-8")


def resource_path(name: str) -> Path:
    """A real file-system path of a shipped file, for APIs that want one (QIcon, a viewer).
    From a source tree, a wheel or the frozen app this is the file itself; from a zip
    import it is a temporary copy that lives until the process exits."""
    node = resource(name)
    if isinstance(node, Path):
        return node
    return _extracted.enter_context(resources.as_file(node))


def icon_path(size: int = 256) -> Path:
    """The application icon rendered at `size` px (the nearest larger rendered size)."""
    chosen = next((s for s in ICON_SIZES if s >= size), ICON_SIZES[-1])
    return resource_path(f"icons/rlm-desktop-{chosen}.png")


def icon_set_path() -> Path:
    """Every size from 16 to 256 px in one file, the small ones drawn for their size: the
    .ico, which Qt reads whole on every system (QIcon(str(icon_set_path())))."""
    return resource_path("icons/rlm-desktop.ico")


def app_icon_bytes(size: int = 256) -> bytes:
    """The application icon as PNG bytes."""
    chosen = next((s for s in ICON_SIZES if s >= size), ICON_SIZES[-1])
    return read_bytes(f"icons/rlm-desktop-{chosen}.png")


def app_icon_svg() -> str:
    """The SVG source of the icon (48 px and up)."""
    return read_text("icons/rlm-desktop.svg")
