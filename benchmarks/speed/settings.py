"""Every size and count the speed sections use, the sections' names and the published reference."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SPLAT = "splatcodec"
SECTIONS = ("codecs", "decode", "batch", "scaling", "fit")

#: GaussianVision (published, not re-run): 12.8M images at 400 Gaussians in ~25.6 GPU-hours, batch 4096.
PAPER = {"images": 12.8e6, "gpu_hours": 25.6, "gaussians": 400, "batch": 4096}
PAPER["ms_per_image"] = PAPER["gpu_hours"] * 3600e3 / PAPER["images"]
PAPER["images_per_s"] = 1e3 / PAPER["ms_per_image"]


@dataclass
class Settings:
    """Every size and count the sections use; ``quick()`` is the smoke-test scale."""

    threads: int = 0
    skip_torch: bool = False
    # decode
    decode_images: tuple[str, ...] = ("kodim01", "kodim15", "kodim23")
    decode_crop: int = 0  # >0: centre crop of this size (quick mode)
    quality: float = 60
    effort: int = 4
    repeats: int = 7
    decode_codecs: tuple[str, ...] = ("jpeg-420", "webp", "avif")
    reencode: bool = False
    # batch
    batch_count: int = 8
    batch_size: int = 224
    batch_gaussians: tuple[int, ...] = (400, 1600)
    batch_iterations: int = 2000
    cuda_count: int = 256
    cuda_streams: int = 0  # 0: the module's default
    torch_iterations: int = 3
    # scaling
    scaling_image: str = "kodim23"
    scaling_crop: int = 0
    scaling_gaussians: tuple[int, ...] = (1000, 4000, 16000, 64000)
    scaling_sizes: tuple[tuple[int, int], ...] = ((128, 128), (256, 256), (512, 512), (768, 512), (1536, 1024))
    pixels_per_gaussian: float = 40.0
    scaling_iterations: int = 100
    scaling_repeats: int = 3
    # fit (fit_speed.measure keyword arguments; its defaults when empty)
    fit: dict[str, Any] = field(default_factory=dict)
    fit_crop: int = 0

    @classmethod
    def quick(cls, threads: int = 0, skip_torch: bool = False) -> "Settings":
        return cls(threads=threads, skip_torch=skip_torch, decode_images=("kodim23",), decode_crop=80,
                   effort=1, repeats=3, batch_count=2, batch_size=48, batch_gaussians=(40, 160),
                   batch_iterations=10, cuda_count=4, torch_iterations=2, scaling_crop=64,
                   scaling_gaussians=(50, 200), scaling_sizes=((32, 32), (64, 64)), scaling_iterations=200,
                   scaling_repeats=3,
                   fit=dict(gaussians=100, iterations=200, torch_iterations=2, torch_cap=2.0, targets=(20.0, 25.0),
                            render_counts=(100, 400), render_iterations=5, memory_gaussians=400,
                            memory_iterations=5), fit_crop=64)

