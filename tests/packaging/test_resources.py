"""The shipped resources: the icon files are what their names say, the desktop entry and
AppStream metadata agree with each other and with the package, the API finds them."""

from __future__ import annotations

import configparser
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rlm_desktop import __version__, resources
from rlm_desktop.resources import APP_ID, ICON_SIZES

ICONS = Path(resources.__file__).parent / "icons"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("size", ICON_SIZES)
def test_every_rendered_png_has_its_size(size: int) -> None:
    assert png_size((ICONS / f"rlm-desktop-{size}.png").read_bytes()) == (size, size)


def test_ico_holds_a_png_per_size_from_16_to_256() -> None:
    data = (ICONS / "rlm-desktop.ico").read_bytes()
    reserved, kind, count = struct.unpack("<HHH", data[:6])
    assert (reserved, kind) == (0, 1)
    sizes = []
    for i in range(count):
        w, h, _, _, planes, bpp, length, offset = struct.unpack(
            "<BBBBHHII", data[6 + 16 * i: 22 + 16 * i])
        side = w or 256
        assert (w, h, planes, bpp) == (w, h, 1, 32) and w == h
        assert png_size(data[offset:offset + length]) == (side, side)
        sizes.append(side)
    assert sizes == [16, 24, 32, 48, 64, 128, 256]


def test_icns_holds_pngs_for_every_retina_slot() -> None:
    data = (ICONS / "rlm-desktop.icns").read_bytes()
    assert data[:4] == b"icns"
    assert struct.unpack(">I", data[4:8])[0] == len(data)
    found: dict[bytes, tuple[int, int]] = {}
    pos = 8
    while pos < len(data):
        kind, length = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        found[kind] = png_size(data[pos + 8:pos + length])
        pos += length
    assert pos == len(data)
    expected = {b"icp4": 16, b"icp5": 32, b"icp6": 64, b"ic07": 128, b"ic08": 256,
                b"ic09": 512, b"ic10": 1024, b"ic11": 32, b"ic12": 64, b"ic13": 256,
                b"ic14": 512}
    assert found == {k: (s, s) for k, s in expected.items()}


def test_svg_sources_are_well_formed() -> None:
    for name in ("rlm-desktop.svg", "rlm-desktop-small.svg"):
        root = ET.fromstring((ICONS / name).read_bytes())
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.get("viewBox")
    assert resources.app_icon_svg().lstrip().startswith("<?xml")


def test_desktop_entry() -> None:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read_string(resources.read_text(f"{APP_ID}.desktop"))
    entry = parser["Desktop Entry"]
    assert entry["Type"] == "Application"
    assert entry["Name"] == "RLM Desktop"
    assert entry["Exec"].split()[0] == "rlm-desktop" and entry["TryExec"] == "rlm-desktop"
    assert entry["Icon"] == APP_ID
    assert entry["Terminal"] == "false"
    for key in ("Categories", "MimeType", "Keywords"):
        assert entry[key].endswith(";"), f"{key} is a list and ends with ';'"
    assert "application/pdf" in entry["MimeType"].split(";")


def test_appstream_metainfo_matches_the_desktop_entry_and_the_version() -> None:
    root = ET.fromstring(resources.read_bytes(f"{APP_ID}.metainfo.xml"))
    assert root.tag == "component" and root.get("type") == "desktop-application"
    assert root.findtext("id") == APP_ID
    assert root.findtext("metadata_license") == "CC0-1.0"
    assert root.findtext("project_license") == "Apache-2.0"
    assert root.findtext("launchable") == f"{APP_ID}.desktop"
    assert root.findtext("icon") == APP_ID
    assert root.findtext("provides/binary") == "rlm-desktop"
    summary = root.findtext("summary") or ""
    assert summary and not summary.endswith(".")
    description = root.find("description")
    assert description is not None and description.findall("p")
    releases = [r.get("version") for r in root.findall("releases/release")]
    assert releases and releases[0] == __version__.split("+")[0], \
        "the newest <release> in the metainfo is this version"


def test_icon_path_picks_the_nearest_larger_size() -> None:
    assert resources.icon_path(16).name == "rlm-desktop-16.png"
    assert resources.icon_path(20).name == "rlm-desktop-24.png"
    assert resources.icon_path(5000).name == "rlm-desktop-1024.png"
    assert resources.icon_path().is_file()
    assert png_size(resources.app_icon_bytes(48)) == (48, 48)
    assert resources.icon_set_path().suffix == ".ico"


def test_resource_names_stay_inside_the_package() -> None:
    with pytest.raises(ValueError, match="not a resource name"):
        resources.resource("../cli.py")
    with pytest.raises(FileNotFoundError):
        resources.read_bytes("icons/no-such-icon.png")
    assert resources.resource("icons").is_dir()
