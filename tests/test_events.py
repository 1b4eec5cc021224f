"""What the harness derives from an entry's events: epochs and training throughput, by the
contract's end-of-epoch markers only (docs/submission-contract.md). The bounds of the reader
itself are property-tested in test_readers_property.py."""

from __future__ import annotations

import json

from harness import events


def log(*lines: dict) -> list[dict]:
    return [dict(line) for line in lines]


def test_throughput_counts_epoch_events_not_others_that_carry_an_epoch():
    found = log(
        {"event": "epoch", "epoch": 1, "t_s": 10.0},
        {"event": "epoch", "epoch": 2, "t_s": 20.0},
        {"event": "checkpoint", "epoch": 3, "t_s": 21.0},
        {"event": "done", "epoch": 3, "t_s": 22.0},
    )
    assert events.epochs(found) == 2
    assert events.throughput(found, train_count=5000) == 2 * 5000 / 20.0  # 500 images/s, not 3 x 5000 / 22


def test_an_epoch_event_may_say_how_many_images_it_processed():
    found = log({"event": "epoch", "epoch": 1, "images": 2500, "t_s": 5.0})  # half a pass, say
    assert events.throughput(found, train_count=5000) == 500.0


def test_without_epoch_events_throughput_is_unknown():
    found = log({"event": "checkpoint", "epoch": 4, "t_s": 30.0}, {"event": "step", "loss": 1.0, "t_s": 31.0})
    assert events.epochs(found) is None and events.throughput(found, train_count=5000) is None
    assert events.throughput(log({"event": "epoch", "epoch": 1, "t_s": 3.0}), train_count=None) is None


def test_read_gives_back_what_the_tail_wrote(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text(
        "\n".join(json.dumps(e) for e in [{"event": "epoch", "epoch": 1, "time": 100.0}, {"x": 1}]) + "\nnot json\n"
    )
    tail = events.EventTail(path, started_unix=90.0)
    tail.poll()
    tail.write(tmp_path / "kept.jsonl")
    read = events.read(tmp_path / "kept.jsonl")
    assert [e.get("event") for e in read.events] == ["epoch", None]
    assert read.events[0]["t_s"] == 10.0
