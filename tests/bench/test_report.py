"""livecam bench's report: honest statistics, and the JSON record that follows its schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from livecam.bench import SCHEMA_FILE, BenchReport, BenchResult, Stat, load_result

SCHEMA = json.loads(SCHEMA_FILE.read_text())


def test_stat_percentiles_are_nearest_rank() -> None:
    seconds = [i / 1000 for i in range(1, 101)]  # 1..100 ms, shuffled
    rng = np.random.default_rng(0)
    stat = Stat.of(list(rng.permutation(seconds)))
    assert (stat.p50_ms, stat.p90_ms, stat.p99_ms, stat.n) == pytest.approx((50, 90, 99, 100))
    assert stat.mean_ms == pytest.approx(50.5)
    for p, value in ((50, stat.p50_ms), (90, stat.p90_ms), (99, stat.p99_ms)):
        assert value == pytest.approx(np.percentile(np.arange(1, 101), p, method="inverted_cdf"))
    assert Stat.of([0.004]) == Stat(4.0, 4.0, 4.0, 4.0, 1)
    assert Stat.of([]) == Stat(0.0, 0.0, 0.0, 0.0, 0)


def test_a_stored_report_reads_and_writes_the_schema_and_its_record() -> None:
    """A report from benchmarks/results reads back, and writes every key of the schema and of BenchReport."""
    stored = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "bench-epyc-2core-lite0-360p.json"
    result = load_result(stored)
    data = json.loads(result.to_json())
    jsonschema.validate(data, SCHEMA)
    assert list(data) == list(BenchReport.__annotations__) and set(SCHEMA["required"]) <= set(data)
    assert BenchResult.from_dict(data) == result
    assert data["pipeline"] == json.loads(stored.read_text())["pipeline"]
