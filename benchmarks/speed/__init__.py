"""Speed of splatcodec: decoding against Pillow's codecs, encoding, batched fitting, scaling, and the
fitting core against a PyTorch baseline, each measured next to its baseline in the same run.

Sections (all by default, in this order; name some to run only those):

* ``codecs``: encode and decode time per Kodak image at each rate point, and splatcodec / reference time
  ratios at equal bpp, from ``benchmarks.rd``'s results (its ``json/<codec>.json``: median ms per
  image). Each reference codec's time is interpolated (log-time over log-bpp) at splatcodec's bpp.
  Needs an benchmarks.rd run; without one the section says so and is skipped.
* ``decode``: direct decode timing, no benchmarks.rd needed. A few Kodak images are encoded once with
  splatcodec (``--quality``, ``--effort``; the ``.gsplat`` bytes are cached under ``--out``, so reruns
  are fast) and ``splatcodec.decode`` is timed split into parse + entropy decode (+ dequantise) and
  render, against Pillow decoding JPEG 4:2:0 / WebP / AVIF files of about the same size (each codec's
  quality found by bisection on the file size; benchmarks.rd's encoder settings). Medians of ``--repeats``.
* ``batch``: batched fitting throughput at the GaussianVision setting (224x224 Flickr8k photos, 400
  and 1600 Gaussians, 2000 iterations): ``fit_batch`` on the CPU, ``splatcodec._core_cuda.fit_batch``
  when that module imports and sees a GPU, the PyTorch baseline's per-iteration time at the same
  setting, and the published figure (12.8M images at 400 Gaussians in ~25.6 GPU-hours).
* ``scaling``: ms per fitting iteration, initialisation and render time against the number of
  Gaussians (one Kodak image) and against the image size at a fixed Gaussian density, with the
  log-log growth between rows; PyTorch per-iteration and Pillow JPEG decode time as baselines.
* ``fit``: ``benchmarks.fit_speed`` (ms per iteration and time to 30/33 dB against the PyTorch
  baseline ``benchmarks/torch_baseline.py``, render time, peak memory).

    python -m benchmarks.speed [SECTION ...] [--quick] [--json OUT] [--threads N] [--skip-torch]

``--quick`` shrinks every section to tiny images and iteration counts (seconds in all; the smoke test
runs it): its numbers check the harness, they say nothing about speed. Tables print as Markdown.
"""
from . import machine
from .cli import build_parser, main, settings_from
from .settings import PAPER, SECTIONS, Settings

__all__ = ["PAPER", "SECTIONS", "Settings", "build_parser", "machine", "main", "settings_from"]
