"""Encoding one shard: :func:`encode_shard`, the unit of work every engine runs.

An output shard holds the input's samples in order, each with a ``.gsplat`` entry instead of its image
(with ``keep``: beside it) and every other entry unchanged. Samples whose image cannot be encoded are
left out of the output and listed with the reason in the shard's ``_stats.json``. The shard and then
its stats are written under temporary names and renamed into place, so an output shard with its
stats file is complete, and a crash leaves only temporary files (removed by the next run).
"""
from __future__ import annotations

import inspect
import json
import os
import shutil
import socket
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..codec.batch import iter_encode
from ..codec.container import DEFAULT_MAX_PIXELS
from ..codec.priors import Priors
from ..codec.priors import load as load_priors
from ..errors import InvalidInputError, SplatcodecError
from . import _wds
from .images import decode_image_sized, image_entry

#: Marks, in a sample being encoded, that its image was downscaled (``resize_longest``).
RESIZED = "__resized__"
#: The entry each encoded image is stored under.
GSPLAT_EXT = "gsplat"
STATS_SUFFIX = "_stats.json"
PARTIAL_SUFFIX = ".partial"
#: Per-shard sidecars of img2dataset copied unchanged (its ``_stats.json`` is kept inside ours as
#: ``input_stats``).
SIDECARS = (".parquet",)


class ShardError(SplatcodecError):
    """A whole shard could not be processed (unreadable or damaged input, unwritable output)."""


@dataclass
class FolderShard:
    """A shard cut from a folder of images: (key, file path) pairs, in order."""

    files: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)


def priors_sha256(priors: Priors) -> str:
    """How stats name dataset priors: the SHA-256 (hex) of their serialization (a .gsplat file that
    uses them names them by the first 4 bytes of it)."""
    return priors.digest().hex()


def stats_path(output: str | os.PathLike) -> Path:
    """Where the stats of the output shard ``output`` go: ``00000000.tar`` -> ``00000000_stats.json``."""
    out = Path(output)
    return out.with_name(out.name.split(".", 1)[0] + STATS_SUFFIX)


def partial_paths(output: str | os.PathLike) -> tuple[Path, Path]:
    """The temporary names of an output shard and its stats while they are written (hidden files)."""
    out, stats = Path(output), stats_path(output)
    return (out.with_name("." + out.name + PARTIAL_SUFFIX), stats.with_name("." + stats.name + PARTIAL_SUFFIX))


def is_done(output: str | os.PathLike) -> bool:
    """An output shard is finished when it and its stats file (renamed last) both exist."""
    return Path(output).is_file() and stats_path(output).is_file()


def _encode_option_names() -> set[str]:
    from ..codec.api import encode

    return set(inspect.signature(encode).parameters) - {"image", "threads", "return_stats", "progress", "metadata"}


def _samples(source: str | os.PathLike | FolderShard) -> Iterator[dict[str, Any]]:
    if isinstance(source, FolderShard):
        for key, path in source.files:
            ext = Path(path).suffix.lstrip(".") or "img"
            try:
                with open(path, "rb") as fh:
                    yield {"__key__": key, ext: fh.read()}
            except OSError as exc:  # one unreadable file is one failed sample
                yield {"__key__": key, "__error__": f"cannot read {path}: {exc.strerror or exc}"}
        return
    with open(source, "rb") as fh:
        yield from _wds.read_samples(fh, os.fspath(source))


def _mtime(source: str | os.PathLike | FolderShard) -> float:
    if isinstance(source, FolderShard):
        return max((os.stat(p).st_mtime for _, p in source.files if os.path.exists(p)), default=0.0) // 1
    return os.stat(source).st_mtime // 1


