"""Loads the compiled core, splatcodec._core, and turns its argument errors into ours."""
from __future__ import annotations

import functools
import importlib
import os
from types import ModuleType
from typing import Any, Callable, TypeVar

from .errors import InvalidInputError, NativeExtensionError

_BUILD_HINT = ("build it with `pip install -e .` (or `python setup.py build_ext --inplace`) from the "
               "splatcodec source tree; a C++17 compiler with OpenMP is needed")

T = TypeVar("T")

#: Most threads a call may ask for; more would only cost thread start-up.
MAX_THREADS = 1024


def check_threads(threads: Any) -> int:
    """Validates a ``threads`` argument (0 = all cores) and returns it as int."""
    if isinstance(threads, bool) or not isinstance(threads, int) or not 0 <= threads <= MAX_THREADS:
        raise InvalidInputError(f"threads must be an integer in 0..{MAX_THREADS} (0: all cores), got {threads!r}")
    return threads


def _prefer_passive_openmp_waits() -> None:
    # libgomp's default lets idle threads spin at every barrier; when the machine is busier than our
    # thread count (other processes, or fits running side by side), a spinning thread holds the core its
    # partner needs, and a fit was measured 14x slower. Passive waits cost microseconds per barrier. The
    # variable is read once, when libgomp loads with the extension, so it is set before that; a user's
    # own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@functools.lru_cache(maxsize=1)
def core() -> ModuleType:
    """The native module; raises NativeExtensionError with build instructions if it is missing."""
    _prefer_passive_openmp_waits()
    try:
        return importlib.import_module(f"{__package__}._core")
    except ImportError as exc:
        raise NativeExtensionError(f"splatcodec's native core is not available ({exc}); {_BUILD_HINT}") from exc


def call(function_name: str, *args: Any, **kwargs: Any) -> Any:
    """Calls core().<function_name>, mapping the core's ValueError to InvalidInputError."""
    function: Callable[..., Any] = getattr(core(), function_name)
    try:
        return function(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(str(exc)) from None
