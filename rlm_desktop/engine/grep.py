"""Line-oriented regex search over the corpus blob: one pass, C-speed scanning, exact results.

The REPL keeps every document text back to back in one string, the *blob*, separated by
"\\n". `BlobSearch.scan` looks for a pattern inside a set of *spans* of the blob (whole
documents, or excerpts of them), each searched as if it were a text of its own: a match never
runs from one span into the next, `^`/`$` match at line starts/ends (re.MULTILINE), and each
matching line is reported once, at its first match (the search resumes at the next line).

The reference semantics, which every path below reproduces exactly, is `_scan_text` run on
the span's own text. The fast paths:

* Spans next to each other (one "\\n" apart, as consecutive documents are) are searched in a
  single `search`/`find` over the blob, never one Python call per document; the rare match
  that reaches past its span's end is redone inside that span alone.
* A pattern that is a plain literal, or an alternation of literals (`foo|bar|baz`, also
  `re.escape`d text), is searched with `str.find`, and when the literal holds a character that
  is rare in the corpus (estimated on a sample), with `str.find` of that one character (memchr)
  plus a `startswith` check, giving up on it when it turns out to be common.
* With ignore_case, literals are searched in a case-folded copy of the blob, built once and
  kept, whose offsets equal the blob's (only for ASCII literals, where folding is exactly what
  re.IGNORECASE does; anything else goes through `re` with re.IGNORECASE).
* Line numbers come from `LineIndex`: newline counts at 2 KiB checkpoints, so a hit's line is a
  `str.count` over at most 2 KiB (or over the distance from the previous hit, if shorter).

`cut_chars` and `cut_lines` cut a stretch of the blob for `partition`, with the same index.
"""

from __future__ import annotations

import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from itertools import accumulate, repeat
from math import ceil
from typing import Protocol

#: Checkpoint spacing of `LineIndex` (2 KiB).
_BLOCK_SHIFT = 11
#: Literal search with the rarest character is tried when it makes up at most this fraction
#: of a sample of the text.
_RARE_FRACTION = 1 / 500
#: Texts shorter than this are searched with plain `str.find` (estimating rarity costs more).
_RARE_MIN_TEXT = 1 << 20
_SAMPLE_PIECES = 64
_SAMPLE_PIECE = 4096
_NONE = -1
_META = frozenset(".^$*+?{}[]()|\\")
# Constructs whose meaning near a span's edge depends on text outside the span when the span
# is searched inside the blob: such patterns are run on each span's own text instead.
_EDGE_SENSITIVE = re.compile(r"\\[AZ]|\(\?<[=!]|\(\?[=!]|\(\?[aiLmsux]*-")
# Characters whose case folding by str.lower differs from re.IGNORECASE against ASCII letters.
_FOLD_FIXES = (("\u0130", "i"), ("\u0131", "i"), ("\u017f", "s"))


