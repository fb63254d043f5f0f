"""The GS-CLIP experiment (issue 15): does language alignment survive real ``.gsplat`` compression, and
does a GS encoder beat the RGB encoder fed a WebP or JPEG of the same size?

    python -m benchmarks.clip_zeroshot                 # the protocol (hours on 2 cores; resumable)
    python -m benchmarks.clip_zeroshot --quick         # smoke scale (minutes): checks the pipeline only
    python -m benchmarks.clip_zeroshot --smoke         # the test's scale
    python -m benchmarks.clip_zeroshot --out DIR       # default benchmarks/results/clip/<scale>/

Stages, in order, each skipped when finished before (``DIR/stages/<stage>.json`` exists; training runs
resume from their last finished epoch): ``split`` (stored as ``split.json``), ``teacher`` (RGB ViT of
``splatcodec.clip``, contrastive against frozen MiniLM prompts, two classes held out), ``encodes`` (per
rate, the byte target chosen on validation images, then real ``.gsplat`` files of the train/val/test
images in ``DIR/gaussian_cache``), ``students`` (distill, then contrastive, per rate and seed),
``evaluate`` (every row on the same test images with bootstrap intervals). Then ``summary.json``,
``table.md`` and ``accuracy_vs_bytes.png``. Checkpoints ``teacher.pt`` and ``gs_<rate>.pt`` load with
``splatcodec.clip.load`` and ``splatcodec clip zeroshot --checkpoint``. See docs/clip.md.
"""
from .cli import main

__all__ = ["main"]
