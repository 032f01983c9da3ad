"""Text from documents, models and users shown in places Qt may read as HTML (rich-text
labels, tooltips): escaped, so `a < b`, `<b>` or `<img src=...>` in it shows as written."""

from __future__ import annotations

import html


def escape(text: str) -> str:
    """For a rich-text label: the text itself, never markup."""
    return html.escape(text, quote=False)


def tooltip(text: str) -> str:
    """A tooltip that shows `text` as written (Qt guesses rich text for tooltips that look
    like HTML, and `a < b and c > d` does): escaped, line breaks and spaces kept."""
    if not text:
        return ""
    return f'<p style="white-space:pre-wrap">{escape(text)}</p>'
