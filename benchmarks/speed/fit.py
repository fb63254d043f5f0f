"""Section ``fit``: the fitting core against the PyTorch baseline (``benchmarks.fit_speed``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from .. import fit_speed
from .settings import Settings
from .util import fmt, load_image, md_table


def section_fit(settings: Settings, out: Path) -> dict[str, Any]:
    kwargs = dict(settings.fit)
    image_name = kwargs.pop("image", "kodim23")
    if settings.fit_crop:  # a crop, as a file: the memory measurement reloads it in a fresh process
        _, image = load_image(image_name, settings.fit_crop)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "fit_quick_crop.png"
        Image.fromarray(image).save(path)
        image_name = str(path)
    if settings.skip_torch:
        kwargs["skip_torch"] = True
    else:
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            print(f"PyTorch baseline: skipped (torch not installed: {exc})")
            kwargs["skip_torch"] = True
    print("baseline: benchmarks/torch_baseline.py (plain PyTorch, same model, same start Gaussians, same "
          "learning rates and schedule) and Pillow's JPEG decode of the same image; measured by "
          "benchmarks.fit_speed in this run:\n")
    figures = fit_speed.measure(image_name, threads=settings.threads, **kwargs)
    print()
    rows = [[k, v if not isinstance(v, float) else fmt(v, 4)] for k, v in figures.items()]
    print(md_table(["figure", "value"], rows, "lr"))
    return figures

