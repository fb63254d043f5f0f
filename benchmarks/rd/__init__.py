"""Rate-distortion benchmark: splatcodec against Pillow's JPEG, WebP, AVIF and (optionally) JPEG XL.

For every codec and every point of its quality sweep, each image of a folder is encoded and decoded; we
record the real encoded size (bpp = 8 * bytes / pixels), PSNR and MS-SSIM on 8-bit RGB, and encode/decode
wall time. Per-image results are cached on disk, so an interrupted run resumes where it stopped.

Outputs (under ``--out``, default ``benchmarks/results/<dataset>``):

* ``json/<codec>.json``: CompressAI-style curves (``name``, ``description``, ``results`` with parallel
  lists ``bpp``, ``psnr-rgb``, ``ms-ssim-rgb``, ``encoding_time``, ``decoding_time`` and the swept
  parameter). Following CompressAI, bpp/PSNR/MS-SSIM are means over images; times are the median over
  images, in milliseconds (each image's time is itself the median of ``--repeats`` runs).
* ``per_image.csv`` and ``summary.csv``.
* ``rd.png``: PSNR and MS-SSIM (dB) vs bpp with the published GaussianImage / GaussianImage++ anchors.
* A printed BD-rate / BD-PSNR table (``bjontegaard``, pchip) of splatcodec against every other codec,
  plus a sanity table of every codec against JPEG 4:2:0, and a per-image table: at each of
  splatcodec's rate points, how many images beat JPEG 4:2:0 at the same bpp, by how much on average and
  at worst.

splatcodec is benchmarked only when ``splatcodec.encode(image, quality=...) -> bytes`` and
``splatcodec.decode(data) -> ndarray`` exist; otherwise the run says so and covers the reference codecs.

Usage: ``python -m benchmarks.rd [DATASET] [--jobs N] [--codecs a,b] ...`` (see ``--help``), or
``splatcodec bench rd ...``; ``main(argv)`` is the entry point. ``python -m benchmarks.rd.check IMAGE...``
is a quick check of a few images against JPEG.

Modules: :mod:`.codecs` (the codecs under test), :mod:`.run` (tasks, cache, measurement),
:mod:`.report` (curves, BD metrics, tables, plot, files), :mod:`.cli` (arguments and the run).
"""
from .codecs import SPLAT, Codec, PillowCodec, SplatCodec, reference_codecs
from .cli import BD_ANCHOR_SANITY, build_parser, main, select_codecs
from .report import (PUBLISHED_ANCHORS, Curve, bd_metrics, clip_curve, format_bd_table, format_per_image_table,
                     format_summary_table, msssim_db, per_image_gains, plot_rd, summarize, write_outputs)
from .run import Task, codec_cache_dir, measure, run_task

__all__ = ["BD_ANCHOR_SANITY", "PUBLISHED_ANCHORS", "SPLAT", "Codec", "Curve", "PillowCodec", "SplatCodec", "Task",
           "bd_metrics", "build_parser", "clip_curve", "codec_cache_dir", "format_bd_table",
           "format_per_image_table", "format_summary_table", "main", "measure", "msssim_db", "per_image_gains",
           "plot_rd", "reference_codecs", "run_task", "select_codecs", "summarize", "write_outputs"]
