"""Text an entry controls, made safe to show: the one escaping module.

Everything an entry chooses (its commands, log lines, event keys and values, file
names, the rows of its predictions) may hold terminal escapes, other control
characters, lone surrogates, bidi overrides or bytes that are not UTF-8. `clean`
turns any of it into printable text that stays one line, and is idempotent, so
cleaning twice (on the way in and on the way out) changes nothing.

Every writer builds on it: `md` for a Markdown paragraph or table cell, `html` for
HTML text and attributes, `utf8` for data files (CSV, JSON lines) that keep the
entry's text as it is but must always encode. Nothing else in the harness escapes
entry text on its own.
"""

from __future__ import annotations

import html as _html
import os
import re
import unicodedata

# C0 and C1 controls, DEL, lone surrogates, the line and paragraph separators (str.splitlines
# breaks on them), the invisible format characters that can hide or reorder text on screen
# (zero-width space/non-joiner, marks, bidi embeddings, overrides and isolates, word joiner and
# invisible operators, BOM, interlinear annotation).
_UNSAFE = re.compile(
    "[\x00-\x1f\x7f-\x9f\ud800-\udfff\u061c\u180e\u200b\u200c\u200e\u200f\u2028-\u202e"
    "\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb]"
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_LINE_SPACE = re.compile("[\t\n\r]+")
# Markdown's active characters, escaped with a backslash (HTML-special ones become entities).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~$])")
ELLIPSIS = "..."


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
        return value if isinstance(value, str) else value.decode("utf-8", "surrogateescape")
    try:
        return str(value)
    except Exception as exc:  # noqa: BLE001 - an object whose str() fails still has a name
        return f"<{type(value).__name__}: str() failed: {type(exc).__name__}>"


def cut(text: str, limit: int | None) -> str:
    """At most `limit` characters, the cut marked with '...'."""
    if limit is None or len(text) <= limit:
        return text
    if limit < len(ELLIPSIS):
        return text[: max(limit, 0)]
    return text[: limit - len(ELLIPSIS)] + ELLIPSIS


def clean(text: object, limit: int | None = None) -> str:
    """One printable line: control characters, lone surrogates and invisible or bidi format
    characters escaped as \\xNN / \\uNNNN. Bytes are read as UTF-8, undecodable bytes escaped.

    `limit` cuts the result to at most that many characters, marking the cut with '...'.
    Idempotent: clean(clean(x, n), n) == clean(x, n).
    """
    text = _text(text)
    if not (text.isascii() and text.isprintable()):
        if limit is not None and len(text) > 4 * limit:
            text = text[: 4 * limit]  # bound the work: an escape is at most 6 characters for 1
        text = _UNSAFE.sub(_escape, text)
    return cut(text, limit)


def file_name(name: object) -> str:
    """A file name in any bytes (str with surrogate escapes, bytes or a path) as printable text."""
    return clean(name)


def is_printable(text: str) -> bool:
    """True when `clean` would leave the text unchanged: no control, surrogate, separator or
    invisible format character survives."""
    return not _UNSAFE.search(text) and not any(
        unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in text if not ch.isascii()
    )


def utf8(text: object) -> str:
    """The text as it is, except that lone surrogates (which no UTF-8 writer accepts) become
    U+FFFD: for data files that keep an entry's text (events.jsonl, CSV)."""
    text = _text(text)
    if text.isascii():
        return text
    return _SURROGATE.sub("\ufffd", text)


def md(text: object, limit: int | None = None) -> str:
    """Entry text for a Markdown paragraph, list item or table cell: one clean line, Markdown's
    active characters backslash-escaped, HTML-special characters as entities (no raw HTML)."""
    if text is None:
        return ""
    text = clean(_LINE_SPACE.sub(" ", _text(text)), limit)
    return _html.escape(_MD_SPECIAL.sub(r"\\\1", text), quote=False)


def html(text: object, limit: int | None = None) -> str:
    """Entry text for HTML element content or a quoted attribute value: one clean line, escaped."""
    if text is None:
        return ""
    return _html.escape(clean(_LINE_SPACE.sub(" ", _text(text)), limit), quote=True)


def html_lines(lines: list[object] | tuple[object, ...], limit: int | None = None) -> str:
    """Several lines for a <pre>: each cleaned and escaped on its own, joined by newlines."""
    return "\n".join(_html.escape(clean(line, limit), quote=True) for line in lines)


def md_code(lines: list[object] | tuple[object, ...], limit: int | None = None, info: str = "text") -> str:
    """A fenced Markdown code block of cleaned lines, its fence longer than any backtick run inside."""
    body = "\n".join(clean(line, limit) for line in lines)
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body}\n{fence}\n"
