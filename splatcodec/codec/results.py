"""The named results of the public codec calls: :class:`EncodeStats` (``encode``) and
:class:`GsplatInfo` (``info``).

Their own module so that every producer (``encoder``, ``batch``, ``decoder``) and the public
``api`` can import them without importing each other.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class EncodeStats:
    """What :func:`encode` did (``encode(..., return_stats=True)``)."""

    num_gaussians: int
    bytes: int
    bpp: float
    psnr: float
    seconds: float
    bits_per_gaussian: dict[str, float]
    attempts: list[tuple[int, int, float]] = field(default_factory=list)  # (N, bytes, psnr) per fit


@dataclass
class GsplatInfo:
    """Facts about a ``.gsplat`` stream, from :func:`info` (header only unless ``coded_bits=True``,
    which fills ``bits_per_gaussian``; no pixels are ever rendered)."""

    version: str
    width: int
    height: int
    channels: int
    num_gaussians: int
    bytes: int
    bpp: float
    bit_depths: dict[str, Any]
    progressive_groups: list[int]
    bits_per_gaussian: dict[str, float] | None
    sections: dict[str, int]
    metadata_keys: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON-ready)."""
        return asdict(self)


__all__ = ["EncodeStats", "GsplatInfo"]
