"""The ``webdataset`` package, imported on demand, and the two things we use it for: reading the samples
of one tar shard and writing one.

``import webdataset`` also imports torch when it is installed (about 4 s and 300 MB per process, for
DataLoader base classes we never use). Processes this package owns (the engines' workers) import it with
torch hidden (0.3 s); anywhere else, e.g. a training process, it is imported normally so its classes
stay torch-compatible.
"""
from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any, BinaryIO, Iterator

from ..errors import SplatcodecError

#: Set in the engines' worker processes: import webdataset without torch there.
OWNED_PROCESS_ENV = "SPLATCODEC_DATASET_WORKER"


class MissingDependencyError(SplatcodecError, ImportError):
    """An optional dependency (webdataset, ray) is not installed."""


def webdataset() -> ModuleType:
    """The webdataset module (:class:`MissingDependencyError` with what to install if it is missing)."""
    if "webdataset" in sys.modules:
        return sys.modules["webdataset"]
    hide_torch = os.environ.get(OWNED_PROCESS_ENV) == "1" and "torch" not in sys.modules
    try:
        if hide_torch:
            sys.modules["torch"] = None  # type: ignore[assignment]  # its `import torch` falls back to stubs
        try:
            import webdataset as wds
        finally:
            if hide_torch:
                del sys.modules["torch"]
    except ImportError as exc:
        raise MissingDependencyError(
            f"dataset shards need the webdataset package ({exc}): pip install 'splatcodec[datasets]'") from None
    return wds


def read_samples(fileobj: BinaryIO, url: str) -> Iterator[dict[str, Any]]:
    """The samples of a tar stream (any compression tarfile reads) in order: dicts of extension -> bytes
    plus ``__key__``. Keys and extensions keep their case. Raises on a damaged archive."""
    tariterators = webdataset().tariterators
    files = ({**entry, "__url__": url} for entry in tariterators.tar_file_iterator(fileobj))
    for sample in tariterators.group_by_keys(files, lcase=False):
        sample.pop("__url__", None)
        yield sample


def tar_writer(fileobj: BinaryIO, mtime: float) -> Any:
    """A webdataset TarWriter that stores bytes as they are (no encoding by extension), with a fixed
    mtime so the same input gives the same output bytes."""
    return webdataset().TarWriter(fileobj, encoder=False, mtime=mtime)
