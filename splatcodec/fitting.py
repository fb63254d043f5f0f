"""Fitting Gaussians to images (encoding's expensive half). The loop runs in the native core."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence, overload

import numpy as np

from . import _native
from .errors import InvalidInputError
from .images import MAX_IMAGE_PIXELS, to_float_image
from .splats import Splats

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

    def native_config(self, image_shape: tuple[int, int, int], threads: int) -> Any:
        core = _native.core()
        config = core.FitConfig()
        init_is_given = isinstance(self.init, Splats)
        if not init_is_given and self.init not in ("adaptive", "grid", "random"):
            raise InvalidInputError(f"init must be 'adaptive', 'grid', 'random' or Splats, got {self.init!r}")
        count = self.init.num_gaussians if init_is_given else self.num_gaussians
        _check_int("num_gaussians", count, minimum=1)
        _check_int("iterations", self.iterations, minimum=0)
        _check_int("seed", self.seed, minimum=0)
        _check_int("prune_every", self.prune_every, minimum=0)
        if self.target_psnr is not None and not (np.isfinite(self.target_psnr) and self.target_psnr > 0):
            raise InvalidInputError(f"target_psnr must be a positive number of dB, got {self.target_psnr!r}")
        if not (np.isfinite(self.lr_scale) and self.lr_scale > 0):
            raise InvalidInputError(f"lr_scale must be positive, got {self.lr_scale!r}")
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
        return config


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _interruptible(call: Callable[[], Any]) -> Any:
    """Runs a long native call so that Ctrl-C stops it.

    The native loop runs without the GIL, so Python's SIGINT handler could only run after it returns.
    On the main thread the call runs in a worker while the main thread waits in short joins; a
    KeyboardInterrupt then asks the core to cancel (it stops at its next iteration) and is re-raised.
    """
    if threading.current_thread() is not threading.main_thread():
        return call()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=work, name="splatcodec-fit", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.05)
    except KeyboardInterrupt:
        # Repeated, because a batch re-arms the core when it starts: the worker may not be there yet.
        while worker.is_alive():
            _native.core().cancel_fits()
            worker.join(0.05)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


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
        max_pixels: int | None = MAX_IMAGE_PIXELS, **options: Any) -> Splats | FitResult:
    """Fits ``num_gaussians`` Gaussians to ``image``.

    Args:
        image: HxW or HxWxC uint8/uint16/float array or a PIL image; 1 or 3 channels. Floats are taken
            as they are (image units, normally [0, 1]; any finite values, e.g. a residual, are fine).
        num_gaussians: Gaussians to start with (pruning may end with fewer); at most the pixel count.
        iterations: optimisation steps at most.
        target_psnr: stop as soon as the training PSNR (dB, float image) reaches this.
        seed: seeds random initialisation (the fit is deterministic for a given seed and input, and
            independent of ``threads``).
        threads: CPU threads (0: all cores).
        return_stats: return a :class:`FitResult` (splats + :class:`FitStats`) instead of Splats.
        options: any :class:`FitOptions` field, e.g. ``init='grid'``, ``init=<Splats>`` to continue
            from given Gaussians, ``lr_scale``, ``prune_threshold``, ``densify``.
    """
    results = fit_batch([image], num_gaussians, iterations, target_psnr=target_psnr, seed=seed,
                        threads=threads, return_stats=True, max_pixels=max_pixels, **options)
    result = results[0]
    assert isinstance(result, FitResult)
    return result if return_stats else result.splats


def fit_batch(images: Sequence[Any], num_gaussians: int = 10000, iterations: int = 2000, *,
              target_psnr: float | None = None, seed: int = 0, threads: int = 0, return_stats: bool = False,
              max_pixels: int | None = MAX_IMAGE_PIXELS, **options: Any) -> list[Splats] | list[FitResult]:
    """Fits every image (sizes may differ) in one native call, in parallel across images and tiles.

    Takes the same arguments as :func:`fit`; returns a list in input order.
    """
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    if not isinstance(images, Sequence) or isinstance(images, (str, bytes)):
        raise InvalidInputError("fit_batch expects a sequence of images")
    threads = _native.check_threads(threads)
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
    raw = _interruptible(lambda: _native.call("fit_batch", arrays, configs, inits, threads))
    results = []
    for array, (params, stats) in zip(arrays, raw):
        splats = Splats.from_packed(params, array.shape[1], array.shape[0])
        fit_result = FitResult(splats, FitStats(**stats))
        results.append(fit_result if return_stats else splats)
    return results
