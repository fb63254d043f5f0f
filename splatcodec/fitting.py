"""Fitting Gaussians to images (encoding's expensive half). The loop runs in the native core."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Sequence, overload

import numpy as np

from . import _native
from .errors import InvalidInputError
from .images import to_float_image
from .limits import DEFAULT_MAX_PIXELS, Limits
from .splats import Splats
from .validation import check_int, check_number

#: Largest ``target_psnr`` (dB): an exact fit reports 99 dB, so a higher target can never be reached.
MAX_TARGET_PSNR = 99.0

InitName = Literal["adaptive", "grid", "random"]


@dataclass(frozen=True)
class FitStats:
    """What a fit did. PSNRs are of the float render against the float image (data range 1)."""

    iterations: int
    final_psnr: float
    seconds: float
    gaussians_initial: int
    gaussians_final: int
    gaussians_pruned: int
    gaussians_added: int
    reached_target: bool
    trace_iterations: list[int] = field(default_factory=list)
    trace_psnr: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class FitResult:
    """Fitted Gaussians and the statistics of the fit."""

    splats: Splats
    stats: FitStats


@dataclass
class FitOptions:
    """Every knob of a fit. ``fit``'s keyword arguments set these; defaults are the tuned ones.

    Learning rates are Adam step sizes in pixels (xy, chol) and colour units, decaying exponentially to
    ``lr * lr_final_ratio``; ``lr_scale`` multiplies all three (small values refine a given ``init``).
    A learning rate of 0 freezes its group, e.g. ``lr_xy=0, lr_chol=0`` refits only the colours.
    Pruning drops Gaussians with BT.709 luma of |colour| under ``prune_threshold`` every
    ``prune_every`` iterations until ``prune_until`` of the run; with ``densify`` the freed budget is
    refilled where the error is largest.
    """

    num_gaussians: int = 10000
    iterations: int = 2000
    target_psnr: float | None = None
    seed: int = 0
    init: InitName | Splats = "adaptive"
    init_scale: float = 1.0
    adaptive_uniformity: float = 0.01
    lr_xy: float = 0.2
    lr_chol: float = 0.1
    lr_color: float = 0.01
    lr_final_ratio: float = 0.3
    lr_scale: float = 1.0
    l1_color: float = 0.0
    min_chol: float = 0.3
    prune_every: int = 0
    prune_threshold: float = 0.0
    prune_until: float = 0.7
    densify: bool = False

    def check(self) -> None:
        """Refuses a malformed option (:class:`InvalidInputError`); the core checks the ranges."""
        init_is_given = isinstance(self.init, Splats)
        if not init_is_given and self.init not in ("adaptive", "grid", "random"):
            raise InvalidInputError(f"init must be 'adaptive', 'grid', 'random' or Splats, got {self.init!r}")
        count = self.init.num_gaussians if init_is_given else self.num_gaussians
        check_int("num_gaussians", count, minimum=1)
        check_int("iterations", self.iterations, minimum=0, maximum=2**31 - 1)
        check_int("seed", self.seed, minimum=0)
        check_int("prune_every", self.prune_every, minimum=0, maximum=2**31 - 1)
        if self.target_psnr is not None:
            check_number("target_psnr (dB)", self.target_psnr, positive=True, maximum=MAX_TARGET_PSNR)
        check_number("lr_scale", self.lr_scale, positive=True)
        for name in ("init_scale", "adaptive_uniformity", "lr_xy", "lr_chol", "lr_color", "lr_final_ratio",
                     "l1_color", "min_chol", "prune_threshold", "prune_until"):
            check_number(name, getattr(self, name))  # finite numbers; the core checks the ranges
        if not isinstance(self.densify, (bool, np.bool_)):
            raise InvalidInputError(f"densify must be True or False, got {self.densify!r}")

    def native_config(self, image_shape: tuple[int, int, int], threads: int) -> Any:
        self.check()
        core = _native.core()
        config = core.FitConfig()
        init_is_given = isinstance(self.init, Splats)
        count = self.init.num_gaussians if init_is_given else self.num_gaussians
        config.num_gaussians = int(count)
        config.iterations = int(self.iterations)
        config.target_psnr = float(self.target_psnr or 0.0)
        config.seed = int(self.seed) % (1 << 64)
        config.init = core.InitMode.given if init_is_given else getattr(core.InitMode, self.init)
        config.init_scale = float(self.init_scale)
        config.adaptive_uniformity = float(self.adaptive_uniformity)
        config.lr_xy = float(self.lr_xy * self.lr_scale)
        config.lr_chol = float(self.lr_chol * self.lr_scale)
        config.lr_color = float(self.lr_color * self.lr_scale)
        config.lr_final_ratio = float(self.lr_final_ratio)
        config.l1_color = float(self.l1_color)
        config.min_chol = float(self.min_chol)
        config.prune_every = int(self.prune_every)
        config.prune_threshold = float(self.prune_threshold)
        config.prune_until = float(self.prune_until)
        config.densify = bool(self.densify)
        config.threads = int(threads)
        if init_is_given:
            height, width, channels = image_shape
            init = self.init
            if (init.width, init.height) != (width, height) or init.channels != channels:
                raise InvalidInputError(
                    f"init Splats are for a {init.width}x{init.height}x{init.channels} image, "
                    f"the image is {width}x{height}x{channels}")
            if not all(np.isfinite(a).all() for a in (init.xy, init.chol, init.color)):
                raise InvalidInputError("init Splats hold NaN or infinite values")
        return config


def _make_options(kwargs: dict[str, Any]) -> FitOptions:
    try:
        return FitOptions(**kwargs)
    except TypeError as exc:
        raise InvalidInputError(f"unknown fit option: {exc}") from None


@overload
def fit(image: Any, num_gaussians: int = ..., iterations: int = ..., *, return_stats: Literal[False] = ...,
        **options: Any) -> Splats: ...
@overload
def fit(image: Any, num_gaussians: int = ..., iterations: int = ..., *, return_stats: Literal[True],
        **options: Any) -> FitResult: ...


def fit(image: Any, num_gaussians: int = 10000, iterations: int = 2000, *, target_psnr: float | None = None,
        seed: int = 0, threads: int = 0, return_stats: bool = False,
        max_pixels: int | None = DEFAULT_MAX_PIXELS, device: str = "cpu", **options: Any) -> Splats | FitResult:
    """Fits ``num_gaussians`` Gaussians to ``image``.

    Args:
        image: an array or PIL image, as :mod:`splatcodec.images` describes (the same inputs as
            :func:`splatcodec.encode`). Floats are taken as they are (image units, normally [0, 1];
            any finite values, e.g. a residual, are fine).
        num_gaussians: Gaussians to start with (pruning may end with fewer); at most the pixel count.
        iterations: optimisation steps at most.
        target_psnr: stop as soon as the training PSNR (dB, float image) reaches this.
        seed: seeds random initialisation (the fit is deterministic for a given seed and input, and
            independent of ``threads``).
        threads: CPU threads (0: all cores); on the GPU, images fitted concurrently (0: up to 4).
        device: "cpu" (default), "cuda" (the GPU: :class:`~splatcodec.DeviceUnavailableError` when
            ``splatcodec._core_cuda`` is not built or sees no GPU) or "auto" (the GPU when usable,
            else the CPU). What the GPU fitter supports: docs/cuda.md (options it refuses raise
            :class:`~splatcodec.InvalidInputError`).
        max_pixels: the pixel limit of the image; with the render budget of :mod:`splatcodec.limits`
            (applied to every iteration, e.g. to a given ``init``); ``None`` lifts them.
        return_stats: return a :class:`FitResult` (splats + :class:`FitStats`) instead of Splats.
        options: any :class:`FitOptions` field, e.g. ``init='grid'``, ``init=<Splats>`` to continue
            from given Gaussians, ``lr_scale``, ``prune_threshold``, ``densify``.
    """
    results = fit_batch([image], num_gaussians, iterations, target_psnr=target_psnr, seed=seed,
                        threads=threads, return_stats=True, max_pixels=max_pixels, device=device, **options)
    result = results[0]
    assert isinstance(result, FitResult)
    return result if return_stats else result.splats


def fit_batch(images: Sequence[Any], num_gaussians: int = 10000, iterations: int = 2000, *,
              target_psnr: float | None = None, seed: int = 0, threads: int = 0, return_stats: bool = False,
              max_pixels: int | None = DEFAULT_MAX_PIXELS, device: str = "cpu",
              **options: Any) -> list[Splats] | list[FitResult]:
    """Fits every image (sizes may differ) in one native call, in parallel across images and tiles.

    Takes the same arguments as :func:`fit`; returns a list in input order. Ctrl-C (main thread) or
    a :class:`~splatcodec.CancelToken` stops every fit of the call.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if not isinstance(images, Sequence) or isinstance(images, (str, bytes)):
        raise InvalidInputError("fit_batch expects a sequence of images")
    device = _native.resolve_device(device)
    threads = _native.check_threads(threads)
    budget = Limits.for_decode(max_pixels=max_pixels, gaussian_limit=None).native_budget()
    opts = _make_options(dict(options, num_gaussians=num_gaussians, iterations=iterations,
                              target_psnr=target_psnr, seed=seed))
    arrays = [to_float_image(img, max_pixels=max_pixels) for img in images]
    configs = []
    inits = []
    for array in arrays:
        if array.shape[0] * array.shape[1] < (opts.init.num_gaussians if isinstance(opts.init, Splats)
                                              else opts.num_gaussians):
            raise InvalidInputError(f"num_gaussians ({opts.num_gaussians}) exceeds the pixel count of a "
                                    f"{array.shape[1]}x{array.shape[0]} image")
        configs.append(opts.native_config(array.shape, threads))
        inits.append(opts.init.packed() if isinstance(opts.init, Splats) else None)
    if not arrays:
        return []
    raw = _native.run("fit_batch", arrays, configs, inits, threads, device=device, **budget)
    results = []
    for array, (params, stats) in zip(arrays, raw):
        splats = Splats.from_packed(params, array.shape[1], array.shape[0])
        fit_result = FitResult(splats, FitStats(**stats))
        results.append(fit_result if return_stats else splats)
    return results
