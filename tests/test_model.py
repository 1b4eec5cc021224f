"""The result model: what a run writes reads back, and a version 1 result still reads."""

from __future__ import annotations

import json

import pytest

from harness.model import SCHEMA_VERSION, RunResult, from_dict, to_dict
from tests.test_report import make_result


def test_a_result_reads_back_as_written():
    result = make_result()
    assert from_dict(json.loads(json.dumps(to_dict(result)))) == result


def test_a_version_1_result_reads_with_its_old_names():
    old = to_dict(make_result())
    old["schema_version"] = 1
    old["data"]["index_hash"] = old["data"].pop("data_sha256")
    for key in ("isolated",):
        old["environment"].pop(key)
    old.pop("build")
    read = from_dict(old)
    assert isinstance(read, RunResult) and read.data.data_sha256 == "9c1e" * 16
    assert read.environment.isolated is True and read.build is None and read.monitor.gpu_status is None


def test_a_newer_schema_is_refused_with_the_fix():
    newer = to_dict(make_result())
    newer["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(ValueError, match="upgrade the harness"):
        from_dict(newer)
