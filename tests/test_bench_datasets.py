"""Smoke run of the dataset benchmark (benchmarks.datasets --quick, without Ray): real encodes through
the serial loop, encode_batch (which must write the same bytes) and the local engine's command line."""
from __future__ import annotations

import json
from pathlib import Path

from benchmarks import datasets  # noqa: E402  (the repository root is on sys.path: pyproject's pytest pythonpath)


def test_datasets_benchmark_quick(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    assert datasets.main(["--quick", "--no-ray", "--images", "4", "--serial-images", "4", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert [row["label"].split(": ", 1)[1] for row in results["batch"][:3]] == [
        "serial encode loop", "serial encode loop, threads=1", "encode_batch"]
    assert all(row["images_per_second"] > 0 and row["load_before"] >= 0 for row in results["batch"])
    labels = [row["label"] for row in results["engines"]]
    assert labels[1:] == ["--engine local --workers 1", "--engine local --workers 2"]
    assert all(row["failed"] == 0 and row["mean_psnr"] > 15 for row in results["engines"][1:])
    projection = results["projection"]
    assert projection["core_hours_wall"] > 0 and projection["core_hours_cpu"] > 0 and [r["nodes"] for r in projection["rows"]] == [1, 1, 10, 100, 1000]
