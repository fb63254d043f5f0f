"""The ``webdataset`` package, imported on demand, and the two things we use it for: reading the samples
of one tar shard and writing one.

``import webdataset`` also imports torch when it is installed (about 4 s and 300 MB per process, for
DataLoader base classes we never use). Processes this package owns (the engines' workers) import it with
torch hidden (0.3 s); anywhere else, e.g. a training process, it is imported normally so its classes
stay torch-compatible.
"""
from __future__ import annotations

import os
import re
import sys
import tarfile
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


class _CheckedTarInfo(tarfile.TarInfo):
    """Notes on the archive how its last header read went: ``tarfile`` ends the iteration silently not
    only at the end-of-archive marker (a zero block) but also where the file simply stops (a shard cut
    on a 512-byte boundary) or at a garbage header; only the first is a complete archive."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        at = tar.offset  # where this header starts
        try:
            info = super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            tar._splatcodec_damage = None  # type: ignore[attr-defined]  # the end-of-archive marker
            raise
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError):
            tar._splatcodec_damage = (  # type: ignore[attr-defined]
                f"truncated: the data ends at byte {at} without the end-of-archive marker")
            raise
        except tarfile.InvalidHeaderError as exc:
            tar._splatcodec_damage = f"damaged member header at byte {at} ({exc})"  # type: ignore[attr-defined]
            raise
        tar._splatcodec_damage = None  # type: ignore[attr-defined]
        return info


#: Entries webdataset's reader skips (its metadata convention): ``__name__`` files and folders.
_SKIP_META = re.compile(r"__[^/]*__($|/)")


def _tar_files(fileobj: BinaryIO, url: str) -> Iterator[dict[str, Any]]:
    """The regular files of a tar stream as webdataset's ``tar_file_iterator`` yields them, but an
    archive that does not end with its end-of-archive marker raises ``tarfile.ReadError`` (after
    the files before the damage) where tarfile and webdataset would just stop."""
    stream = tarfile.open(fileobj=fileobj, mode="r|*", tarinfo=_CheckedTarInfo)
    for info in stream:
        if not info.isreg() or info.name is None or _SKIP_META.match(info.name):
            continue
        data = stream.extractfile(info).read()
        yield {"fname": info.name, "data": data, "__url__": url}
        stream.members = []  # keep memory flat over a long shard
    damage = getattr(stream, "_splatcodec_damage", None)
    if damage is not None:
        raise tarfile.ReadError(damage)


def read_samples(fileobj: BinaryIO, url: str) -> Iterator[dict[str, Any]]:
    """The samples of a tar stream (any compression tarfile reads) in order: dicts of extension -> bytes
    plus ``__key__``. Keys and extensions keep their case. A damaged archive raises (a tarfile,
    OS, EOF or zlib error) after the samples before the damage: a cut inside a member, a cut on a
    member boundary (no end-of-archive marker; the sample being read then is not yielded, since its
    other entries may be lost), a garbage header."""
    tariterators = webdataset().tariterators
    for sample in tariterators.group_by_keys(_tar_files(fileobj, url), lcase=False):
        sample.pop("__url__", None)
        yield sample


def tar_writer(fileobj: BinaryIO, mtime: float) -> Any:
    """A webdataset TarWriter that stores bytes as they are (no encoding by extension), with a fixed
    mtime so the same input gives the same output bytes."""
    return webdataset().TarWriter(fileobj, encoder=False, mtime=mtime)
