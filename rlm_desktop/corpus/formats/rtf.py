"""RTF to text, for Outlook message bodies: plain RTF, and HTML that Outlook encapsulated in RTF.

A small tokenizer, not a full RTF reader: it keeps the characters a reader sees (with \\uN
escapes and \\'hh bytes decoded in the code page of the current font or \\ansicpg), turns
paragraph and line breaks into newlines, and drops the destinations that hold no body text
(font and colour tables, style sheets, pictures, \\* groups). When the RTF says \\fromhtml1 it
is HTML wrapped in RTF (MS-OXRTFEX): the HTML is rebuilt from the \\*\\htmltag groups and the
text outside \\htmlrtf regions, then read with the HTML loader's converter.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, replace

from rlm_desktop.corpus.formats.html import html_to_text

_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?"  # control word with optional parameter
    rb"|\\'([0-9a-fA-F]{2})"  # hex byte
    rb"|\\([^a-zA-Z'])"  # control symbol
    rb"|([{}])"
    rb"|([^\\{}\r\n]+)"
    rb"|[\r\n]+",  # raw line breaks are not text in RTF: no group, skipped
    re.DOTALL,
)
#: Groups whose content is never body text, even without the \* marker.
_SKIPPED = frozenset(
    b"fonttbl colortbl stylesheet info pict nonshppict objdata themedata colorschememapping "
    b"listtable listoverridetable rsidtbl generator xmlnstbl filetbl revtbl latentstyles "
    b"datastore header footer headerl headerr headerf footerl footerr footerf fldinst".split()
)
_BREAKS = {
    b"par": "\n",
    b"line": "\n",
    b"sect": "\n\n",
    b"page": "\n\n",
    b"row": "\n",
    b"tab": "\t",
    b"cell": "\t",
}
_SYMBOLS = {
    b"emdash": "\u2014",
    b"endash": "\u2013",
    b"bullet": "\u2022",
    b"lquote": "\u2018",
    b"rquote": "\u2019",
    b"ldblquote": "\u201c",
    b"rdblquote": "\u201d",
    b"emspace": "\u2003",
    b"enspace": "\u2002",
    b"qmspace": "\u2005",
}
#: Non-breaking space and hyphen become plain ones, so that searches for them match.
_ESCAPED = {
    b"~": " ",
    b"_": "-",
    b"{": "{",
    b"}": "}",
    b"\\": "\\",
    b"\n": "\n",
    b"\r": "\n",
    b"\t": "\t",
}
#: \fcharsetN (a Windows character set) to the Windows code page it implies.
_CHARSET_CODEPAGES = {
    0: 1252,
    2: 1252,
    77: 10000,
    128: 932,
    129: 949,
    130: 1361,
    134: 936,
    136: 950,
    161: 1253,
    162: 1254,
    163: 1258,
    177: 1255,
    178: 1256,
    186: 1257,
    204: 1251,
    222: 874,
    238: 1250,
    254: 437,
    255: 850,
}
#: Windows code page numbers that Python does not know as "cpNNN".
_CODEPAGE_NAMES = {
    20127: "ascii",
    65001: "utf-8",
    1200: "utf-16-le",
    1201: "utf-16-be",
    10000: "mac_roman",
    20866: "koi8_r",
    21866: "koi8_u",
    51932: "euc_jp",
    50220: "iso2022_jp",
    50221: "iso2022_jp",
    50222: "iso2022_jp",
    54936: "gb18030",
    936: "gbk",
    52936: "hz",
    1361: "johab",
    28603: "iso8859_13",
    28605: "iso8859_15",
}


def codec_for_codepage(codepage: int | None, default: str = "cp1252") -> str:
    """The Python codec for a Windows code page number, or `default` when unknown."""
    if codepage is None or codepage <= 0:
        return default
    if codepage in _CODEPAGE_NAMES:
        return _CODEPAGE_NAMES[codepage]
    if 28591 <= codepage <= 28599:
        return f"iso8859_{codepage - 28590}"
    try:
        return codecs.lookup(f"cp{codepage}").name
    except LookupError:
        return default


@dataclass(slots=True, frozen=True)
class _State:
    """What an RTF group inherits from its parent and restores on '}'."""

    skip: bool = False  # inside a destination that holds no text
    htmltag: bool = False  # inside {\*\htmltagN ...}: verbatim HTML
    htmlrtf: bool = False  # inside \htmlrtf ... \htmlrtf0: RTF-only rendering, not HTML
    fonttbl: bool = False
    font: int | None = None
    uc: int = 1


class _Converter:
    def __init__(self, rtf: bytes) -> None:
        self.rtf = rtf
        self.out: list[str] = []
        self.pending = bytearray()  # \'hh bytes: multi-byte code pages need them together
        self.pending_codec = "cp1252"
        self.ansi = "cp1252"
        self.fonts: dict[int, str] = {}
        self.default_font: int | None = None
        self.html = False
        self.font_def: int | None = None  # the font being defined in \fonttbl

    def codec(self, state: _State) -> str:
        font = state.font if state.font is not None else self.default_font
        return self.fonts.get(font, self.ansi) if font is not None else self.ansi

    def flush(self) -> None:
        if self.pending:
            self.out.append(self.pending.decode(self.pending_codec, errors="replace"))
            self.pending.clear()

    def emit_bytes(self, data: bytes, state: _State) -> None:
        codec = self.codec(state)
        if codec != self.pending_codec:
            self.flush()
            self.pending_codec = codec
        self.pending += data

    def emit(self, text: str) -> None:
        self.flush()
        self.out.append(text)

    def visible(self, state: _State) -> bool:
        if state.skip:
            return state.htmltag
        return not (self.html and state.htmlrtf)

    def run(self) -> str:
        stack: list[_State] = []
        state = _State()
        group_start = False  # the next control word names the group's destination
        starred = False
        ucskip = 0  # fallback characters still to drop after a \uN
        pos = 0
        rtf = self.rtf
        while (match := _TOKEN.search(rtf, pos)) is not None:
            pos = match.end()
            if match.lastindex is None:
                continue  # a raw line break: not text, and not the start of the group
            word, param, hexbyte, symbol, brace, text = match.groups()
            if brace is not None:
                ucskip = 0
                if brace == b"{":
                    stack.append(state)
                    group_start, starred = True, False
                else:
                    self.flush()
                    state = stack.pop() if stack else _State()
                continue
            if symbol == b"*":
                starred = True
                continue
            first, group_start = group_start, False
            if word is not None:
                state = self._word(word, param, state, first, starred)
                if word == b"u" and param is not None:
                    ucskip = state.uc
                    if self.visible(state):
                        self.emit(chr(int(param) % 65536))
                elif word == b"bin" and param is not None:
                    pos += max(int(param), 0)  # raw binary data follows, never text
                else:
                    ucskip = 0
                continue
            if hexbyte is not None:
                if ucskip:
                    ucskip -= 1
                elif self.visible(state):
                    self.emit_bytes(bytes([int(hexbyte, 16)]), state)
                continue
            if symbol is not None:
                if ucskip:
                    ucskip -= 1
                elif self.visible(state) and symbol in _ESCAPED:
                    self.emit(_ESCAPED[symbol])
                continue
            if text is not None:
                if ucskip:
                    dropped = min(ucskip, len(text))
                    text, ucskip = text[dropped:], ucskip - dropped
                if text and self.visible(state):
                    self.emit_bytes(text, state)
        self.flush()
        joined = "".join(self.out)
        # \uN escapes of characters outside the BMP arrive as two surrogates: pair them up.
        return joined.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")

    def _word(
        self, word: bytes, param: bytes | None, state: _State, first: bool, starred: bool
    ) -> _State:
        number = int(param) if param is not None else None
        if first and (starred or word in _SKIPPED):
            if word == b"htmltag" and self.html:
                return replace(state, skip=True, htmltag=True)
            return replace(state, skip=True, htmltag=False, fonttbl=word == b"fonttbl")
        if word == b"ansicpg" and number is not None:
            self.ansi = codec_for_codepage(number)
        elif word == b"fromhtml" and number == 1:
            self.html = True
        elif word == b"deff" and number is not None:
            self.default_font = number
        elif word == b"f" and number is not None:
            if state.fonttbl:
                self.font_def = number
            return replace(state, font=number)
        elif word == b"fcharset" and number is not None and state.fonttbl:
            if self.font_def is not None and number in _CHARSET_CODEPAGES:
                self.fonts[self.font_def] = codec_for_codepage(_CHARSET_CODEPAGES[number])
        elif word == b"cpg" and number is not None and state.fonttbl:
            if self.font_def is not None:
                self.fonts[self.font_def] = codec_for_codepage(number, self.ansi)
        elif word == b"plain":
            return replace(state, font=None)
        elif word == b"uc" and number is not None:
            return replace(state, uc=max(number, 0))
        elif word == b"htmlrtf":
            return replace(state, htmlrtf=number != 0)
        elif self.visible(state):
            if word in _BREAKS:
                self.emit(_BREAKS[word])
            elif word in _SYMBOLS:
                self.emit(_SYMBOLS[word])
        return state


def rtf_to_html(rtf: bytes) -> str | None:
    """The HTML an RTF body encapsulates (\\fromhtml1), or None for a genuine RTF document."""
    converter = _Converter(rtf)
    result = converter.run()
    return result if converter.html else None


def rtf_to_text(rtf: bytes) -> str:
    """Readable text of an RTF document; HTML encapsulated in RTF is read as HTML."""
    converter = _Converter(rtf)
    result = converter.run()
    if converter.html:
        return html_to_text(result)
    lines = (line.rstrip() for line in result.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
