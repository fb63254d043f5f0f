"""Loads the compiled cores, chooses the device a call runs on, and turns the cores' errors into ours.

The CPU core is built as several modules from the same sources (see setup.py): ``splatcodec._core``
(portable x86-64 baseline, or generic flags elsewhere) and, on x86-64, ``_core_x86_64_v3`` (AVX2, FMA)
and ``_core_x86_64_v4`` (AVX-512). :func:`core` returns the best one this CPU and OS support, as
``_core.cpu_features()`` reports them; ``SPLATCODEC_ISA=baseline|x86-64-v3|x86-64-v4`` (read once, when
the core is first needed) forces one; :func:`describe` says what was found.

Devices: every public call that fits or renders (``fit``, ``fit_batch``, ``render``, ``render_float``,
``encode``, ``encode_batch``, ``decode``, ``load``, ``save``; ``--device`` on the CLI) takes
``device="cpu" | "cuda" | "auto"`` and passes it here. :func:`resolve_device` turns it into "cpu" (the
core above) or "cuda" (``splatcodec._core_cuda``, the optional GPU module of docs/cuda.md, used only when
it imports and sees a GPU): "cuda" raises :class:`~splatcodec.errors.DeviceUnavailableError` saying
whether the module is not built or sees no device, "auto" takes the GPU when usable and the CPU
otherwise, anything else is an :class:`~splatcodec.errors.InvalidInputError`. :func:`call` and
:func:`run` take the resolved ``device``; both modules have the same signatures.
"""
from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import warnings
from types import ModuleType
from typing import Any, Callable, TypeVar

from .errors import DeviceError, DeviceUnavailableError, InvalidInputError, NativeExtensionError, SplatcodecError

_BUILD_HINT = ("build it with `pip install -e .` (or `python setup.py build_ext --inplace`) from the "
               "splatcodec source tree; a C++17 compiler with OpenMP is needed")

#: ISA levels the core can be built for, slowest first, and their modules.
ISA_MODULES = {"baseline": "_core", "x86-64-v3": "_core_x86_64_v3", "x86-64-v4": "_core_x86_64_v4"}
#: Environment variable forcing one ISA level ("auto" or unset: the best available).
ISA_ENV = "SPLATCODEC_ISA"

T = TypeVar("T")

#: Most threads a call may ask for; more would only cost thread start-up.
MAX_THREADS = 1024


def check_threads(threads: Any) -> int:
    """Validates a ``threads`` argument (0 = all cores) and returns it as int."""
    from .validation import check_int

    return check_int("threads (0: all cores)", threads, minimum=0, maximum=MAX_THREADS)


def _prefer_passive_openmp_waits() -> None:
    # libgomp's default lets idle threads spin at every barrier; when the machine is busier than our
    # thread count (other processes, or fits running side by side), a spinning thread holds the core its
    # partner needs, and a fit was measured 14x slower. Passive waits cost microseconds per barrier. The
    # variable is read once, when libgomp loads with the extension, so it is set before that; a user's
    # own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _baseline() -> ModuleType:
    _prefer_passive_openmp_waits()
    try:
        return importlib.import_module(f"{__package__}._core")
    except ImportError as exc:
        raise NativeExtensionError(f"splatcodec's native core is not available ({exc}); {_BUILD_HINT}") from exc


def _variant(base: ModuleType, level: str) -> tuple[ModuleType | None, str]:
    """(the ``level`` module, "ok"), or (None, why it cannot be used). A variant is imported only once the
    CPU is known to support it: its start-up code may already use the instructions it was built for."""
    name = f"{__package__}.{ISA_MODULES[level]}"
    if level not in getattr(base, "ISA_VARIANTS", ()):
        if importlib.util.find_spec(name) is None:
            return None, "not built"
        return None, f"not built with this {base.__name__} (a leftover of another build; rebuild to use it)"
    features = base.cpu_features() if hasattr(base, "cpu_features") else {}
    if not features.get(level, False):
        return None, "not supported by this CPU or OS"
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        return None, f"not loadable ({exc})"
    if getattr(module, "BUILD_ID", None) != base.BUILD_ID:
        return None, (f"from another build than {base.__name__} ({getattr(module, 'BUILD_ID', None)} vs "
                      f"{base.BUILD_ID}; rebuild)")
    return module, "ok"


@functools.lru_cache(maxsize=1)
def core() -> ModuleType:
    """The native module to use: the fastest built one this CPU supports, or the one ``SPLATCODEC_ISA``
    names. Raises NativeExtensionError with build instructions if it is missing."""
    base = _baseline()
    forced = os.environ.get(ISA_ENV, "").strip().lower()
    if forced in ("", "auto"):
        for level in reversed(list(ISA_MODULES)[1:]):
            module, status = _variant(base, level)
            if module is not None:
                return module
            if status.startswith(("not loadable", "from another build")):  # built for this CPU, but broken
                warnings.warn(f"splatcodec.{ISA_MODULES[level]} is {status}; using a slower core",
                              RuntimeWarning, stacklevel=2)
        return base
    if forced not in ISA_MODULES:
        raise NativeExtensionError(f"{ISA_ENV}={forced!r} is not one of auto, {', '.join(ISA_MODULES)}")
    if forced == "baseline":
        return base
    module, status = _variant(base, forced)
    if module is None:
        raise NativeExtensionError(f"{ISA_ENV}={forced}: splatcodec.{ISA_MODULES[forced]} is {status}")
    return module


