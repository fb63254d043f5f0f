"""The codecs a rate-distortion run compares: a common interface, Pillow's formats, and splatcodec."""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

SPLAT = "splatcodec"


class Codec:
    """A codec under test: a name, a swept parameter with default values, encode and decode.

    Instances are pickled into worker processes, so they hold only plain data and import lazily.
    """

    # Subclasses are dataclasses that define these fields (no class-level defaults here: a dataclass
    # would take an inherited class attribute as a field default).
    name: str
    label: str
    param: str
    default_values: tuple[float, ...]
    #: Expensive encoders (fitting) are timed from a single encode instead of ``--repeats``.
    expensive_encode: bool = False

    def available(self) -> tuple[bool, str]:
        """Whether this codec can run here, and why not."""
        return True, ""

    def version(self) -> str:
        """Library versions; part of the cache key and of the JSON description."""
        return ""

    def settings(self) -> dict[str, Any]:
        """Fixed encoder options; part of the cache key and of the JSON description."""
        return {}

    def encode(self, image: np.ndarray, value: float) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        raise NotImplementedError

    def description(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.settings().items())
        return f"{self.label}; {self.version()}; swept over {self.param}" + (f"; {opts}" if opts else "")


@dataclass
class PillowCodec(Codec):
    """A format Pillow can write and read, with fixed options and a swept ``quality``."""

    name: str
    label: str
    format: str
    options: dict[str, Any]
    default_values: tuple[float, ...]
    version_fn: Callable[[], str] | None = field(default=None, repr=False)
    module: str | None = None  # plugin to import first (JPEG XL)
    param: str = "quality"

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["version_fn"] = None  # lambdas do not pickle; workers never need the version
        return state

    def _load_plugin(self) -> None:
        if self.module:
            importlib.import_module(self.module)

    def available(self) -> tuple[bool, str]:
        try:
            self._load_plugin()
        except ImportError as exc:
            return False, f"{self.module} not installed ({exc})"
        Image.init()
        if self.format not in Image.SAVE or self.format not in Image.OPEN:
            return False, f"this Pillow build cannot write and read {self.format}"
        return True, ""

    def version(self) -> str:
        import PIL

        extra = self.version_fn() if self.version_fn else ""
        return f"Pillow {PIL.__version__}" + (f", {extra}" if extra else "")

    def settings(self) -> dict[str, Any]:
        return dict(self.options)

    def encode(self, image: np.ndarray, value: float) -> bytes:
        self._load_plugin()
        buf = io.BytesIO()
        Image.fromarray(image).save(buf, format=self.format, quality=int(value), **self.options)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        self._load_plugin()
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))


@dataclass
class SplatCodec(Codec):
    """splatcodec through its public API: ``encode(image, **{param: value}, **kwargs)`` and ``decode``."""

    param: str = "quality"
    kwargs: dict[str, Any] = field(default_factory=dict)
    # On Kodak (codec of 2026-11-25) quality 18/40/60/80 gave about 0.07/0.20/0.54/1.36 bpp, nearly
    # independent of the image and geometric in quality, so these seven points span ~0.1-1.5 bpp.
    default_values: tuple[float, ...] = (26, 35, 44, 53, 62, 72, 82)
    name: str = SPLAT
    label: str = "splatcodec"
    expensive_encode: bool = True
    #: Pin the source digest used in the cache key (to summarise a finished run after the tree changed).
    source_digest: str | None = None

    def available(self) -> tuple[bool, str]:
        try:
            mod = importlib.import_module("splatcodec")
        except Exception as exc:  # a broken native extension must not stop the reference codecs
            return False, f"import splatcodec failed: {type(exc).__name__}: {exc}"
        missing = [f for f in ("encode", "decode") if not hasattr(mod, f)]
        if missing:
            return False, "splatcodec has no " + " / ".join(f"{f}()" for f in missing) + " yet"
        return True, ""

    def version(self) -> str:
        mod = importlib.import_module("splatcodec")
        return f"splatcodec {getattr(mod, '__version__', '?')} (source {self.source_digest or package_digest(mod)})"

    def settings(self) -> dict[str, Any]:
        return dict(self.kwargs)

    def encode(self, image: np.ndarray, value: float) -> bytes:
        import splatcodec

        value = int(value) if self.param == "num_gaussians" else float(value)
        data = splatcodec.encode(image, **{self.param: value}, **self.kwargs)
        return bytes(data)

    def decode(self, data: bytes) -> np.ndarray:
        import splatcodec

        return np.asarray(splatcodec.decode(data))


def package_digest(mod: Any) -> str:
    """Short hash of a package's source and native files, so a changed codec invalidates the cache."""
    h = hashlib.sha1()
    for base in getattr(mod, "__path__", []):
        for p in sorted(Path(base).rglob("*")):
            if p.suffix in {".py", ".so", ".pyd"} and "__pycache__" not in p.parts:
                h.update(str(p.relative_to(base)).encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _pil_feature(name: str) -> str:
    from PIL import features

    try:
        v = features.version(name)
    except ValueError:
        v = None
    return f"{name} {v}" if v else ""


def _avif_versions() -> str:
    try:
        from PIL import AvifImagePlugin

        return f"libavif {AvifImagePlugin._avif.libavif_version} ({AvifImagePlugin._avif.codec_versions()})"
    except Exception:
        return _pil_feature("avif")


def _dist_version(dist: str) -> str:
    try:
        return f"{dist} {importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return ""


def reference_codecs() -> list[Codec]:
    """The reference codecs and their default sweeps.

    Sweeps were chosen so that the mean over Kodak spans about 0.1-1.5 bpp (JPEG cannot go much below
    0.15 bpp, JPEG XL below ~0.15). Every encoder is pinned to one thread so timings compare per core.
    Settings aim at each codec's good practice, not its fastest mode: JPEG with optimised Huffman
    tables, WebP method 6, AVIF 4:4:4 (slightly better than 4:2:0 in RGB PSNR at equal bpp) at libaom
    speed 6 (Pillow's default; slower speeds cost several times the time), JPEG XL at effort 7 (default).
    """
    jpeg_q = (2, 5, 10, 15, 20, 30, 40, 55, 70, 80)
    return [
        PillowCodec("jpeg-420", "JPEG 4:2:0", "JPEG", {"subsampling": "4:2:0", "optimize": True},
                    jpeg_q, lambda: _pil_feature("libjpeg_turbo") or _pil_feature("jpg")),
        PillowCodec("jpeg-444", "JPEG 4:4:4", "JPEG", {"subsampling": "4:4:4", "optimize": True},
                    jpeg_q, lambda: _pil_feature("libjpeg_turbo") or _pil_feature("jpg")),
        PillowCodec("webp", "WebP", "WEBP", {"method": 6}, (0, 5, 10, 20, 30, 45, 60, 75, 85, 90),
                    lambda: _pil_feature("webp")),
        PillowCodec("avif", "AVIF 4:4:4", "AVIF", {"subsampling": "4:4:4", "speed": 6, "max_threads": 1},
                    (10, 20, 30, 40, 50, 55, 60, 65, 70, 75), _avif_versions),
        PillowCodec("jxl", "JPEG XL", "JXL", {"effort": 7, "num_threads": 1},
                    (1, 10, 20, 30, 40, 50, 60, 70, 80, 85), lambda: _dist_version("pillow-jxl-plugin"),
                    module="pillow_jxl"),
    ]

