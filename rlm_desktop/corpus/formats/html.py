"""HTML to readable text with selectolax: block structure kept as line breaks, scripts dropped."""

from __future__ import annotations

import re

from selectolax.lexbor import LexborHTMLParser

_BLOCKS = (
    "address, article, aside, blockquote, dd, div, dl, dt, fieldset, figcaption, figure, "
    "footer, form, h1, h2, h3, h4, h5, h6, header, hr, main, nav, ol, p, pre, section, "
    "table, ul, title"
)
_ROWS = "tr, li, dt, dd, option"
# Private-use markers survive whitespace collapsing, then become the breaks they stand for.
_NL = "\ue000"
_TAB = "\ue001"
_AROUND_NL = re.compile(r" *\n *")
_MANY_NL = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\ue000\ue001]")


def html_to_text(html: str) -> str:
    """Visible text of an HTML document or fragment."""
    tree = LexborHTMLParser(_CONTROL.sub("", html))
    tree.strip_tags(["script", "style", "noscript", "template", "svg", "head"])
    for node in tree.css("br"):
        node.replace_with(_NL)
    for node in tree.css("td, th"):
        node.insert_after(_TAB)
    for node in tree.css(_ROWS):
        node.insert_after(_NL)
    for node in tree.css(_BLOCKS):
        node.insert_before(_NL)
        node.insert_after(_NL)
    root = tree.body or tree.root
    if root is None:
        return ""
    text = root.text(deep=True, separator="", strip=False)
    text = " ".join(text.split())  # all runs of whitespace, newlines included, to one space
    text = text.replace(_TAB + _NL, _NL).replace(_TAB, "\t").replace(_NL, "\n")
    text = _AROUND_NL.sub("\n", text)
    text = _MANY_NL.sub("\n\n", text)
    return text.strip() + "\n" if text.strip() else ""
