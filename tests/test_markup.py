"""harness.markup: text is escaped unless it is markup the module built."""

from __future__ import annotations

from harness.markup import escape, h, join, lines, page, table, warnings_box

EVIL = "<script>alert('x')</script>\x1b[2J\u202e"


def test_text_is_escaped_and_markup_is_not():
    cell = h("td", EVIL, h("b", EVIL))
    assert cell == (
        "<td>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;\\x1b[2J\\u202e"
        "<b>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;\\x1b[2J\\u202e</b></td>"
    )
    assert h("p", str(h("b", "x"))) == "<p>&lt;b&gt;x&lt;/b&gt;</p>", "markup turned back into text is text"
    assert h("p", escape("x" * 50, 10)) == "<p>xxxxxxx...</p>"


def test_attributes_are_always_escaped():
    assert (
        h("a", "x", href='" onclick="alert(1)', class_="num")
        == '<a href="&quot; onclick=&quot;alert(1)" class="num">x</a>'
    )
    assert h("td", title=h("b", "x")) == '<td title="&lt;b&gt;x&lt;/b&gt;"></td>'
    assert h("line", stroke_width=2, hidden=True, id=None, open=False) == '<line stroke-width="2" hidden></line>'


def test_children_flatten_and_none_is_nothing():
    assert join("a", None, ["b", ("c", None)], (x for x in "de"), 0) == "abcde0"
    assert h("img", "ignored", alt="<") == '<img alt="&lt;">'


def test_lines_keep_their_newlines():
    assert h("pre", lines(["<a>", "\x1b[2J", "x" * 20], 10)) == "<pre>&lt;a&gt;\n\\x1b[2J\nxxxxxxx...</pre>"


def test_tables_boxes_and_the_page():
    assert table(["n", EVIL], [[1, "<i>"]], numeric=(0,)) == (
        '<div class="tw"><table class="grid"><thead><tr><th class="num">n</th>'
        "<th>&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;\\x1b[2J\\u202e</th></tr></thead>"
        '<tbody><tr><td class="num">1</td><td>&lt;i&gt;</td></tr></tbody></table></div>'
    )
    assert warnings_box([]) is None and "<li>&lt;w&gt;</li>" in warnings_box(["<w>"])
    html = page(EVIL, h("p", "body"), wide=True)
    assert html.startswith('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">')
    assert "<title>&lt;script&gt;" in html and '<main class="wide"><p>body</p><footer>' in html
    assert "<script" not in html
