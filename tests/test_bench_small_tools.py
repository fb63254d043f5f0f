"""Smoke tests of the small-image measurement scripts (real CIFAR-10 and Flickr8k files; seconds)."""
from __future__ import annotations

from benchmarks import context_gain, rdoq_speed


def test_rdoq_speed_prints_its_table(capsys):
    rdoq_speed.main(["--images", "1", "--crops", "1"])
    out = capsys.readouterr().out
    assert "RDOQ ms" in out and "CIFAR-10 train 32x32 (10)" in out and "Flickr8k 64x64 crops (1)" in out


def test_context_gain_prices_streams_as_the_writer_does():
    context_gain.self_check()  # the script's pricing against entropy._fit on random streams


def test_context_gain_small_reports_the_kept_and_the_1_0_layout_files(tmp_path, capsys):
    context_gain.small(1, (400,), tmp_path, 1)
    out = capsys.readouterr().out
    assert "1.0-layout files: mean" in out
