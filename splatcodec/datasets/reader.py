"""Reading encoded shards back: :func:`iter_gsplat` and a ``webdataset`` decode handler."""
from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal

from ..errors import InvalidInputError
from . import _wds
from .shard import GSPLAT_EXT, ShardError

Decode = Literal["splats", "bytes", "image"]


def shard_paths(shards: str | os.PathLike | Iterable[str | os.PathLike]) -> list[str]:
    """Expand ``shards``: a ``.tar`` path, a folder (its ``*.tar``, sorted), a brace pattern
    (``out/{00000000..00000009}.tar``) or an iterable of those."""
    if isinstance(shards, (str, os.PathLike)):
        text = os.fspath(shards)
        if os.path.isdir(text):
            return sorted(str(p) for p in Path(text).iterdir() if p.is_file() and p.name.endswith(".tar"))
        if "{" in text:
            import braceexpand  # a webdataset dependency

            return list(braceexpand.braceexpand(text))
        return [text]
    out: list[str] = []
    for item in shards:
        out.extend(shard_paths(item))
    return out


def _decoder(decode: Decode, max_gaussians: int | None, priors: Any) -> Callable[[bytes], Any]:
    from ..codec import api
    from ..codec.priors import load

    if priors is not None:
        priors = load(priors)  # once (a bad file fails here), shared by every sample
    if decode == "bytes":
        return bytes
    if decode == "splats":
        return lambda data: api.decode_splats(data, max_gaussians=max_gaussians, priors=priors)
    if decode == "image":
        return lambda data: api.decode(data, max_gaussians=max_gaussians, priors=priors)
    raise InvalidInputError(f"decode must be 'splats', 'bytes' or 'image', got {decode!r}")


def iter_gsplat(shards: str | os.PathLike | Iterable[str | os.PathLike], *, decode: Decode = "splats",
                max_gaussians: int | None = None, worker: tuple[int, int] | None = None,
                priors: Any = None) -> Iterator[tuple[str, Any, dict[str, bytes]]]:
    """Stream the samples of encoded shards as ``(key, value, other_entries)``.

    ``value`` is the ``.gsplat`` entry as :class:`~splatcodec.Splats` (``decode="splats"``, default), raw
    bytes (``"bytes"``) or a decoded uint8 image (``"image"``); ``max_gaussians`` keeps a progressive
    prefix; ``priors``: the dataset priors (path, bytes or ``Priors``) the shards were encoded with
    (``encode-dataset --priors``), if any. ``other_entries`` maps each other entry's extension
    (``"txt"``, ``"json"``, a kept ``"jpg"``) to its bytes, unchanged. Samples without a ``.gsplat``
    entry are skipped. ``worker=(i, n)`` reads only every n-th shard starting at i (e.g. a DataLoader
    worker's share). Samples stream: a damaged ``.gsplat`` raises :class:`~splatcodec.FormatError` when
    reached; a missing, unreadable or damaged shard (cut inside a member or on a member boundary, a
    garbage header) :class:`~splatcodec.datasets.ShardError` after the samples before the damage were
    yielded (not the one being read when the data ends: its other entries may be the lost ones).
    """
    convert = _decoder(decode, max_gaussians, priors)
    paths = shard_paths(shards)
    if worker is not None:
        index, count = worker
        if not (isinstance(index, int) and isinstance(count, int) and 0 <= index < count):
            raise InvalidInputError(f"worker must be (index, count) with 0 <= index < count, got {worker!r}")
        paths = paths[index::count]
    for path in paths:
        for sample in _read(path):
            data = sample.pop(GSPLAT_EXT, None)
            if data is None:
                continue
            key = sample.pop("__key__")
            yield key, convert(data), {k: v for k, v in sample.items() if not k.startswith("__")}


def _read(path: str) -> Iterator[dict[str, Any]]:
    """The samples of one shard; a missing, unreadable or damaged shard is a :class:`ShardError`."""
    try:
        with open(path, "rb") as fh:
            yield from _wds.read_samples(fh, path)
    except (OSError, EOFError, tarfile.TarError, zlib.error) as exc:
        raise ShardError(f"{path}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}") from None


def gsplat_handler(decode: Decode = "splats", max_gaussians: int | None = None,
                   priors: Any = None) -> Callable[[str, bytes], Any]:
    """A decode handler for ``webdataset.WebDataset(...).decode(handler)``: turns ``.gsplat`` entries
    into Splats / an image (other entries are left to the next handlers); ``priors`` as for
    :func:`iter_gsplat`."""
    convert = _decoder(decode, max_gaussians, priors)

    def handler(key: str, data: bytes) -> Any:
        return convert(data) if key.rsplit(".", 1)[-1].lower() == GSPLAT_EXT else None

    return handler