class LineIndex:
    """Number of newlines before any offset of a text, in O(2 KiB) time per query."""

    __slots__ = ("_checkpoints", "_last_lines", "_last_pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._checkpoints: array[int] | None = None
        self._last_pos = 0
        self._last_lines = 0

    def _index(self) -> array[int]:
        if self._checkpoints is None:
            text, step = self.text, 1 << _BLOCK_SHIFT
            starts = range(0, len(text) + 1, step)
            # map() with three iterables runs the per-block count loop in C.
            counts = map(text.count, repeat("\n"), starts, (s + step for s in starts))
            checkpoints = array("q", [0])
            checkpoints.extend(accumulate(counts))
            self._checkpoints = checkpoints
        return self._checkpoints

    def lines_before(self, pos: int) -> int:
        """How many "\\n" are in text[:pos]."""
        block = pos >> _BLOCK_SHIFT
        block_start = block << _BLOCK_SHIFT
        last = self._last_pos
        if last <= pos and pos - last <= pos - block_start:
            lines = self._last_lines + self.text.count("\n", last, pos)
        else:
            lines = self._index()[block] + self.text.count("\n", block_start, pos)
        self._last_pos, self._last_lines = pos, lines
        return lines

    def line_start(self, lines: int) -> int:
        """Offset just after the `lines`-th "\\n" of the text (0 for 0; len(text) past the end)."""
        if lines <= 0:
            return 0
        checkpoints = self._index()
        block = bisect_left(checkpoints, lines) - 1
        if block >= len(checkpoints) - 1 and checkpoints[-1] < lines:
            return len(self.text)
        pos, need, find = block << _BLOCK_SHIFT, lines - checkpoints[block], self.text.find
        while need:
            pos = find("\n", pos) + 1
            if pos == 0:
                return len(self.text)
            need -= 1
        return pos


class _Matcher(Protocol):
    def reset(self, end: int) -> None: ...

    def search(self, pos: int, end: int, cached: bool) -> tuple[int, int] | None: ...


class _RegexMatcher:
    __slots__ = ("_search", "_text")

    def __init__(self, regex: re.Pattern[str], text: str) -> None:
        self._search = regex.search
        self._text = text

    def reset(self, end: int) -> None:
        pass

    def search(self, pos: int, end: int, cached: bool) -> tuple[int, int] | None:
        m = self._search(self._text, pos, end)
        return None if m is None else m.span()


class _Needle:
    """One literal, found with `str.find`, or through its rarest character (memchr speed)."""

    __slots__ = ("lit", "offset", "rare", "size")

    def __init__(self, lit: str, rare: str | None) -> None:
        self.lit = lit
        self.size = len(lit)
        self.rare = rare
        self.offset = lit.rindex(rare) if rare is not None else 0

    def find(self, text: str, pos: int, end: int) -> int:
        rare = self.rare
        if rare is None:
            return text.find(self.lit, pos, end)
        lit, k, find, starts = self.lit, self.offset, text.find, text.startswith
        i = find(rare, pos + k, end)
        tried = 0
        while i >= 0:
            if starts(lit, i - k, end):
                return i - k
            tried += 1
            if tried > 64 and tried << 8 > i - pos:
                self.rare = None  # common after all: plain str.find from now on
                return find(lit, i - k + 1, end)
            i = find(rare, i + 1, end)
        return _NONE


class _LiteralMatcher:
    """Leftmost match of several literals; at one position the first listed wins (as `re`)."""

    __slots__ = ("_end", "_needles", "_next", "_text")

    def __init__(self, needles: list[_Needle], text: str) -> None:
        self._needles = needles
        self._text = text
        self._next = [-2] * len(needles)
        self._end = -1

    def reset(self, end: int) -> None:
        self._end = end
        self._next = [-2] * len(self._needles)

    def search(self, pos: int, end: int, cached: bool) -> tuple[int, int] | None:
        text, best, best_size = self._text, -1, 0
        if not cached or end != self._end:
            for needle in self._needles:
                p = needle.find(text, pos, end)
                if p >= 0 and (best < 0 or p < best):
                    best, best_size = p, needle.size
            return None if best < 0 else (best, best + best_size)
        nexts = self._next
        for i, needle in enumerate(self._needles):
            p = nexts[i]
            if p < pos and p != _NONE:  # stale: the next occurrence is not known yet
                p = nexts[i] = needle.find(text, pos, end)
            if p >= 0 and (best < 0 or p < best):
                best, best_size = p, needle.size
        return None if best < 0 else (best, best + best_size)


def literal_alternatives(pattern: str) -> list[str] | None:
    """The literals of a pattern that is a plain literal or an alternation of them, else None.

    Backslash escapes of punctuation and spaces (what `re.escape` writes) count as literal;
    any other metacharacter, class or escape (\\d, \\n, ...) makes the pattern a regex.
    """
    if pattern.startswith(("(?:", "(")) and pattern.endswith(")") and not pattern.endswith("\\)"):
        inner = pattern[3:-1] if pattern.startswith("(?:") else pattern[1:-1]
        if "(" not in inner.replace("\\(", "") and ")" not in inner.replace("\\)", ""):
            pattern = inner
    literals: list[str] = []
    current: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == "\\":
            escaped = next(chars, "")
            if not escaped or escaped.isalnum() or not escaped.isascii() or escaped == "_":
                return None
            current.append(escaped)
        elif ch == "|":
            literals.append("".join(current))
            current = []
        elif ch in _META:
            return None
        else:
            current.append(ch)
    literals.append("".join(current))
    if any(not lit or "\n" in lit for lit in literals):
        return None
    return literals


def compile_pattern(pattern: object, ignore_case: bool) -> re.Pattern[str]:
    """The compiled regex (re.MULTILINE, plus re.IGNORECASE), or a ValueError/TypeError a
    language model can act on."""
    flags = re.MULTILINE | (re.IGNORECASE if ignore_case else 0)
    if isinstance(pattern, re.Pattern):
        if not isinstance(pattern.pattern, str):
            raise TypeError("grep: pattern must be a str regular expression, not bytes")
        flags |= pattern.flags & ~re.UNICODE
        pattern = pattern.pattern
    if not isinstance(pattern, str):
        raise TypeError(
            f"grep: pattern must be a str (a Python regular expression), "
            f"got {type(pattern).__name__}"
        )
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ValueError(f"grep: invalid regular expression {pattern!r}: {exc}") from None
    except (OverflowError, RecursionError) as exc:
        raise ValueError(f"grep: regular expression {pattern!r} is too complex: {exc}") from None


def _aligned(text: str, start: int, end: int) -> bool:
    """True when a span starts at a line start and ends at a line end (or just after one)."""
    return (start == 0 or text[start - 1] == "\n") and (
        end == len(text) or text[end] == "\n" or (end > start and text[end - 1] == "\n")
    )


def cut_chars(text: str, lo: int, hi: int, size: int | None, pieces: int) -> list[tuple[int, int]]:
    """text[lo:hi] cut into pieces of `size` characters (or into `pieces` equal ones), each
    ending at a line break when there is one in its last 10%."""
    out: list[tuple[int, int]] = []
    pos = lo
    while pos < hi:
        step = size if size is not None else ceil((hi - pos) / max(1, pieces - len(out)))
        end = pos + step
        if end >= hi:
            end = hi
        else:
            newline = text.rfind("\n", end - step // 10, end)
            if newline >= pos:
                end = newline + 1
        out.append((pos, end))
        pos = end
    return out


def cut_lines(
    lines: LineIndex, lo: int, hi: int, size: int | None, pieces: int
) -> list[tuple[int, int]]:
    """text[lo:hi] cut into pieces of `size` lines (or into `pieces` equal ones)."""
    text = lines.text
    first = lines.lines_before(lo)
    count = lines.lines_before(hi) - first + (0 if text[hi - 1] == "\n" else 1)
    per = size if size is not None else max(1, ceil(count / pieces))
    out: list[tuple[int, int]] = []
    pos = lo
    for n in range(per, count + per, per):
        end = hi if n >= count else min(hi, lines.line_start(first + n))
        out.append((pos, end))
        pos = end
    return out


Raw = tuple[int, int, int, int]
"""(span index, match start, match end, end of the match's line clipped to the span)."""


class BlobSearch:
    """Searches one blob; keeps what is worth keeping between calls (line index, folded copy,
    character sample)."""

    __slots__ = ("_folded", "_folded_done", "_samples", "blob", "lines")

    def __init__(self, blob: str) -> None:
        self.blob = blob
        self.lines = LineIndex(blob)
        self._folded: str | None = None
        self._folded_done = False
        self._samples: dict[int, tuple[str, dict[str, int]]] = {}

    # -------------------------------------------------------------- supporting structures

    def folded(self) -> str | None:
        """The blob case-folded for ASCII literals (same length and offsets), built once."""
        if not self._folded_done:
            self._folded_done = True
            blob = self.blob
            if blob.isascii():
                self._folded = blob.lower()  # one allocation; ~1 GB/s for ASCII
            else:
                text = blob
                for char, replacement in _FOLD_FIXES:
                    if char in text:
                        text = text.replace(char, replacement)
                text = text.lower()
                self._folded = text if len(text) == len(blob) else None
        return self._folded

    def _rare_char(self, text: str, lit: str) -> str | None:
        """The character of `lit` that is rarest in `text` if it is rare enough to search for."""
        if len(text) < _RARE_MIN_TEXT:
            return None
        key = id(text)
        if key not in self._samples:
            step = len(text) // _SAMPLE_PIECES
            sample = "".join(text[i : i + _SAMPLE_PIECE] for i in range(0, len(text), step))
            self._samples[key] = (sample, {})
        sample, counts = self._samples[key]
        best, best_count = None, len(sample) + 1
        for char in set(lit):
            if char not in counts:
                counts[char] = sample.count(char)
            if counts[char] < best_count:
                best, best_count = char, counts[char]
        return best if best_count <= len(sample) * _RARE_FRACTION else None

    def _matcher(self, regex: re.Pattern[str]) -> tuple[_Matcher, str, bool]:
        """(matcher, the text it searches, whether spans must be searched one by one)."""
        ignore_case = bool(regex.flags & re.IGNORECASE)
        literals = (
            literal_alternatives(regex.pattern)
            if regex.flags & ~(re.MULTILINE | re.IGNORECASE | re.UNICODE) == 0
            else None
        )
        text: str | None = self.blob
        if literals is not None and ignore_case:
            text = self.folded() if all(lit.isascii() for lit in literals) else None
            literals = [lit.lower() for lit in literals]
        if literals is not None and text is not None:
            needles = [_Needle(lit, self._rare_char(text, lit)) for lit in literals]
            return _LiteralMatcher(needles, text), text, False
        exact = _EDGE_SENSITIVE.search(regex.pattern) is not None
        return _RegexMatcher(regex, self.blob), self.blob, exact

    # -------------------------------------------------------------------------- scanning

    def scan(
        self, regex: re.Pattern[str], spans: Sequence[tuple[int, int]], limit: int
    ) -> list[Raw]:
        """Up to `limit` hits in `spans` (sorted, non-overlapping (start, end) blob offsets),
        in order; the first item of each hit is the index of its span in `spans`."""
        out: list[Raw] = []
        keep = [i for i, (s, e) in enumerate(spans) if s < e]
        if limit <= 0 or not keep:
            return out
        matcher, text, exact = self._matcher(regex)
        literal = isinstance(matcher, _LiteralMatcher)
        starts = [spans[i][0] for i in keep]
        ends = [spans[i][1] for i in keep]
        i, n = 0, len(keep)
        while i < n and len(out) < limit:
            if exact or not (literal or _aligned(text, starts[i], ends[i])):
                _scan_text(regex, text[starts[i] : ends[i]], offset=starts[i], span=i, out=out,
                           limit=limit)
                i += 1
                continue
            j = i + 1  # a run of spans at most one "\n" apart, searched in one pass
            while j < n and (literal or _aligned(text, starts[j], ends[j])):
                gap = starts[j] - ends[j - 1]
                if not (gap == 1 or (gap == 0 and (literal or text[starts[j] - 1] == "\n"))):
                    break
                j += 1
            _scan_run(matcher, text, starts, ends, first=i, stop=j, out=out, limit=limit)
            i = j
        if len(keep) < len(spans):
            out = [(keep[k], s, e, le) for k, s, e, le in out]
        return out


def _scan_text(
    regex: re.Pattern[str], text: str, *, offset: int, span: int, out: list[Raw], limit: int
) -> None:
    """The reference semantics: every line of `text` with a match, at its first match."""
    n, search, find = len(text), regex.search, text.find
    phantom = n == 0 or text[-1] == "\n"  # the empty "line" after a final newline
    pos = 0
    while len(out) < limit:
        m = search(text, pos)
        if m is None:
            return
        s = m.start()
        if s == n and phantom:
            return
        line_end = find("\n", s)
        out.append((span, offset + s, offset + m.end(), offset + (n if line_end < 0 else line_end)))
        if line_end < 0:
            return
        pos = line_end + 1


def _scan_run(
    matcher: _Matcher, text: str, starts: list[int], ends: list[int], *, first: int, stop: int,
    out: list[Raw], limit: int,
) -> None:
    """Hits in spans[first:stop], searched as one stretch of `text` with per-span checks."""
    run_end = ends[stop - 1]
    matcher.reset(run_end)
    find, search = text.find, matcher.search
    k, pos = first, starts[first]
    while len(out) < limit:
        found = search(pos, run_end, True)
        if found is None:
            return
        s, e = found
        if s >= starts[k + 1 if k + 1 < stop else k]:
            k = bisect_right(starts, s, k, stop) - 1
        span_end = ends[k]
        if not (s < span_end and e <= span_end):
            if s == span_end and e == s and text[s - 1] != "\n":
                pass  # an empty match at the end of a last line without newline: a hit
            elif s > span_end:
                found = None  # in the gap after the span: nothing more in this span
            else:  # runs past the span's end: redo the search inside the span alone
                found = search(max(pos, starts[k]), span_end, False)
                if found is not None and found[0] == span_end and text[span_end - 1] == "\n":
                    found = None
            if found is None:
                if k + 1 >= stop:
                    return
                k += 1
                pos = starts[k]
                continue
            s, e = found
        line_end = find("\n", s, span_end)
        if line_end < 0:
            out.append((k, s, e, span_end))
            if k + 1 >= stop:
                return
            k += 1
            pos = starts[k]
        else:
            out.append((k, s, e, line_end))
            pos = line_end + 1
