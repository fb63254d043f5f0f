"""Smoke test of benchmarks.small_images --quick (real CIFAR-10 and Flickr8k files; seconds)."""
from __future__ import annotations

from benchmarks import small_images


def test_quick_run_prints_both_tables(capsys):
    small_images.main(["--quick"])
    out = capsys.readouterr().out
    assert "| codec | PSNR at 150 B | PSNR at 250 B | PSNR at 400 B |" in out
    assert "| splatcodec |" in out and "| WebP m6 |" in out
    assert "bytes at equal PSNR" in out and "| 200 |" in out
    assert "10,000 images in" in out and "WebP m6 q10, one thread" in out
