import numpy as np
import pytest

from harness.scoring import InvalidPredictions, read_predictions, score, wilson_interval


def write(tmp_path, text):
    path = tmp_path / "predictions.csv"
    path.write_text(text)
    return path


def test_reads_valid_predictions_in_any_row_order(tmp_path):
    path = write(tmp_path, "index,label\n2,1\n0,0\n1,2\n")
    assert read_predictions(path, 3, 3).tolist() == [0, 2, 1]


@pytest.mark.parametrize(
    "text, reason",
    [
        ("idx,label\n0,0\n1,1\n2,2\n", "header 'index,label'"),
        ("index,label\n0,0\n1,1\n", "1 of 3 images have no prediction (first missing index 2)"),
        ("index,label\n0,0\n0,1\n1,1\n2,2\n", "index 0 is predicted twice"),
        ("index,label\n0,0\n1,1\n2,10\n", "label 10 is outside 0..2"),
        ("index,label\n0,0\n1,1\n3,2\n", "index 3 is outside 0..2"),
        ("index,label\n0,0\n1,cat\n2,2\n", "are not two integers"),
        ("index,label\n0,0,0\n", "expected 2 fields"),
        ("", "header"),
    ],
)
def test_invalid_predictions_give_the_exact_reason(tmp_path, text, reason):
    with pytest.raises(InvalidPredictions) as err:
        read_predictions(write(tmp_path, text), 3, 3)
    assert reason in str(err.value)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(InvalidPredictions, match="was not written"):
        read_predictions(tmp_path / "predictions.csv", 3, 3)
    (tmp_path / "predictions.csv").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidPredictions, match="not a UTF-8 CSV"):
        read_predictions(tmp_path / "predictions.csv", 3, 3)


def test_score_counts_confusion_and_per_class():
    truth = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0])
    s = score(predicted, truth, ["a", "b", "c"])
    assert (s.correct, s.total) == (4, 6)
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert s.per_class == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert s.ci95_low < s.accuracy < s.ci95_high


def test_wilson_interval_matches_the_textbook_value():
    # 880 of 1000: the interval the HAET winner's score carries on a 1000-image set.
    low, high = wilson_interval(880, 1000)
    assert low == pytest.approx(0.8584, abs=1e-4)
    assert high == pytest.approx(0.8987, abs=1e-4)
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0) and wilson_interval(10, 10)[1] == pytest.approx(1.0)
