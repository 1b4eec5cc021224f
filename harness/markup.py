"""HTML in which text is escaped by default: the one page skeleton, stylesheet and markup builder
of report.html and leaderboard.html.

A value put into markup is text, escaped by the one escaping module (harness.text.html: one clean
line, HTML-special characters as entities), unless it is `Markup`, which only this module makes:
`h` for an element, `join` for siblings, `escape` for text with its own length limit, `lines` for
the lines of a <pre>. Attribute values are always escaped. So an entry's text cannot become markup
by a call site forgetting to escape it. No markupsafe: its escaping would skip harness.text's
cleaning (control characters, bidi overrides, lone surrogates) and its limits.

The pages have no scripts and no external assets: inline CSS and inline SVG plots.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from harness import text
from harness.formatting import CELL_CHARS

CSS = """
*{box-sizing:border-box}
body{font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1f2328;background:#f6f8fa;margin:0}
main{max-width:1100px;margin:0 auto;padding:20px 24px 40px}main.wide{max-width:1500px}
header.top{margin:8px 0 4px}
h1{font-size:24px;margin:0;word-break:break-word}
h2{font-size:18px;margin:0 0 10px;padding-bottom:6px;border-bottom:1px solid #eaeef2}
h3{font-size:15px;margin:16px 0 6px}
nav{font-size:13px;color:#57606a;margin:4px 0 8px}
nav a{margin-right:12px}
a{color:#0969da;text-decoration:none}a:hover{text-decoration:underline}
section{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:16px 20px;margin:14px 0}
ul{margin:4px 0;padding-left:20px}
table{border-collapse:collapse;margin:6px 0 10px}
th,td{padding:4px 12px 4px 0;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
th{font-weight:600;color:#57606a;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
table.kv th{width:190px}
table.kv td{overflow-wrap:anywhere}.cols table.kv th{width:150px}
.tw{overflow-x:auto;max-width:100%}
table.grid th,table.grid td{padding:4px 12px}
table.grid thead th{background:#f6f8fa;border-bottom:1px solid #d0d7de}
table.board th{font-size:12px;white-space:normal}table.board th.num{white-space:nowrap}
table.board th,table.board td{padding:6px 8px}
code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px;word-break:break-all}
.badge{display:inline-block;padding:1px 10px;border-radius:12px;font-weight:600;color:#fff;font-size:13px;
 vertical-align:middle}
.b-scored,.b-completed{background:#1a7f37}
.b-failed,.b-crashed,.b-oom,.b-no_checkpoint,.b-no_predictions{background:#cf222e}
.b-invalid_predictions{background:#bc4c00}.b-interrupted,.b-not_started{background:#6e7781}
.b-killed_at_deadline{background:#0969da}
.tag{display:inline-block;white-space:nowrap;padding:1px 7px;border-radius:9px;font-size:12px;font-weight:600;
 margin-left:4px}
.tag.ref{background:#dbe7ff;color:#1f4fb3}.tag.bad{background:#fde2e2;color:#a01b1b}
.tag.inc{background:#fff1cc;color:#7a5a00}.tag.ok{background:#dff5e3;color:#18692d}.tag.st{white-space:normal;margin:0}
.hero{display:flex;gap:32px;align-items:baseline;flex-wrap:wrap;margin:8px 0 12px}
.big{font-size:36px;font-weight:700;font-variant-numeric:tabular-nums}
.sub,.minor{color:#57606a}
.minor{display:block;font-size:12px;font-weight:400;overflow-wrap:anywhere}
.rank,.acc{font-weight:700;font-size:17px}
.entry{font-weight:600;overflow-wrap:anywhere}td.who{min-width:140px;max-width:240px}
tr.ref td{background:#f3f7ff}tr.tier td{border-top:2px solid #8c959f}
.fail,.fail .minor{color:#a01b1b}.pending{color:#6e7781;font-style:italic}
.warn{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:8px 12px;margin:8px 0}
.note{background:#ddf4ff;border:1px solid #54aeff;border-radius:6px;padding:8px 12px;margin:8px 0}
.err{background:#ffebe9;border:1px solid #ff8182;border-radius:6px;padding:8px 12px;margin:8px 0}
pre{background:#0d1117;color:#e6edf3;padding:10px 12px;border-radius:6px;overflow:auto;max-height:420px;
 font-size:12px;line-height:1.45;white-space:pre-wrap;word-break:break-all}
details{margin:6px 0}summary{cursor:pointer;color:#57606a}
svg.plot{max-width:100%;height:auto;display:block;margin:8px 0;background:#fff}
svg text{font:12px system-ui,sans-serif;fill:#57606a}
.bar{display:inline-block;height:10px;background:#54aeff;border-radius:2px;vertical-align:middle}
.cols{display:flex;gap:28px;flex-wrap:wrap}.cols>div{flex:1 1 420px;min-width:0}
footer{color:#57606a;font-size:12px;text-align:center;margin-top:20px}
"""

VOID = frozenset({"br", "img", "meta"})  # the elements without an end tag that the pages use


class Markup(str):
    """HTML this module built: put into other markup as it is. Only this module makes one: text
    wrapped in it anywhere else would skip the escaping."""


def escape(value: Any, limit: int | None = CELL_CHARS) -> Markup:
    """Text as markup: one clean line of at most `limit` characters, escaped (Markup stays as it is)."""
    return value if isinstance(value, Markup) else Markup(text.html(value, limit))


def lines(items: Iterable[Any], limit: int | None) -> Markup:
    """Lines for a <pre>: each cleaned, cut to `limit` and escaped on its own, joined by newlines."""
    return Markup(text.html_lines(list(items), limit))


def _flat(children: Iterable[Any]) -> Iterable[Any]:
    for child in children:
        if isinstance(child, (list, tuple)) or hasattr(child, "__next__"):
            yield from _flat(child)
        elif child is not None:
            yield child


def join(*children: Any) -> Markup:
    """Siblings: each child escaped unless it is Markup; lists and generators are flattened, None left out."""
    return Markup("".join(escape(child) for child in _flat(children)))


def h(tag: str, *children: Any, **attrs: Any) -> Markup:
    """An element: `h("td", value, class_="num")` is <td class="num">value</td>. Children as in `join`;
    attribute names lose a trailing `_` and read `_` as `-` (`aria_label`); a value of None or False
    leaves the attribute out, True writes it bare, anything else is escaped (Markup too)."""
    start = tag
    for name, value in attrs.items():
        if value is None or value is False:
            continue
        name = name.rstrip("_").replace("_", "-")
        start += f" {name}" if value is True else f' {name}="{text.html(value, None)}"'
    if tag in VOID:
        return Markup(f"<{start}>")
    return Markup(f"<{start}>{join(*children)}</{tag}>")


def table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = ()) -> Markup:
    """A table that scrolls sideways in its own box when it is too wide; `numeric` columns right-aligned."""

    def cells(tag: str, row: Sequence[Any]) -> Markup:
        return join(h(tag, c, class_="num" if i in numeric else None) for i, c in enumerate(row))

    return h(
        "div",
        h(
            "table",
            h("thead", h("tr", cells("th", headers))),
            h("tbody", (h("tr", cells("td", row)) for row in rows)),
            class_="grid",
        ),
        class_="tw",
    )


def warnings_box(warnings: Sequence[Any]) -> Markup | None:
    """What weakens trust in what the page shows, in one box; None (nothing) when there is none."""
    if not warnings:
        return None
    return h("div", h("strong", "Warnings"), h("ul", (h("li", w) for w in warnings)), class_="warn")


def page(title: Any, *body: Any, wide: bool = False) -> str:
    """A whole self-contained page: one stylesheet, the body in <main>, no scripts."""
    viewport = h("meta", name="viewport", content="width=device-width,initial-scale=1")
    head = h("head", h("meta", charset="utf-8"), viewport, h("title", title), h("style", Markup(CSS)))
    main = h("main", *body, h("footer", "generated by haet-harness"), class_="wide" if wide else None)
    return "<!DOCTYPE html>\n" + h("html", head, h("body", main), lang="en") + "\n"
