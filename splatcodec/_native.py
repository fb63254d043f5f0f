"""Loads the compiled core, splatcodec._core, and turns its argument errors into ours."""
from __future__ import annotations

import functools
from types import ModuleType
from typing import Any, Callable, TypeVar

from .errors import InvalidInputError, NativeExtensionError

_BUILD_HINT = ("build it with `pip install -e .` (or `python setup.py build_ext --inplace`) from the "
               "splatcodec source tree; a C++17 compiler with OpenMP is needed")

T = TypeVar("T")


@functools.lru_cache(maxsize=1)
def core() -> ModuleType:
    """The native module; raises NativeExtensionError with build instructions if it is missing."""
    try:
        from . import _core  # type: ignore[attr-defined]
    except ImportError as exc:
        raise NativeExtensionError(f"splatcodec's native core is not available ({exc}); {_BUILD_HINT}") from exc
    return _core


def call(function_name: str, *args: Any, **kwargs: Any) -> Any:
    """Calls core().<function_name>, mapping the core's ValueError to InvalidInputError."""
    function: Callable[..., Any] = getattr(core(), function_name)
    try:
        return function(*args, **kwargs)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(str(exc)) from None
