"""Encoding many images at once: :func:`encode_batch` and its streaming form :func:`iter_encode`.

The native fitter releases the GIL and a fit's result does not depend on its thread count, so the
fastest way to fill every core with many images is one image per Python thread, each fit
single-threaded: no OpenMP barriers, no tile imbalance, and only ~1 % of an encode (quantizing,
entropy coding) holds the GIL. Measured on 2 cores with 224x224 photos at 400 Gaussians, threads
gave 1.9x the serial loop while a process pool (spawn start, as fork after OpenMP is unsafe) gave
less than 1x for short batches (start-up, pickling); see docs/datasets.md. With fewer images than
threads, each image's fit gets a share of the threads instead (large images: threads inside each fit).

Every image is encoded by :func:`splatcodec.encode` with the same options, so the bytes are those of
a serial loop of ``encode`` calls (tested).
"""
from __future__ import annotations

import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Literal, Sized

from .. import _native
from ..cancellation import CancelToken
from ..errors import InvalidInputError, SplatcodecError
from .encoder import encode
from .results import EncodeStats

#: Options of :func:`splatcodec.encode` that make no sense per image of a batch.
_NOT_PER_BATCH = ("return_stats", "progress", "threads")


@dataclass
class EncodeResult:
    """One image's outcome in :func:`iter_encode` / ``encode_batch(..., errors="return")``.

    Exactly one of ``data`` (with its ``stats``) and ``error`` is set.
    """

    index: int
    data: bytes | None = None
    stats: EncodeStats | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class BatchCancelled(SplatcodecError):
    """An image was not encoded because the batch was stopped (another image failed, or Ctrl-C)."""


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, not the machine's core count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def plan_threads(threads: int, count: int | None) -> tuple[int, int]:
    """(images encoded side by side, fit threads per image) for ``threads`` (0: all cores) and
    ``count`` images (None: unknown, e.g. a generator)."""
    total = _native.check_threads(threads) or available_cores()
    workers = total if count is None else max(1, min(total, count))
    return workers, max(1, total // workers)


def iter_encode(images: Iterable[Any], quality: float | None = None, *, threads: int = 0,
                prepare: Callable[[Any], Any] | None = None, **options: Any) -> Iterator[EncodeResult]:
    """Encode ``images`` on all cores; yields an :class:`EncodeResult` per image, in input order.

    ``images`` may be any iterable (arrays or PIL images, as :func:`splatcodec.encode` takes them); it is
    consumed lazily, at most two images per worker ahead of the results. ``threads`` is the total
    (0: all cores). ``prepare``, if given, turns each item into the image in the worker thread (e.g.
    decodes file bytes; side by side like the encodes). ``options`` are :func:`splatcodec.encode`'s
    keyword arguments. A failing item (an exception in ``prepare`` or ``encode``) is reported in its
    result and the others go on. Closing the generator early, an
    exception in the consumer or Ctrl-C cancels the running fits and joins every worker before it
    returns or re-raises: no thread is left running.
    """
    bad = [name for name in _NOT_PER_BATCH if name in options]
    if bad:
        raise InvalidInputError(f"encode_batch sets {', '.join(bad)} itself; do not pass it")
    if "device" in options:  # resolved once, before any work: a bad device fails the batch, not each image
        options["device"] = _native.resolve_device(options["device"])
    count = len(images) if isinstance(images, Sized) else None
    workers, per_image = plan_threads(threads, count)
    stop = threading.Event()
    token = CancelToken()  # this batch's fits only: cancelling it stops no other thread's work

    def one(index: int, image: Any) -> EncodeResult:
        if stop.is_set():
            return EncodeResult(index, error=BatchCancelled(f"image {index}: batch stopped before it started"))
        try:
            if prepare is not None:
                image = prepare(image)
            with token:
                data, stats = encode(image, quality, threads=per_image, return_stats=True, **options)
        except Exception as exc:  # reported per image; KeyboardInterrupt etc. are not caught
            return EncodeResult(index, error=exc)
        return EncodeResult(index, data=data, stats=stats)

    source = enumerate(images)
    pending: deque[Future] = deque()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="splatcodec-batch")
    try:
        for index, image in source:
            pending.append(pool.submit(one, index, image))
            if len(pending) >= 2 * workers:
                break
        while pending:
            yield _result(pending.popleft())
            for index, image in source:  # refill one
                pending.append(pool.submit(one, index, image))
                break
    finally:
        stop.set()
        for future in pending:
            future.cancel()
        _join(pool, pending, token)


def _result(future: Future) -> EncodeResult:
    # Short waits keep the main thread responsive to Ctrl-C while the workers hold the cores.
    while True:
        done, _ = wait([future], timeout=0.1)
        if done:
            return future.result()


def _join(pool: ThreadPoolExecutor, pending: deque[Future], token: CancelToken) -> None:
    """Stops the running encodes (their fits raise CancelledError) and waits for every worker to end."""
    running = [f for f in pending if not f.done()]
    if running:
        token.cancel()
    while running:
        wait(running, timeout=0.02)
        running = [f for f in running if not f.done()]
    pool.shutdown(wait=True)


def encode_batch(images: Iterable[Any], quality: float | None = None, *, threads: int = 0,
                 errors: Literal["raise", "return"] = "raise", return_stats: bool = False,
                 **options: Any) -> list[Any]:
    """:func:`splatcodec.encode` every image with the same options, using all cores; results in input order.

    Many images run side by side, one per thread with single-threaded fits; fewer images than
    ``threads`` share the threads inside their fits. The bytes equal those of ``encode`` called on
    each image in turn with the same options.

    Args:
        images: arrays or PIL images (any iterable; consumed lazily).
        quality, options: as for :func:`splatcodec.encode` (``progress`` is not taken); ``device``
            is resolved once for the whole batch (an unusable one raises before any image is read).
        threads: total CPU threads (0: all cores this process may use).
        errors: ``"raise"`` (default): on the first failing image (in input order) stop the others
            and raise its exception (with a note naming the image); returns ``list[bytes]``, or
            ``list[(bytes, EncodeStats)]`` with ``return_stats``. ``"return"``: never raise for an
            image; returns a list of :class:`EncodeResult` (``data``/``stats`` or ``error`` each).
        return_stats: with ``errors="raise"``, also return each image's :class:`EncodeStats`.

    Ctrl-C (KeyboardInterrupt) cancels the running fits and joins the workers before it propagates.
    """
    if errors not in ("raise", "return"):
        raise InvalidInputError(f"errors must be 'raise' or 'return', got {errors!r}")
    results = iter_encode(images, quality, threads=threads, **options)
    if errors == "return":
        return list(results)
    out: list[Any] = []
    try:
        for result in results:
            if result.error is not None:
                error = result.error
                if hasattr(error, "add_note"):  # Python >= 3.11
                    error.add_note(f"(image {result.index} of the batch)")
                raise error
            out.append((result.data, result.stats) if return_stats else result.data)
    finally:
        results.close()  # stops and joins the workers when we leave early
    return out


__all__ = ["BatchCancelled", "EncodeResult", "available_cores", "encode_batch", "iter_encode", "plan_threads"]
