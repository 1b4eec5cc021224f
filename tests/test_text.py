"""harness.text, the one escaping module, and the console and log tail that use it."""

from __future__ import annotations

import io

import pytest

from harness import text
from harness.console import Progress
from harness.events import describe
from harness.logs import LogSink

TRICKS = [
    "\x1b[31mred\x1b[0m \x1b[2J\x1b[H",  # CSI
    "\x1b]0;title\x07",  # OSC title set, BEL
    "a\b\b\bb",  # backspace
    "shown\rhidden",  # carriage return overwrite
    "file \u202egnp.exe",  # bidi override
    "\x9b31m C1 CSI \x85 NEL",  # C1 controls
    "zero\u200bwidth \ufeff bom \u2028 line sep \u2029 para",
    "lone \ud800 surrogate \udfff",
]


@pytest.mark.parametrize("trick", TRICKS)
def test_clean_escapes_every_trick_and_stays_one_printable_line(trick):
    out = text.clean(trick)
    assert text.is_printable(out) and len(out.splitlines()) <= 1
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert text.clean(out) == out
    out.encode("utf-8")  # no lone surrogate survives


def test_clean_shows_what_was_there():
    assert text.clean("a\x1b[2Jb") == "a\\x1b[2Jb"
    assert text.clean("x\u202ey") == "x\\u202ey"
    assert text.clean(b"ok \xff") == "ok \\udcff"  # undecodable bytes, visibly
    assert text.clean("plain text, é ü 中文 🙂") == "plain text, é ü 中文 🙂"


def test_clean_limit_is_respected_and_marked():
    assert text.clean("x" * 100, 10) == "x" * 7 + "..."
    assert len(text.clean("\x1b" * 1000, 20)) == 20
    assert text.clean("short", 10) == "short"
    for limit in range(0, 5):
        assert len(text.clean("abcdefgh", limit)) <= limit


def test_file_name_handles_any_bytes():
    assert text.file_name(b"ckpt-\xff.bin") == "ckpt-\\udcff.bin"
    assert text.file_name("ckpt-\udcff.bin") == "ckpt-\\udcff.bin"
    from pathlib import Path

    assert text.file_name(Path("a\nb")) == "a\\x0ab"


def test_utf8_keeps_text_but_always_encodes():
    assert text.utf8("a\x1bb") == "a\x1bb"  # data files keep the entry's text
    assert text.utf8("x\ud800y") == "x\ufffdy"
    text.utf8("\udcff" * 3).encode("utf-8")


def test_markdown_cell_escaping():
    cell = text.md("a|b <script>&`code` *em* _u_ [link](x) \\ \x1b[2J\nnext")
    assert "<" not in cell and "&lt;script&gt;" in cell and "&amp;" in cell
    assert "\\|" in cell and "\\`code\\`" in cell and "\\*em\\*" in cell and "\\[link\\]" in cell
    assert "\x1b" not in cell and "\n" not in cell and "\\\\x1b" in cell  # shown as \x1b
    assert text.md(None) == ""


def test_html_escaping():
    out = text.html('<img src=x onerror="alert(1)"> \x07 \u202e')
    assert "<" not in out and '"' not in out and "\x07" not in out and "\u202e" not in out
    assert text.html(None) == ""
    assert text.html("x" * 50, 10) == "x" * 7 + "..."
    assert text.html_lines(["<a>", "\x1b[2J"]) == "&lt;a&gt;\n\\x1b[2J"


def test_md_code_fence_is_longer_than_any_backtick_run():
    block = text.md_code(["```", "ok ````` done", "\x1b[31m"])
    assert block.startswith("``````text\n") and "\x1b" not in block


def test_progress_say_cleans_each_line_and_keeps_the_newlines():
    stream = io.StringIO()
    Progress(stream).say("train: python train.py '\x1b]0;pwned\x07'\nsecond \x1b[2J line")
    out = stream.getvalue()
    assert out == "train: python train.py '\\x1b]0;pwned\\x07'\nsecond \\x1b[2J line\n"


def test_progress_update_cleans_the_event_text():
    stream = io.StringIO()
    Progress(stream).update("train", 1.0, 10.0, event="epoch \x1b[2J\x1b]0;t\x07 \u202e" + "x" * 500)
    out = stream.getvalue()
    assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
    assert len(out) < 300 and out.endswith("...\n")


def test_describe_is_clean_and_short():
    event = {"event": "\x1b]0;title\x07epoch", "\x1b[2Jloss": 0.5, "note": "a\rb", "t_s": 1.0}
    out = describe(event)
    assert text.is_printable(out) and len(out) <= 60 and "loss=0.5" in out
    assert describe({"event": {"nested": [1]}, "x": float("nan")}).startswith("{")
    assert describe(None) == ""


def test_log_tail_lines_are_cleaned_and_cut(tmp_path):
    sink = LogSink(tmp_path / "train.log", limit=10_000)
    sink.write(b"\x1b[31mred\x1b[0m\r\nbell \x07\nwindows line\r\n" + b"y" * 5000 + b"\n\xff\xfe partial \x1b")
    tail = sink.tail()
    sink.close()
    assert tail[:3] == ["\\x1b[31mred\\x1b[0m", "bell \\x07", "windows line"]
    assert all(text.is_printable(line) and len(line) <= 1000 for line in tail)
    assert tail[-1].endswith("partial \\x1b")
    assert b"\x1b[31m" in (tmp_path / "train.log").read_bytes(), "the log file itself keeps the raw bytes"
