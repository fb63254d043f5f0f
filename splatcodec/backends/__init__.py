"""Which renderer decodes: the native core, the numba fallback where the core is not built, or the GPU.

``render`` and ``decode`` go through :func:`render_packed`. With ``device="cuda"`` (or ``"auto"`` where
a GPU is usable; :func:`splatcodec._native.resolve_device`) it renders with ``splatcodec._core_cuda``.
On the CPU, by default it uses the native core and,
when that is missing (no compiler where splatcodec was installed, or a platform where the extension
fails to build), the numba renderer of ``splatcodec[numba]``, with a one-time ``RuntimeWarning``.
``SPLATCODEC_BACKEND=native|numba`` (read once, when the first render needs it) forces one. Fitting
and encoding always need the native core: they raise :class:`~splatcodec.errors.NativeExtensionError`
without it.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import warnings

import numpy as np

from .. import _native
from ..errors import NativeExtensionError

#: Environment variable forcing a renderer: "native", "numba", or "auto" (unset: native if built).
BACKEND_ENV = "SPLATCODEC_BACKEND"
BACKENDS = ("native", "numba")
_NUMBA_HINT = "pip install 'splatcodec[numba]' (or pip install numba)"


def _numba_installed() -> bool:
    return importlib.util.find_spec("numba") is not None


@functools.lru_cache(maxsize=1)
def backend() -> str:
    """The renderer in use: "native" or "numba" (see the module docstring for how it is chosen)."""
    forced = os.environ.get(BACKEND_ENV, "").strip().lower()
    if forced not in ("", "auto") + BACKENDS:
        raise NativeExtensionError(f"{BACKEND_ENV}={forced!r} is not one of auto, {', '.join(BACKENDS)}")
    if forced == "numba":
        if not _numba_installed():
            raise NativeExtensionError(f"{BACKEND_ENV}=numba but numba is not installed: {_NUMBA_HINT}")
        return "numba"
    if forced == "native":
        _native.core()  # raises NativeExtensionError with build instructions
        return "native"
    try:
        _native.core()
        return "native"
    except NativeExtensionError as exc:
        if not _numba_installed():
            raise NativeExtensionError(f"{exc}. To decode without it, {_NUMBA_HINT}") from exc
        warnings.warn(f"{exc}. Decoding with the numba renderer instead (slower; encoding still needs the "
                      f"native core; set {BACKEND_ENV}=numba to silence this)", RuntimeWarning, stacklevel=4)
        return "numba"


def render_packed(params: np.ndarray, width: int, height: int, threads: int = 0, *, uint8: bool = False,
                  max_entries: int = 0, max_work: float = 0.0, device: str = "cpu") -> np.ndarray:
    """Render packed (N, 5 + C) float32 Gaussians to float32 (height, width, C) on ``device`` ("cpu":
    with :func:`backend`; "cuda" / "auto": see the module docstring) (``uint8``: converted as
    :func:`splatcodec.render.to_uint8` does). The native modules check the budget (``max_entries`` tile
    entries, ``max_work`` evaluations; 0: none, see splatcodec.limits) before allocating and are
    cancellable (Ctrl-C, CancelToken); the numba renderer checks the same budget, counted the same
    way, but cannot be interrupted midway."""
    if device != "cpu" and _native.resolve_device(device) == "cuda":
        return _native.run("render_u8" if uint8 else "render", params, width, height, threads, device="cuda",
                           max_entries=max_entries, max_work=max_work)
    if backend() == "native":
        return _native.run("render_u8" if uint8 else "render", params, width, height, threads,
                           max_entries=max_entries, max_work=max_work)
    from ..render import to_uint8
    from . import numba_raster

    image = numba_raster.render(params, width, height, threads, max_entries=max_entries, max_work=max_work)
    return to_uint8(image) if uint8 else image