def encode_shard(source: str | os.PathLike | FolderShard, output: str | os.PathLike, *, keep: bool = False,
                 resize_longest: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS, threads: int = 0,
                 on_sample: Callable[[bool], None] | None = None, **encode_options: Any) -> dict[str, Any]:
    """Encode every sample's image of one shard into ``output`` (a WebDataset tar) and its stats file.

    Args:
        source: an input tar shard (img2dataset / DataComp layout: ``{key}.jpg``, ``{key}.txt``,
            ``{key}.json``, ...) or a :class:`FolderShard`.
        output: the output tar; its stats go beside it (:func:`stats_path`).
        keep: keep the image entry beside the ``.gsplat`` one.
        resize_longest: downscale images whose longer side is larger to this many pixels first.
        max_pixels: refuse (as a failed sample) images whose header declares more pixels.
        threads: CPU threads for this shard's encodes (0: all cores).
        on_sample: called with True/False (encoded or failed) after each sample (progress).
        encode_options: :func:`splatcodec.encode` options (quality, target_bpp, num_gaussians, effort,
            priors: dataset priors from ``splatcodec train-priors``, a path, bytes or ``Priors``...).

    Returns the stats written to ``_stats.json``: count, successes, failures (key and reason), bytes
    in (image entries) and out (``.gsplat`` entries), ``resized`` (encoded images that were downscaled
    first, by ``resize_longest``), mean bpp and PSNR of the encoded images, seconds,
    ``priors_sha256`` (the dataset priors' hash, or None), and ``input_stats``: the input shard's own
    ``_stats.json`` (img2dataset's), or None. Raises :class:`ShardError` if the input shard cannot be
    read to its end (nothing is written).
    """
    unknown = set(encode_options) - _encode_option_names()
    if unknown:
        raise InvalidInputError(f"unknown encode option(s): {', '.join(sorted(unknown))}")
    priors = encode_options.get("priors")
    if priors is not None:  # loaded once per shard: every image's encode shares its tables
        encode_options["priors"] = priors = load_priors(priors)
    start = time.time()
    output = Path(output)
    input_stats = _input_stats(source)  # read first: the output may be written over it
    tmp_tar, tmp_stats = partial_paths(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    pending: dict[int, dict[str, Any]] = {}
    failures: list[dict[str, str]] = []
    bpp: list[float] = []
    psnr: list[float] = []
    totals = {"count": 0, "bytes_in": 0, "bytes_out": 0, "resized": 0}

    def items() -> Iterator[dict[str, Any]]:
        for index, sample in enumerate(_samples(source)):
            pending[index] = sample
            yield sample

    def prepare(sample: dict[str, Any]) -> Any:
        if "__error__" in sample:
            raise InvalidInputError(sample["__error__"])
        entry = image_entry(sample)
        if entry is None:
            raise InvalidInputError("no image entry")
        pixels, (width, height) = decode_image_sized(sample[entry], resize_longest=resize_longest,
                                                     max_pixels=max_pixels)
        if pixels.shape[:2] != (height, width):
            sample[RESIZED] = True  # read by the main thread once this sample's result is out
        return pixels

    try:
        with open(tmp_tar, "wb") as fh:
            writer = _wds.tar_writer(fh, _mtime(source))
            try:
                for result in iter_encode(items(), threads=threads, prepare=prepare, **encode_options):
                    sample = pending.pop(result.index)
                    totals["resized"] += bool(sample.pop(RESIZED, False)) and result.error is None
                    entry = image_entry(sample)
                    totals["count"] += 1
                    totals["bytes_in"] += len(sample[entry]) if entry else 0
                    if result.error is not None:
                        failures.append({"key": str(sample["__key__"]), "reason": _reason(result.error)})
                    else:
                        out = {k: v for k, v in sample.items() if k != entry or keep}
                        out[GSPLAT_EXT] = result.data
                        writer.write(out)
                        totals["bytes_out"] += len(result.data)
                        bpp.append(result.stats.bpp)
                        psnr.append(result.stats.psnr)
                    if on_sample is not None:
                        on_sample(result.error is None)
            finally:  # also on failure: an unclosed writer would write to the closed file when collected
                writer.close()
            fh.flush()
            os.fsync(fh.fileno())
        successes = totals["count"] - len(failures)
        seconds = time.time() - start
        stats = {
            "source": os.fspath(source) if not isinstance(source, FolderShard) else "folder",
            "output": output.name, **totals, "successes": successes, "failed": len(failures),
            "failures": failures,
            "mean_bpp": sum(bpp) / len(bpp) if bpp else None,
            "mean_psnr": sum(psnr) / len(psnr) if psnr else None,
            "seconds": round(seconds, 3), "images_per_second": round(totals["count"] / seconds, 3) if seconds else None,
            "options": {"keep": keep, "resize_longest": resize_longest, "max_pixels": max_pixels, **encode_options,
                        **({"priors": priors_sha256(priors)} if priors is not None else {})},
            "priors_sha256": priors_sha256(priors) if priors is not None else None,
            "threads": threads, "host": socket.gethostname(), "pid": os.getpid(),
            "started": start, "finished": time.time(),
            **input_stats,
        }
        tmp_stats.write_text(json.dumps(stats, indent=1, default=str))
        os.replace(tmp_tar, output)
        if not isinstance(source, FolderShard):
            _copy_sidecars(Path(source), output)
        os.replace(tmp_stats, stats_path(output))  # last: the shard is done
        return stats
    except SplatcodecError:
        raise
    except (OSError, EOFError, ValueError, tarfile.TarError, zlib.error) as exc:  # a damaged or unreadable shard
        raise ShardError(f"{os.fspath(source) if not isinstance(source, FolderShard) else output}: {exc}") from exc
    finally:
        for tmp in (tmp_tar, tmp_stats):
            if tmp.exists():
                tmp.unlink()


def _input_stats(source: str | os.PathLike | FolderShard) -> dict[str, Any]:
    """``{"input_stats": ...}``: the input shard's own ``_stats.json`` (img2dataset / DataComp), parsed;
    None without one; with ``input_stats_error`` if it cannot be read as JSON."""
    if isinstance(source, FolderShard):
        return {"input_stats": None}
    path = stats_path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {"input_stats": None}
    except (OSError, UnicodeDecodeError) as exc:
        return {"input_stats": None, "input_stats_error": f"cannot read {path.name}: {exc}"}
    try:
        return {"input_stats": json.loads(text)}
    except ValueError as exc:
        return {"input_stats": None, "input_stats_error": f"{path.name} is not JSON: {exc}"}


def _copy_sidecars(source: Path, output: Path) -> None:
    """Copies img2dataset's per-sample table (``00000000.parquet``) beside the output shard, unchanged."""
    for ext in SIDECARS:
        src = source.with_name(source.name.split(".", 1)[0] + ext)
        if src.is_file():
            dst = output.with_name(output.name.split(".", 1)[0] + ext)
            tmp = dst.with_name("." + dst.name + PARTIAL_SUFFIX)
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text if isinstance(error, SplatcodecError) else f"{type(error).__name__}: {text}"