def isa() -> str:
    """The ISA level of the module :func:`core` uses: "baseline", "x86-64-v3", "x86-64-v4", or "native"
    (a ``SPLATCODEC_NATIVE_ARCH=1`` build)."""
    return str(getattr(core(), "ISA", "baseline"))


def isa_report() -> dict[str, str]:
    """{ISA level: "loaded", "ok" (usable, not loaded) or why it cannot be used}, for diagnostics."""
    base = _baseline()
    loaded = isa()
    report = {}
    for level in ISA_MODULES:
        status = "ok" if level == "baseline" else _variant(base, level)[1]
        report[level] = "loaded" if status == "ok" and level == loaded else status
    if loaded == "native":
        report["baseline"] = "loaded (built with -march=native)"
    return report


# ---------------------------------------------------------------------------------------- devices
#: What ``device=`` accepts: the CPU core, the CUDA module on a GPU, or the GPU when usable else the CPU.
DEVICES = ("cpu", "cuda", "auto")
#: The optional CUDA module (built with SPLATCODEC_CUDA=1, see docs/cuda.md).
CUDA_MODULE = "_core_cuda"
_CUDA_BUILD_HINT = ("build it where the CUDA toolkit (nvcc) is installed with `SPLATCODEC_CUDA=1 pip install -e .` "
                    "(or `python src_cuda/cuda_build.py`), see docs/cuda.md")


@functools.lru_cache(maxsize=1)
def cuda_status() -> tuple[ModuleType | None, str]:
    """(``splatcodec._core_cuda``, "ok (N devices)") when it imports and sees a GPU, else (None, why not).
    Probed once per process (a GPU does not appear while a process runs)."""
    name = f"{__package__}.{CUDA_MODULE}"
    if importlib.util.find_spec(name) is None:
        return None, f"{name} is not built; {_CUDA_BUILD_HINT}"
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        return None, f"{name} is built but does not load ({exc}); rebuild it, see docs/cuda.md"
    try:
        count = int(module.device_count())
    except RuntimeError as exc:  # pragma: no cover - device_count() returns 0 on driver errors
        return None, f"{name} is built but cannot query the GPUs ({exc})"
    if count <= 0:
        return None, (f"{name} is built but sees no CUDA device (no NVIDIA GPU or driver visible to this "
                      "process); use device='cpu' or 'auto'")
    return module, f"ok ({count} device{'s' if count > 1 else ''})"


def check_device(device: Any) -> str:
    """``device`` if it is one of :data:`DEVICES`, else :class:`InvalidInputError`."""
    if not isinstance(device, str) or device not in DEVICES:
        raise InvalidInputError(f"device must be one of {', '.join(map(repr, DEVICES))}, got {device!r}")
    return device


def resolve_device(device: Any) -> str:
    """The device a call with ``device=`` runs on: "cpu" or "cuda" (see the module docstring). Raises
    InvalidInputError for an unknown name and DeviceUnavailableError when "cuda" cannot be used."""
    device = check_device(device)
    if device == "cpu":
        return "cpu"
    module, why = cuda_status()
    if module is not None:
        return "cuda"
    if device == "auto":
        return "cpu"
    raise DeviceUnavailableError(f"device='cuda' is not available: {why}")


def module_for(device: str) -> ModuleType:
    """The native module running ``device``'s calls: :func:`core`, or ``splatcodec._core_cuda``."""
    if resolve_device(device) == "cpu":
        return core()
    module = cuda_status()[0]
    assert module is not None
    return module


def call(function_name: str, *args: Any, device: str = "cpu", **kwargs: Any) -> Any:
    """Calls <module>.<function_name> of ``device``'s module (:func:`module_for`), mapping its ValueError
    to InvalidInputError (the modules raise our LimitExceededError and CancelledError themselves, and
    MemoryError for host memory failures) and a CUDA failure (RuntimeError) to DeviceError."""
    on_gpu = resolve_device(device) == "cuda"
    function: Callable[..., Any] = getattr(module_for(device), function_name)
    try:
        return function(*args, **kwargs)
    except SplatcodecError:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(str(exc)) from None
    except RuntimeError as exc:
        if not on_gpu:
            raise
        raise DeviceError(f"CUDA error in {function_name}: {exc}") from exc


def run(function_name: str, *args: Any, device: str = "cpu", **kwargs: Any) -> Any:
    """:func:`call` for long calls (fits, renders): with a fresh per-call cancel token, stoppable by
    Ctrl-C on the main thread and by the caller's :class:`~splatcodec.CancelToken`
    (see :mod:`splatcodec.cancellation`)."""
    from .cancellation import run_cancellable

    fresh = module_for(device).CancelToken()  # the CUDA module shares the CPU core's CancelToken type
    return run_cancellable(lambda token: call(function_name, *args, device=device, cancel=token, **kwargs), fresh)


def describe() -> str:
    """Which native module is used and why the others are not, as lines of text::

        python -c "from splatcodec import _native; print(_native.describe())"
    """
    module = core()
    lines = [f"splatcodec native core: {module.__name__} ({isa()}, {module.SIMD_LANES}-float SIMD)"]
    lines += [f"  {level:10} {status}" for level, status in isa_report().items()]
    features = getattr(_baseline(), "cpu_features", dict)()
    lines.append("  cpu: " + " ".join(name for name, has in features.items() if has and not name.startswith("x86-64")))
    lines.append(f"  cuda: {cuda_status()[1]}")
    return "\n".join(lines)
