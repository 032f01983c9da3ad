"""Format detection and dispatch: a Source's name and first bytes pick its loader.

Loaders are imported on first use so a parser process only pays for the formats it meets.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator

from rlm_desktop.corpus.errors import DamagedFile, UnsupportedFormat
from rlm_desktop.corpus.formats.base import ExtractContext, Loader, Part, Source

__all__ = ["EXTRACTOR_VERSION", "ExtractContext", "Part", "Source", "detect", "extract"]

#: Bump when any loader's output changes, so cached text is re-extracted.
EXTRACTOR_VERSION = "1"

# format -> "module:function"
_LOADERS = {
    "pdf": "rlm_desktop.corpus.formats.pdf:extract_pdf",
    "docx": "rlm_desktop.corpus.formats.docx:extract_docx",
    "mbox": "rlm_desktop.corpus.formats.mail:extract_mbox",
    "eml": "rlm_desktop.corpus.formats.mail:extract_eml",
    "msg": "rlm_desktop.corpus.formats.msg:extract_msg",
    "zip": "rlm_desktop.corpus.formats.archive:extract_zip",
    "log": "rlm_desktop.corpus.formats.text:extract_text",
    "text": "rlm_desktop.corpus.formats.text:extract_text",
    "markdown": "rlm_desktop.corpus.formats.text:extract_text",
    "csv": "rlm_desktop.corpus.formats.text:extract_text",
    "json": "rlm_desktop.corpus.formats.text:extract_text",
    "html": "rlm_desktop.corpus.formats.text:extract_text",
}

_EXTENSIONS = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".docm": "docx",
    ".mbox": "mbox",
    ".mbx": "mbox",
    ".eml": "eml",
    ".msg": "msg",
    ".zip": "zip",
    ".log": "log",
    ".out": "log",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
}

#: Plain-text files by another name: source code, configuration, patches, calendars.
_TEXT_EXTENSIONS = frozenset({
    ".asc", ".c", ".cfg", ".conf", ".cpp", ".cs", ".css", ".diff", ".go", ".h", ".ics", ".ini",
    ".java", ".js", ".kt", ".patch", ".php", ".pl", ".properties", ".py", ".r", ".rb", ".rs",
    ".sh", ".sha256", ".sql", ".srt", ".swift", ".tex", ".toml", ".ts", ".vcf", ".xml",
    ".yaml", ".yml",
})

#: Formats that we recognise but do not read, with the advice we give.
_KNOWN_UNSUPPORTED = {
    ".doc": "legacy Word .doc is not supported; save it as .docx",
    ".xls": "spreadsheets are not supported yet; export to .csv",
    ".xlsx": "spreadsheets are not supported yet; export to .csv",
    ".ppt": "presentations are not supported yet; export to PDF",
    ".pptx": "presentations are not supported yet; export to PDF",
    ".pst": "Outlook .pst archives are not supported; export the folder to .mbox or .msg",
    ".tar": "tar archives are not supported; use .zip",
    ".tgz": "tar archives are not supported; use .zip",
    ".7z": "7-Zip archives are not supported; use .zip",
    ".rar": "RAR archives are not supported; use .zip",
}

#: Formats whose text is the file's own bytes when those are plain ASCII without CR or NUL
#: (the text loader would pass them through unchanged).
VERBATIM_FORMATS = frozenset({"log", "text", "markdown", "csv", "json"})

COMPRESSIONS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz"}
_MAGIC_COMPRESSION = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz"}
_ROTATED = re.compile(r"\.(?:log|out|txt)\.\d+$|\.\d+$", re.IGNORECASE)
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

# Document kinds (what `Document.kind` says) per format.
DOCUMENT_KIND = {
    "pdf": "pdf",
    "docx": "docx",
    "eml": "email",
    "msg": "email",
    "mbox": "email",
    "log": "log",
    "text": "text",
    "markdown": "markdown",
    "csv": "csv",
    "json": "json",
    "html": "html",
}


def split_compression(name: str) -> tuple[str, str | None]:
    """("app.log.1", "gzip") for "app.log.1.gz"; (name, None) when not compressed."""
    lower = name.lower()
    for ext, method in COMPRESSIONS.items():
        if lower.endswith(ext) and not lower.endswith(".tar" + ext):
            return name[: -len(ext)], method
    return name, None


def sniff_compression(head: bytes) -> str | None:
    for magic, method in _MAGIC_COMPRESSION.items():
        if head.startswith(magic):
            return method
    return None


def detect(name: str, head: bytes) -> str:
    """The format of a file from its name and first bytes, or raise UnsupportedFormat."""
    inner, compression = split_compression(name)
    lower = inner.lower()
    if compression is not None:
        # Compressed text (rotated logs and the like) is decompressed by the text loader.
        if _ROTATED.search(lower) or lower.endswith((".log", ".out")):
            return "log"
        fmt = _EXTENSIONS.get(_suffix(lower), "log")  # "syslog.gz": a log with no extension
        if fmt not in VERBATIM_FORMATS:
            raise UnsupportedFormat(
                f"unsupported format: a {compression}-compressed {fmt} file; decompress it first"
            )
        return fmt
    suffix = _suffix(lower)
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    if suffix in _KNOWN_UNSUPPORTED:
        raise UnsupportedFormat(f"unsupported format: {_KNOWN_UNSUPPORTED[suffix]}")
    if _ROTATED.search(lower):
        return "log"
    if suffix in _TEXT_EXTENSIONS:
        return "text"
    if suffix:
        raise UnsupportedFormat(f"unsupported format: '{suffix}' files cannot be read")
    # No extension: look at the bytes.
    if b"%PDF-" in head[:1024]:
        return "pdf"
    if head.startswith(b"From "):
        return "mbox"
    if head.startswith(_OLE_MAGIC):
        return "msg"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if sniff_compression(head):
        return "log"
    if head and looks_like_text(head):
        return "text"
    raise UnsupportedFormat("unsupported format: not a document type that can be read")


def _suffix(lower_name: str) -> str:
    dot = lower_name.rfind(".")
    slash = max(lower_name.rfind("/"), lower_name.rfind("\\"))
    return lower_name[dot:] if dot > slash + 1 else ""


def looks_like_text(sample: bytes) -> bool:
    """False for binary data: many control bytes or undecodable sequences in the sample."""
    if not sample:
        return True
    if sample.startswith((b"\xff\xfe", b"\xfe\xff", b"\xef\xbb\xbf")):
        return True
    controls = sum(sample.count(bytes([b])) for b in _BINARY_BYTES)
    if controls > 0.05 * len(sample):
        return False
    # Text in a legacy 8-bit charset is full of invalid UTF-8 but has no control bytes;
    # random data has both.
    invalid = sample.decode("utf-8", errors="replace").count("\ufffd")
    return not (invalid > 0.3 * len(sample) and controls > 0.01 * len(sample))


_BINARY_BYTES = [b for b in range(32) if b not in (9, 10, 12, 13, 27)] + [127]


def extract(source: Source, ctx: ExtractContext, fmt: str | None = None) -> Iterator[Part]:
    """Yield the parts of `source`, detecting its format unless `fmt` is given."""
    source.require_content()
    if fmt is None:
        fmt = detect(source.name, source.head())
    loader = _loader(fmt)
    try:
        for part in loader(source, ctx):
            if ctx.depth == 0:
                ctx.counter[0] += 1
            yield part
    except RecursionError as exc:
        raise DamagedFile("file structure is nested too deeply to read") from exc


def extract_nested(
    source: Source, ctx: ExtractContext, parent: int | None
) -> Iterator[Part]:
    """Parts of a source found inside another (attachment, archive member), linked to `parent`.

    Each nested part gets its `name` prefixed by the member name and, when it has no parent
    of its own, `parent` as its parent. The caller passes the ExtractContext of the outer file.
    """
    for part in extract(source, ctx.nested()):
        part.name = f"/{source.name}{part.name}"
        if part.parent is None:
            part.parent = parent
        yield part


def _loader(fmt: str) -> Loader:
    try:
        target = _LOADERS[fmt]
    except KeyError:
        raise UnsupportedFormat(f"unsupported format: {fmt}") from None
    module_name, func_name = target.split(":")
    module = importlib.import_module(module_name)
    loader: Loader = getattr(module, func_name)
    return loader
